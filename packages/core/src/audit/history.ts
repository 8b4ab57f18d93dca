import { createHash } from 'node:crypto'

/**
 * The shared admin history: one append-only, hash-chained list of admin
 * actions (create, rotate, revoke, emergency rotation, expiry change) that
 * every replica writes to and an operator can read and check.
 *
 * Each entry carries `seq` (1, 2, 3, ... with no gap), the `hash` of the
 * entry before it (`prevHash`) and its own `hash`: SHA-256 over the
 * canonical JSON of its fields and `prevHash` ({@link historyEntryHash}).
 * Editing an entry changes its hash; deleting or inserting one breaks the
 * link of the next; deleting the newest ones no longer matches the head the
 * log records at each append. `verify()` reports all three.
 *
 * Entries carry ids, times, reasons and incident ids: never a token, a
 * secret or a stored hash.
 */

/** The admin actions recorded: the keyring event names. */
export type HistoryAction = 'key.created' | 'key.rotated' | 'key.revoked' | 'key.emergency_rotated' | 'key.expiry_changed'
  /** A leak report proved the key's secret public (docs/leak-response.md): `reason` says who found it where and what was done. */
  | 'key.leaked'

export const HISTORY_ACTIONS: readonly HistoryAction[] = Object.freeze([
  'key.created',
  'key.rotated',
  'key.revoked',
  'key.emergency_rotated',
  'key.expiry_changed',
  'key.leaked',
])

/** `prevHash` of the first entry ever appended. */
export const GENESIS_HASH = '0'.repeat(64)

/** What an append records. Absent fields do not apply to the action. */
export interface HistoryEntryInput {
  /** Epoch ms of the action, from the keyring's clock. */
  at: number
  action: HistoryAction
  /** The key acted on: the created key, the old key of a rotation, the revoked key. */
  keyId: string
  familyId: string
  tenantId: string
  /** Successor issued by `key.rotated` and `key.emergency_rotated`. */
  newKeyId?: string
  /** `key.emergency_rotated` only. */
  incidentId?: string
  /** Revocation reason (`key.revoked`, `key.emergency_rotated`), when one was given. */
  reason?: string
  /** `key.rotated` only. */
  gracePeriodMs?: number
  /**
   * When `keyId` stops working after the action (epoch ms; `null`: never):
   * its expiry at `key.created`, the end of its grace at `key.rotated`, the
   * new deadline at `key.expiry_changed`.
   */
  expiresAt?: number | null
  /** `key.expiry_changed` only: the deadline before the change. */
  previousExpiresAt?: number | null
  /**
   * Who acted, when the caller named itself with `runAsActor()` (the admin
   * API: `api-key:<admin key id>`; the CLI: `cli:<user>`). Left out of the
   * hash when absent, so entries written before it existed verify as before.
   */
  actor?: string
}

export interface HistoryEntry extends HistoryEntryInput {
  /** Where the log keeps the entry (the Redis stream id, a number in memory). Not hashed: the store assigns it. */
  id: string
  /** Position in the chain: 1 for the first entry ever, +1 for each next one. */
  seq: number
  /** `hash` of the entry with `seq - 1`; {@link GENESIS_HASH} for `seq` 1. */
  prevHash: string
  /** SHA-256 (hex) of this entry: {@link historyEntryHash}. */
  hash: string
}

export interface HistoryQuery {
  /** Entries about this key: as `keyId`, or as `newKeyId` (the rotation that issued it). */
  keyId?: string
  /** Entries about any key of this family (a key and every key rotated from it). */
  familyId?: string
  /** Most entries returned: the newest ones. Default 1,000. */
  limit?: number
}

export type HistoryProblemKind =
  /** An entry cannot be read (a field missing or of the wrong type). */
  | 'malformed'
  /** An entry's hash does not match its fields: it was edited. */
  | 'edited'
  /** An entry does not follow the one before it: one was deleted, inserted or moved between them. */
  | 'broken_link'
  /** The oldest entry is not the one the length bound left: entries were deleted at the start. */
  | 'missing_start'
  /** The newest entry is not the head recorded by the last append: entries were deleted at the end, or added outside the log. */
  | 'head_mismatch'

