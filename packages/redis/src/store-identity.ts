import { randomBytes } from 'node:crypto'
import type { Clock, InvalidationEvent, InvalidationListener, Logger, StoreResetCause } from '@keyrot/core'
import { runScript } from './connection.js'
import type { KeyLayout } from './keys.js'
import type { RedisClient } from './options.js'
import { SCRIPTS } from './scripts.js'

export interface StoreIdentityOptions {
  layout: KeyLayout
  clock: Clock
  logger: Logger
  /** How often to look; 0: only on demand (null reads, admin writes). */
  intervalMs: number
  /**
   * Whether `confirm()` always looks. `false` (standalone Redis) trusts a
   * look younger than `intervalMs` as long as the data connection did not
   * reconnect since ({@link connectionRenewed}): a Redis restart always
   * breaks the connection. A Cluster's node connections come and go on
   * their own, so there it is `true`.
   */
  alwaysConfirm: boolean
  /** Runs a command on the store's data connection within the store's timeout. */
  run<T>(what: string, work: (redis: RedisClient) => Promise<T>): Promise<T>
}

/** The shared flag a replica sets when it notices a reset; kept until an operator accepts it. */
export interface ResetFlag {
  cause: StoreResetCause
  detail: string
  at: number
}

/**
 * Notices when Redis came back empty or rolled back.
 *
 * Redis keeps three keys in one slot (`{store}` hash tag, so one script reads
 * them on a Cluster too): an identity created once with `SET NX`, a change
 * sequence and the reset flag. Every admin write advances the sequence with
 * an `INCR` pipelined right behind its script (a separate command: a script
 * may only touch keys of its own slot, and the write scripts live in the key
 * family's slot). On one connection Redis runs it after the write, so a
 * snapshot can hold a write without its increment (seen as a rollback: a
 * harmless false alarm), not an increment without its write (a rollback
 * nobody would see). Exceptions: the first write after a script cache flush
 * (its `EVAL` retry follows the increment) and a Cluster, where the two go to
 * different nodes.
 *
 * This process keeps the identity and the highest sequence it saw (from its
 * own increments and from every look). A look finds:
 * - the identity gone or different: Redis came back `empty` (restart without
 *   persistence, FLUSHALL, a new server);
 * - a lower sequence: Redis `rollback` to an older copy (a snapshot restore,
 *   an AOF that lost its last second, a failover to a replica that lagged).
 * It then sets the shared reset flag (so replicas that could not tell, and
 * replicas started later, learn of it too), adopts what it sees as its new
 * baseline and tells its listeners. Looks happen every `intervalMs`, and
 * before a "not found" is returned or an admin write runs (see `confirm()`).
 * A process that
 * never looked before Redis lost its data cannot tell; a first look at a
 * Redis with no identity creates one (a fresh store is not a reset).
 */
