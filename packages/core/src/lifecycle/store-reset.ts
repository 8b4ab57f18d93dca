import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import { StoreResetError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { errorFields, type Logger } from '../logger.js'
import type { InvalidationEvent, KeyStore } from '../store/store.js'
import type { KeyRecord } from '../types.js'

/**
 * What this replica knows about a key that a store rollback must not undo: a
 * revocation (kept as the full revoked record, so it can be written back)
 * and the tightest deadline it saw set or pass. Never a secret: the record's
 * hash is what the store holds anyway.
 */
export interface Tombstone {
  id: string
  tenantId: string
  revokedAt: number | null
  revokedReason: string | null
  expiresAt: number | null
  /** The revoked record, for `restoreRevocation`; `null` when only the deadline is kept. */
  revoked: KeyRecord | null
}

export interface StoreResetGuardOptions {
  store: KeyStore
  clock: Clock
  logger: Logger
  emit<E extends 'store.reset' | 'keys.lost'>(event: E, payload: KeyringEvents[E]): void
  /** Most tombstones and known key ids kept (least recently used dropped first). Default 10,000. */
  maxEntries?: number
}

/** Keys a `keys.lost` event lists by id; `count` carries the total. */
const MAX_LOST_LISTED = 1_000
/** How long a change notice waits for a verify to re-read the key before the guard re-reads it itself. */
const REFRESH_DELAY_MS = 500
/** Reads in flight while looking for lost keys, so a large keyring does not flood a store that just came back. */
const LOST_CHECK_CONCURRENCY = 16

/**
 * The keyring's side of a store that came back empty or rolled back.
 *
 * - Every record this replica reads is tightened by its tombstones, so a key
 *   it saw revoked or expired stays refused whatever the store says.
 * - While the store reports a reset nobody accepted yet, a key the store
 *   cannot find may be one it lost: reading it throws `StoreResetError`
 *   (503, retry later) instead of answering "not found" (401 for a client
 *   whose key is fine).
 * - On a `store-reset` it reports the reset, writes every revocation it
 *   knows back to the store (idempotent: only ever tightens), and reports
 *   the keys it knew that the store lost.
 *
 * Tombstone rules: a revocation is final and is never cleared. A deadline is
 * tightened by anything this replica reads (a rolled-back store may show an
 * older, later deadline) and set as-is only by trusted observations: results
 * of this replica's own writes and re-reads prompted by another replica's
 * change notice, since a legitimate extension (`extendGrace`) reaches
 * replicas that way.
 */
export class StoreResetGuard {
  readonly #options: StoreResetGuardOptions
  readonly #tombstones: LRUCache<string, Tombstone>
  /**
   * Keys this replica read or wrote, with the deadline it last saw (`null`:
   * none; revoked keys count as ended): the candidates for `keys.lost`.
   */
  readonly #known: LRUCache<string, { endsAt: number | null }>
  /** The reset reports in progress (`close()` waits for them). */
  readonly #pending = new Set<Promise<void>>()
  /** Keys another replica changed: their next read is trusted (it follows the change notice). */
  readonly #noticed = new Set<string>()
  #refreshTimer: NodeJS.Timeout | undefined

  constructor(options: StoreResetGuardOptions) {
    this.#options = options
    const max = options.maxEntries ?? 10_000
    this.#tombstones = new LRUCache({ max })
    this.#known = new LRUCache({ max })
  }

  /** Reads a key's state for `verify()`: tightened by tombstones; missing while a reset is pending throws `StoreResetError`. */
  async read(keyId: string): Promise<KeyRecord | null> {
    return this.checked(keyId, await this.#options.store.get(keyId))
  }

  /** The record as this replica may trust it (see {@link read}). */
  checked(keyId: string, record: KeyRecord | null): KeyRecord | null {
    if (record === null) {
      if (this.#options.store.resetPending?.() === true) throw new StoreResetError(undefined, { keyId })
      // A key this replica read before, still working when it last saw it, does not vanish by
      // itself (records outlive their key by the store's retention): the store lost it, even if
      // its own check has not told yet (it looks once a second).
      const known = this.#known.get(keyId)
      if (known && (known.endsAt === null || known.endsAt > this.#options.clock.now())) throw new StoreResetError(undefined, { keyId })
      return null
    }
    this.#remember(record)
    this.observe(record, this.#noticed.delete(keyId))
    return this.tighten(record)
  }

  /** Remembers a key this replica created (a rollback may lose it). */
  noteKnown(keyId: string): void {
    this.#known.set(keyId, { endsAt: null })
  }

  #remember(record: KeyRecord): void {
    this.#known.set(record.id, { endsAt: record.revokedAt ?? record.expiresAt })
  }

  /**
   * Takes in what a record says. `trusted`: the result of this replica's own
   * write, or a re-read after another replica's change notice.
   */
  observe(record: KeyRecord, trusted: boolean): void {
    if (trusted && this.#known.has(record.id)) this.#remember(record)
    const now = this.#options.clock.now()
    const existing = this.#tombstones.get(record.id)
    const revoked = record.revokedAt !== null
    const deadlineMatters = record.expiresAt !== null && (trusted || record.expiresAt <= now || record.rotatedTo !== null)
    if (!existing && !revoked && !deadlineMatters) return
    const tombstone: Tombstone = existing ?? {
      id: record.id,
      tenantId: record.tenantId,
      revokedAt: null,
      revokedReason: null,
      expiresAt: null,
      revoked: null,
    }
    if (revoked && tombstone.revokedAt === null) {
      tombstone.revokedAt = record.revokedAt
      tombstone.revokedReason = record.revokedReason
      tombstone.revoked = { ...record, scopes: [...record.scopes] }
    }
    if (trusted) tombstone.expiresAt = record.expiresAt
    else if (deadlineMatters) tombstone.expiresAt = Math.min(tombstone.expiresAt ?? Number.POSITIVE_INFINITY, record.expiresAt as number)
    if (tombstone.revokedAt === null && tombstone.expiresAt === null) this.#tombstones.delete(record.id)
    else this.#tombstones.set(record.id, tombstone)
  }

  /** `record`, or a tightened copy when a tombstone says it was revoked or ends sooner. */
  tighten(record: KeyRecord): KeyRecord {
    const tombstone = this.#tombstones.get(record.id)
    if (!tombstone) return record
    const revoke = tombstone.revokedAt !== null && record.revokedAt === null
    const shorten = tombstone.expiresAt !== null && (record.expiresAt === null || record.expiresAt > tombstone.expiresAt)
    if (!revoke && !shorten) return record
    this.#options.logger.warn(
      { event: 'store.record_tightened', keyId: record.id, revoked: revoke, expiresAt: shorten ? tombstone.expiresAt : undefined },
      'keyrot read a key looser than this replica last saw it (store rolled back?); using what it saw',
    )
    return {
      ...record,
      ...(revoke ? { revokedAt: tombstone.revokedAt, revokedReason: tombstone.revokedReason, incidentId: tombstone.revoked?.incidentId ?? null } : {}),
      ...(shorten ? { expiresAt: tombstone.expiresAt } : {}),
    }
  }

  /** The tombstone of `keyId`, if any (tests, diagnostics). */
  tombstone(keyId: string): Tombstone | undefined {
    return this.#tombstones.peek(keyId)
  }

  /**
   * Another replica changed `keyId`: re-read it in the background when this
   * replica knows the key, so a revocation or deadline it never served is
   * still tombstoned before a rollback could hide it.
   */
  refresh(keyId: string): void {
    if (!this.#known.has(keyId) && !this.#tombstones.has(keyId)) return
    // Usually a verify re-reads the key at once (its cached state was just dropped) and that read
    // counts; keys nobody asks for are re-read here shortly after, not at the same moment.
    if (this.#noticed.size >= 10_000) return
    this.#noticed.add(keyId)
    if (this.#refreshTimer) return
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined
      const ids = [...this.#noticed]
      this.#noticed.clear()
      for (const id of ids) this.#reread(id)
    }, REFRESH_DELAY_MS)
    this.#refreshTimer.unref?.()
  }

  #reread(keyId: string): void {
    this.#options.store.get(keyId).then(
      (record) => {
        if (record === null) {
          // Gone by the store's retention (or lost): nothing left to report.
          this.#known.delete(keyId)
          return
        }
        this.#remember(record)
        this.observe(record, true)
      },
      () => {
        // The next read tightens; a store that is down sends resets of its own.
      },
    )
  }

  /** Reports a reset, writes revocations back and looks for lost keys. */
  onStoreReset(event: Extract<InvalidationEvent, { type: 'store-reset' }>): void {
    const { logger, emit } = this.#options
    logger.error(
      { event: 'store.reset', cause: event.cause, detail: event.detail },
      `keyrot key store was reset (${event.cause}): ${event.detail}. Unknown keys answer KEYROT_STORE_RESET (503) and admin writes are refused until an operator runs \`keyrot store accept-reset\`.`,
    )
    emit('store.reset', { cause: event.cause, detail: event.detail, at: event.at })
    const work = this.#recover(event.cause).catch((error: unknown) => {
      logger.error({ event: 'store.reset_recovery_failed', ...errorFields(error) }, 'keyrot could not finish its store reset recovery')
    })
    this.#pending.add(work)
    void work.finally(() => this.#pending.delete(work))
  }

  /** Resolves once every reset report in progress has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pending])
  }

  async #recover(cause: 'empty' | 'rollback'): Promise<void> {
    const { store, logger, emit, clock } = this.#options
    let restored = 0
    if (store.restoreRevocation) {
      for (const tombstone of [...this.#tombstones.values()]) {
        if (!tombstone.revoked) continue
        try {
          if (await store.restoreRevocation(tombstone.revoked)) restored++
        } catch (error) {
          logger.error({ event: 'store.revocation_restore_failed', keyId: tombstone.id, ...errorFields(error) }, 'keyrot could not write a revocation back')
        }
      }
      if (restored > 0) logger.warn({ event: 'store.revocations_restored', count: restored }, `keyrot wrote ${restored} revocation(s) back to the reset store`)
    }
    const lost: string[] = []
    const ids = [...this.#known.keys()]
    for (let i = 0; i < ids.length; i += LOST_CHECK_CONCURRENCY) {
      const batch = ids.slice(i, i + LOST_CHECK_CONCURRENCY)
      const records = await Promise.all(batch.map((id) => store.get(id).catch(() => undefined)))
      records.forEach((record, index) => {
        if (record === null) lost.push(batch[index] as string)
      })
    }
    // Reported once; from the operator's accept-reset on, they read as unknown.
    for (const id of lost) this.#known.delete(id)
    if (lost.length === 0) return
    const keyIds = lost.slice(0, MAX_LOST_LISTED)
    logger.error(
      { event: 'keys.lost', cause, count: lost.length, keyIds },
      `keyrot: the reset store lost ${lost.length} key(s) this replica knew; reissue them`,
    )
    emit('keys.lost', { keyIds, count: lost.length, cause, at: clock.now() })
  }
}