export interface HistoryProblem {
  kind: HistoryProblemKind
  /** The entry where the problem shows (absent when the log holds none). */
  id?: string
  seq?: number
  detail: string
}

export interface HistoryVerification {
  /** No problem found. */
  ok: boolean
  /** Entries checked. */
  checked: number
  /** At most {@link MAX_REPORTED_PROBLEMS}, oldest first; `ok` is false whenever there was one. */
  problems: HistoryProblem[]
  /** Entries removed by the log's length bound (not tampering): all before `first`. */
  trimmed: number
  first: { id: string; seq: number } | null
  /** The newest entry: record `hash` elsewhere to detect a later rewrite of the whole log. */
  last: { id: string; seq: number; hash: string } | null
}

/**
 * Where a shared admin history is kept. `MemoryHistoryLog` for one process
 * and tests; `RedisHistoryLog` (`@keyrot/redis`) for every replica.
 */
export interface HistoryLog {
  /** Appends one entry after the current head; concurrent appends from any process form one chain. */
  append(entry: HistoryEntryInput): Promise<HistoryEntry>
  /** Matching entries, newest last. */
  read(query?: HistoryQuery): Promise<HistoryEntry[]>
  /** Walks the whole log, recomputing every hash and link. Throws only when the log cannot be read. */
  verify(): Promise<HistoryVerification>
  /** Releases the log's resources (connections). Called by the keyring's `close()`. */
  close?(): Promise<void>
}

/** The newest entry as recorded at each append, and what the length bound removed. */
export interface HistoryHead {
  seq: number
  hash: string
  /** `seq` of the last entry removed by the length bound; `0` when none was. */
  trimmedThrough: number
}

export const MAX_REPORTED_PROBLEMS = 100
export const DEFAULT_HISTORY_READ_LIMIT = 1_000

/**
 * The canonical form hashed: a JSON object with keys in sorted order, fields
 * that do not apply left out, `null` kept (it means "never" for expiries).
 */
export function canonicalHistoryEntry(entry: HistoryEntryInput & { seq: number; prevHash: string }): string {
  const fields: Record<string, unknown> = {
    action: entry.action,
    actor: entry.actor,
    at: entry.at,
    expiresAt: entry.expiresAt,
    familyId: entry.familyId,
    gracePeriodMs: entry.gracePeriodMs,
    incidentId: entry.incidentId,
    keyId: entry.keyId,
    newKeyId: entry.newKeyId,
    prevHash: entry.prevHash,
    previousExpiresAt: entry.previousExpiresAt,
    reason: entry.reason,
    seq: entry.seq,
    tenantId: entry.tenantId,
    v: 1,
  }
  // JSON.stringify drops undefined members; keys above are already sorted.
  return JSON.stringify(fields)
}

/** SHA-256 (hex) of an entry's canonical form. */
export function historyEntryHash(entry: HistoryEntryInput & { seq: number; prevHash: string }): string {
  return createHash('sha256').update(canonicalHistoryEntry(entry)).digest('hex')
}