export class StoreIdentity {
  readonly #options: StoreIdentityOptions
  readonly #listeners = new Set<InvalidationListener>()
  #identity: string | null = null
  #sequence = 0
  #pending: ResetFlag | null = null
  #looking: Promise<void> | null = null
  /** Bumped on every (re)connection of the data connection; the epoch and time of the last good look. */
  #epoch = 0
  #lookedEpoch = -1
  #lookedAt = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: StoreIdentityOptions) {
    this.#options = options
  }

  /** Whether a reset was seen and no operator accepted it yet. */
  get resetPending(): boolean {
    return this.#pending !== null
  }

  /** The unaccepted reset: why and when it was seen; `null` when none. */
  get pendingReset(): Readonly<ResetFlag> | null {
    return this.#pending
  }

  subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    this.start()
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Starts the periodic look (idempotent). */
  start(): void {
    if (this.#timer || this.#closed || this.#options.intervalMs === 0) return
    this.#timer = setInterval(() => {
      this.check().catch(() => {
        // Redis is down: the store's calls report it; the next look decides.
      })
    }, this.#options.intervalMs)
    this.#timer.unref()
  }

  /** Looks now; concurrent callers share one look. */
  check(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#looking ??= this.#options.run('check the store identity', (redis) => this.#look(redis)).finally(() => {
      this.#looking = null
    })
    return this.#looking
  }

  /** The data connection (re)connected: Redis may have restarted since the last look. */
  connectionRenewed(): void {
    this.#epoch++
  }

  /**
   * Before a "not found" answer or an admin write: looks now unless a look
   * since the last reconnection is younger than two `intervalMs` (the
   * periodic look, due every `intervalMs`, catches a `FLUSHALL` meanwhile).
   * While a reset is pending it always looks, so an operator's acceptance
   * counts at once.
   */
  confirm(): Promise<void> {
    const { alwaysConfirm, intervalMs, clock } = this.#options
    const fresh =
      !alwaysConfirm &&
      this.#pending === null &&
      intervalMs > 0 &&
      this.#lookedEpoch === this.#epoch &&
      clock.now() - this.#lookedAt < 2 * intervalMs
    return fresh ? Promise.resolve() : this.check()
  }

  /** Advances the change sequence after a write and remembers the new value. */
  async advance(redis: RedisClient): Promise<void> {
    const value = Number(await redis.incr(this.#options.layout.storeSequence))
    if (Number.isSafeInteger(value) && this.#identity !== null) this.#sequence = Math.max(this.#sequence, value)
  }

  /** Clears the shared reset flag: admin writes work again on every process. */
  async accept(): Promise<void> {
    const { layout, logger } = this.#options
    await this.#options.run('accept a store reset', async (redis) => {
      await redis.del(layout.storeReset)
    })
    if (this.#pending) logger.warn({ event: 'store.reset_accepted', cause: this.#pending.cause }, 'keyrot store reset accepted: admin writes are allowed again')
    this.#pending = null
    await this.check()
  }

  async #look(redis: RedisClient): Promise<void> {
    const epoch = this.#epoch
    await this.#compare(redis)
    this.#lookedEpoch = epoch
    this.#lookedAt = this.#options.clock.now()
  }

  async #compare(redis: RedisClient): Promise<void> {
    const first = this.#identity === null
    // The sequence seen before the look is sent: Redis ran every increment counted in it before the look.
    // An increment whose reply is handled while this look's reply waits for its turn may be newer than the look.
    const seen = this.#sequence
    // A first look at a Redis with no identity creates one, in the same round trip (a fresh store is not a reset).
    const reply = await runScript(redis, SCRIPTS.storeLook, this.#keys, [newIdentity(), first ? '1' : '0'])
    const [identity, rawSequence, rawFlag] = (Array.isArray(reply) ? reply : []) as (string | null | undefined)[]
    const sequence = toSequence(rawSequence)
    if (first) {
      if (typeof identity !== 'string') throw new Error('keyrot Redis store: the store identity could not be read')
      this.#identity = identity
      this.#sequence = sequence
      this.#follow(typeof rawFlag === 'string' ? rawFlag : null)
      return
    }
    let cause: StoreResetCause | null = null
    let detail = ''
    if ((identity ?? null) !== this.#identity) {
      cause = 'empty'
      detail = identity == null ? 'its identity key is gone (restarted without its data, or flushed)' : 'its identity changed (replaced by a store without this one\'s data)'
    } else if (sequence < seen) {
      cause = 'rollback'
      detail = `its change sequence is ${sequence}, below the ${seen} this process saw (restored from an older copy)`
    }
    if (cause === null) {
      this.#sequence = Math.max(this.#sequence, sequence)
      this.#follow(typeof rawFlag === 'string' ? rawFlag : null)
      return
    }
    const flag: ResetFlag = { cause, detail, at: this.#options.clock.now() }
    this.#identity = String(await runScript(redis, SCRIPTS.storeFlagReset, this.#keys, [newIdentity(), JSON.stringify(flag)]))
    this.#sequence = sequence
    this.#raise(flag)
  }

  /** Follows the shared flag: set by another process (or before this one started), or cleared by an operator. */
  #follow(raw: string | null): void {
    if (raw === null) {
      if (this.#pending) this.#options.logger.warn({ event: 'store.reset_accepted', cause: this.#pending.cause }, 'keyrot store reset was accepted')
      this.#pending = null
      return
    }
    if (this.#pending) return
    this.#raise(parseFlag(raw, this.#options.clock.now()))
  }

  #raise(flag: ResetFlag): void {
    this.#pending = flag
    const event: InvalidationEvent = { type: 'store-reset', cause: flag.cause, detail: flag.detail, at: flag.at }
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (error) {
        this.#options.logger.error({ event: 'store.reset_listener_failed', err: { message: (error as Error)?.message } }, 'keyrot store reset listener threw')
      }
    }
  }

  get #keys(): string[] {
    const { layout } = this.#options
    return [layout.storeIdentity, layout.storeSequence, layout.storeReset]
  }

  close(): void {
    this.#closed = true
    clearInterval(this.#timer)
    this.#listeners.clear()
  }
}

function newIdentity(): string {
  return randomBytes(12).toString('base64url')
}

function toSequence(raw: string | null | undefined): number {
  const value = raw === null || raw === undefined ? 0 : Number(raw)
  return Number.isSafeInteger(value) && value >= 0 ? value : 0
}

function parseFlag(raw: string, now: number): ResetFlag {
  try {
    const parsed = JSON.parse(raw) as Partial<ResetFlag>
    const cause = parsed.cause === 'rollback' ? 'rollback' : 'empty'
    return { cause, detail: typeof parsed.detail === 'string' ? parsed.detail : 'reported by another process', at: typeof parsed.at === 'number' ? parsed.at : now }
  } catch {
    return { cause: 'empty', detail: 'reported by another process', at: now }
  }
}
