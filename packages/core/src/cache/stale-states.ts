import { LRUCache } from 'lru-cache'
import type { KeyRecord } from '../types.js'

interface Confirmed {
  record: KeyRecord
  /** When this replica last knew the record was current (epoch ms). */
  confirmedAt: number
}

/**
 * The last confirmed state of each key, kept to answer while the store
 * cannot (stale-if-error, RFC 5861's idea applied to key state).
 *
 * A state is confirmed when it is read from the store, and again on every
 * cache hit while the invalidation feed is live (no change arrived for it,
 * and one would have). It serves for at most `maxAgeMs` after its last
 * confirmation, and a per-key invalidation (revocation, expiry change,
 * rotation, from this replica or another) drops it at once: after that the
 * replica knows the copy is wrong. A feed reset ("messages may have been
 * lost") does not drop it: losing messages during an outage is the risk
 * `maxAgeMs` bounds, and the store is read again as soon as it answers.
 *
 * Bounded like the rest of the cache: at most `maxEntries` keys, least
 * recently used first out.
 */
export class StaleStates {
  readonly #entries: LRUCache<string, Confirmed>
  readonly #maxAgeMs: number

  constructor(options: { maxEntries: number; maxAgeMs: number }) {
    this.#maxAgeMs = options.maxAgeMs
    this.#entries = new LRUCache({ max: Math.max(1, options.maxEntries) })
  }

  get size(): number {
    return this.#entries.size
  }

  /** Records `record` as current at `now` (it was just read from the store). */
  confirm(record: KeyRecord, now: number): void {
    const entry = this.#entries.get(record.id)
    if (entry !== undefined && entry.record === record) entry.confirmedAt = Math.max(entry.confirmedAt, now)
    else this.#entries.set(record.id, { record, confirmedAt: now })
  }

  /** Marks the copy of `keyId` current at `now` if it is `record` (a cache hit while the feed is live). */
  reconfirm(keyId: string, record: KeyRecord, now: number): void {
    const entry = this.#entries.get(keyId)
    if (entry !== undefined && entry.record === record) entry.confirmedAt = Math.max(entry.confirmedAt, now)
  }

  /**
   * The copy of `keyId` if it was confirmed within `maxAgeMs` of `now`.
   * The caller still checks revocation and expiry on it: a key past its
   * `expiresAt` is refused as expired, so grace deadlines stay exact.
   */
  get(keyId: string, now: number): KeyRecord | undefined {
    const entry = this.#entries.get(keyId)
    if (entry === undefined) return undefined
    if (now - entry.confirmedAt > this.#maxAgeMs) {
      this.#entries.delete(keyId)
      return undefined
    }
    return entry.record
  }

  /** Drops the copy of `keyId`: its state changed. */
  drop(keyId: string): void {
    this.#entries.delete(keyId)
  }

  clear(): void {
    this.#entries.clear()
  }
}