/** The input fields of an entry, dropping anything else a caller passed. Throws a `TypeError` naming a bad field. */
export function checkHistoryInput(input: HistoryEntryInput): HistoryEntryInput {
  if (input === null || typeof input !== 'object') throw new TypeError('history entry must be an object')
  if (!HISTORY_ACTIONS.includes(input.action)) throw new TypeError(`history entry action must be one of ${HISTORY_ACTIONS.join(', ')}`)
  if (!Number.isSafeInteger(input.at)) throw new TypeError('history entry at must be epoch ms (an integer)')
  for (const name of ['keyId', 'familyId', 'tenantId'] as const) {
    if (typeof input[name] !== 'string' || input[name].length === 0) throw new TypeError(`history entry ${name} must be a non-empty string`)
  }
  const out: HistoryEntryInput = { at: input.at, action: input.action, keyId: input.keyId, familyId: input.familyId, tenantId: input.tenantId }
  for (const name of ['newKeyId', 'incidentId', 'reason', 'actor'] as const) {
    const value = input[name]
    if (value === undefined) continue
    if (typeof value !== 'string') throw new TypeError(`history entry ${name} must be a string`)
    out[name] = value
  }
  if (input.gracePeriodMs !== undefined) {
    if (!Number.isSafeInteger(input.gracePeriodMs) || input.gracePeriodMs < 0) throw new TypeError('history entry gracePeriodMs must be a non-negative integer')
    out.gracePeriodMs = input.gracePeriodMs
  }
  for (const name of ['expiresAt', 'previousExpiresAt'] as const) {
    const value = input[name]
    if (value === undefined) continue
    if (value !== null && !Number.isSafeInteger(value)) throw new TypeError(`history entry ${name} must be epoch ms (an integer) or null`)
    out[name] = value
  }
  return out
}

/** Whether an entry answers a query's key and family filters. */
export function matchesHistoryQuery(entry: HistoryEntry, query: HistoryQuery): boolean {
  if (query.familyId !== undefined && entry.familyId !== query.familyId) return false
  if (query.keyId !== undefined && entry.keyId !== query.keyId && entry.newKeyId !== query.keyId) return false
  return true
}

/** A query with its limit resolved; throws a `TypeError` naming a bad field. */
export function resolveHistoryQuery(query: HistoryQuery = {}): Required<Pick<HistoryQuery, 'limit'>> & HistoryQuery {
  if (query === null || typeof query !== 'object') throw new TypeError('history query must be an object')
  for (const name of ['keyId', 'familyId'] as const) {
    if (query[name] !== undefined && typeof query[name] !== 'string') throw new TypeError(`history query ${name} must be a string`)
  }
  const limit = query.limit ?? DEFAULT_HISTORY_READ_LIMIT
  if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError(`history query limit must be a non-negative integer; got ${String(limit)}`)
  return { ...query, limit }
}

/** Why a value read back from a log is not a whole entry, or `null` when it is one. */
export function unreadableReason(value: unknown): string | null {
  if (value === null || typeof value !== 'object') return 'not an object'
  const entry = value as Record<string, unknown>
  if (typeof entry.id !== 'string') return 'no id'
  if (!Number.isSafeInteger(entry.seq) || (entry.seq as number) < 1) return 'no valid seq'
  for (const name of ['prevHash', 'hash']) {
    if (typeof entry[name] !== 'string' || !/^[0-9a-f]{64}$/.test(entry[name] as string)) return `no valid ${name}`
  }
  try {
    checkHistoryInput(entry as unknown as HistoryEntryInput)
  } catch (error) {
    return (error as Error).message
  }
  return null
}

/** An entry a log could not decode: reported by `verify()` as `malformed`. */
export interface UnreadableHistoryEntry {
  id: string
  unreadable: string
}

/**
 * Checks a chain fed oldest first, one entry at a time (a log reads pages
 * and never holds the whole chain). Pure: no I/O.
 *
 * The oldest surviving entry is the anchor: its `prevHash` cannot be checked
 * once the length bound removed its predecessor, so it is accepted when its
 * `seq` is the one after `trimmedThrough`, the last entry the bound removed
 * as recorded by the appends. Any other start means entries were deleted.
 */
export class HistoryChainCheck {
  readonly #trimmedThrough: number
  readonly #problems: HistoryProblem[] = []
  #problemCount = 0
  #checked = 0
  #first: { id: string; seq: number } | null = null
  #last: { id: string; seq: number; hash: string } | null = null

  constructor(trimmedThrough: number) {
    this.#trimmedThrough = trimmedThrough
  }

  /** The newest entry checked so far. */
  get last(): { id: string; seq: number; hash: string } | null {
    return this.#last
  }

  add(entry: HistoryEntry | UnreadableHistoryEntry): void {
    this.#checked++
    if ('unreadable' in entry) {
      this.#report({ kind: 'malformed', id: entry.id, detail: entry.unreadable })
      // The chain cannot be followed through it: the next link is judged against nothing.
      this.#last = null
      if (!this.#first) this.#first = { id: entry.id, seq: Number.NaN }
      return
    }
    const expected = historyEntryHash(entry)
    if (expected !== entry.hash) {
      this.#report({ kind: 'edited', id: entry.id, seq: entry.seq, detail: `entry ${entry.seq} does not match its hash: it was changed after it was written` })
    }
    const previous = this.#last
    if (!this.#first) {
      this.#first = { id: entry.id, seq: entry.seq }
      const expectedSeq = this.#trimmedThrough + 1
      if (entry.seq !== expectedSeq) {
        this.#report({
          kind: 'missing_start',
          id: entry.id,
          seq: entry.seq,
          detail: `the oldest entry is ${entry.seq}; the length bound removed up to ${this.#trimmedThrough}, so ${expectedSeq} should be first`,
        })
      } else if (entry.seq === 1 && entry.prevHash !== GENESIS_HASH) {
        this.#report({ kind: 'broken_link', id: entry.id, seq: 1, detail: 'the first entry does not start the chain' })
      }
    } else if (previous) {
      if (entry.seq !== previous.seq + 1 || entry.prevHash !== previous.hash) {
        const gap = entry.seq - previous.seq - 1
        const detail =
          entry.seq > previous.seq + 1
            ? `${gap} entr${gap === 1 ? 'y is' : 'ies are'} missing between ${previous.seq} and ${entry.seq}`
            : `entry ${entry.seq} does not follow entry ${previous.seq}`
        this.#report({ kind: 'broken_link', id: entry.id, seq: entry.seq, detail })
      }
    }
    // The stored hash, not the recomputed one: an edited entry is reported once, not again at its successor.
    this.#last = { id: entry.id, seq: entry.seq, hash: entry.hash }
  }

  /**
   * Ends the walk. `head`: the head recorded by the last append, read after
   * the last entry with nothing appended in between; `null` when the log has
   * none.
   */
  finish(head: HistoryHead | null): HistoryVerification {
    const last = this.#last
    if (head === null) {
      if (this.#checked > 0) this.#report({ kind: 'head_mismatch', detail: 'the log holds entries but no head: it was rewritten outside keyrot' })
    } else if (this.#checked === 0) {
      if (head.seq > head.trimmedThrough) {
        this.#report({ kind: 'head_mismatch', seq: head.seq, detail: `the head names entry ${head.seq} but the log holds no entry: they were deleted` })
      }
    } else if (!last) {
      this.#report({ kind: 'head_mismatch', seq: head.seq, detail: `the newest entry cannot be read, so it cannot be matched with the head (entry ${head.seq})` })
    } else if (last.seq !== head.seq || last.hash !== head.hash) {
      const detail =
        last.seq < head.seq
          ? `the newest entry is ${last.seq} but ${head.seq} was appended: entries were deleted at the end`
          : last.seq > head.seq
            ? `entries after ${head.seq} were added outside the log`
            : `entry ${last.seq} is not the one appended`
      this.#report({ kind: 'head_mismatch', id: last.id, seq: last.seq, detail })
    }
    const first = this.#first
    return {
      ok: this.#problemCount === 0,
      checked: this.#checked,
      problems: this.#problems,
      trimmed: head?.trimmedThrough ?? 0,
      first,
      last,
    }
  }

  #report(problem: HistoryProblem): void {
    this.#problemCount++
    if (this.#problems.length < MAX_REPORTED_PROBLEMS) this.#problems.push(problem)
  }
}
