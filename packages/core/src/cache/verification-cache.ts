import { StaleStates } from './stale-states.js'
import { createTokenDigester } from './token-digest.js'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'
import type { KeyRecord } from '../types.js'

export interface VerificationCacheOptions {
  /** Most token proofs kept (digest → key id). */
  maxProofs: number
  /** Most key states kept. */
  maxStates: number
  /** Longest a key's state is trusted before it is read from the store again (ms). */
  stateTtlMs: number
  clock: Clock
  /**
   * Longest a confirmed state may answer while the store cannot (ms); `0`
   * keeps none. See {@link StaleStates}. Default 0.
   */
  staleIfErrorMs?: number
  /** Whether the invalidation feed is live: a cache hit then confirms its state again. Default: always. */
  feedLive?: () => boolean
}

interface PendingLoad {
  promise: Promise<KeyRecord | null>
  /** Set when the key is invalidated while the load is in flight: its result must not be cached. */
  stale: boolean
}

/**
 * The verification cache keeps two things apart:
 *
 * - **proofs**: "the token with this digest belongs to key X". Argon2 proved
 *   it once and it never changes, since a key's secret never changes. Keyed
 *   by a digest of the token salted with a per-process random pepper, so the
 *   cache holds no plaintext and its keys are useless outside this process.
 * - **states**: a key's mutable record (expiry, revocation, scopes), trusted
 *   for at most `stateTtlMs` and never past the key's own `expiresAt`.
 *
 * Invalidating a state (rotate, revoke, a message from another replica) never
 * drops a proof, so a flush costs store reads, not Argon2 runs.
 *
 * A state load that was in flight when its key was invalidated does not put
 * its (possibly pre-change) result back into the cache. The lifecycle code
 * in `Keyring` is the only caller of `invalidate`.
 */
export class VerificationCache {
  readonly #proofs: LRUCache<string, string>
  readonly #states: LRUCache<string, KeyRecord>
  readonly #pending = new Map<string, PendingLoad>()
  readonly #digest = createTokenDigester()
  readonly #stateTtlMs: number
  readonly #clock: Clock
  readonly #stale: StaleStates | null
  readonly #feedLive: () => boolean
  #hits = 0
  #misses = 0

  constructor(options: VerificationCacheOptions) {
    this.#clock = options.clock
    this.#stateTtlMs = options.stateTtlMs
    this.#proofs = new LRUCache({ max: options.maxProofs })
    const staleIfErrorMs = options.staleIfErrorMs ?? 0
    this.#stale = staleIfErrorMs > 0 ? new StaleStates({ maxEntries: options.maxStates, maxAgeMs: staleIfErrorMs }) : null
    this.#feedLive = options.feedLive ?? (() => true)
    this.#states = new LRUCache({
      max: options.maxStates,
      ttl: Math.max(1, options.stateTtlMs),
      ttlResolution: 0,
      perf: options.clock,
    })
  }

  /** A salted SHA-256 of the token: the cache key. Not reversible, not stable across processes. */
  digest(token: string): string {
    return this.#digest(token)
  }

  proofOf(digest: string): string | undefined {
    return this.#proofs.get(digest)
  }

  rememberProof(digest: string, keyId: string): void {
    this.#proofs.set(digest, keyId)
  }

  /** Forgets a proof (the key is gone for good). */
  forgetProof(digest: string): void {
    this.#proofs.delete(digest)
  }

  /** The cached state of a key, if still trusted. `now`: the caller's clock reading, if it has one (saves a read). */
  cachedState(keyId: string, now?: number): KeyRecord | undefined {
    const state = this.#states.get(keyId)
    if (state === undefined) this.#misses++
    else {
      this.#hits++
      // Trusted and unchanged as far as a live feed can tell: confirmed as of now.
      if (this.#stale !== null && this.#feedLive()) this.#stale.reconfirm(keyId, state, now ?? this.#clock.now())
    }
    return state
  }

  /**
   * The key's state from the cache, or from `load` (one load per key at a
   * time, shared by concurrent callers). A loaded state is cached unless the
   * key was invalidated meanwhile, or `keep` is false (the feed is down: the
   * state is used once, and only confirmed for stale-if-error).
   */
  async state(keyId: string, load: (keyId: string) => Promise<KeyRecord | null>, keep = true): Promise<KeyRecord | null> {
    // Callers count the hit or miss through cachedState() first; look again silently.
    const cached = this.#states.get(keyId)
    if (cached !== undefined) return cached
    const pending = this.#pending.get(keyId)
    if (pending) return pending.promise
    const entry: PendingLoad = { stale: false, promise: Promise.resolve(null) }
    entry.promise = (async () => {
      try {
        const record = await load(keyId)
        if (record && !entry.stale) {
          this.#stale?.confirm(record, this.#clock.now())
          if (keep) this.#store(record)
        }
        return record
      } finally {
        if (this.#pending.get(keyId) === entry) this.#pending.delete(keyId)
      }
    })()
    this.#pending.set(keyId, entry)
    return entry.promise
  }

  #store(record: KeyRecord): void {
    let ttl = this.#stateTtlMs
    if (record.expiresAt !== null) ttl = Math.min(ttl, record.expiresAt - this.#clock.now())
    if (ttl <= 0) return
    this.#states.set(record.id, record, { ttl })
  }

  /** Puts a state the caller just read or wrote (after a lifecycle change). */
  put(record: KeyRecord): void {
    const pending = this.#pending.get(record.id)
    if (pending) {
      pending.stale = true
      this.#pending.delete(record.id)
    }
    this.#stale?.confirm(record, this.#clock.now())
    this.#store(record)
  }

  /**
   * The last confirmed state of a key, for answering while the store cannot:
   * `undefined` when there is none younger than `staleIfErrorMs` (or the key
   * was invalidated since). See {@link StaleStates}.
   */
  staleState(keyId: string): KeyRecord | undefined {
    return this.#stale?.get(keyId, this.#clock.now())
  }

  /** Drops a key's state (and its stale copy) and poisons any load of it in flight. */
  invalidate(keyId: string): void {
    this.#states.delete(keyId)
    this.#stale?.drop(keyId)
    const pending = this.#pending.get(keyId)
    if (pending) {
      pending.stale = true
      this.#pending.delete(keyId)
    }
  }

  /**
   * Drops every cached state (not the proofs, nor the stale copies: the feed
   * may have lost messages, which is the risk `staleIfErrorMs` bounds) and
   * poisons every load in flight.
   */
  invalidateAll(): void {
    this.#states.clear()
    for (const pending of this.#pending.values()) pending.stale = true
    this.#pending.clear()
  }

  /** Drops everything, proofs included. */
  clear(): void {
    this.invalidateAll()
    this.#stale?.clear()
    this.#proofs.clear()
  }

  stats(): { proofs: number; states: number; hits: number; misses: number } {
    return { proofs: this.#proofs.size, states: this.#states.size, hits: this.#hits, misses: this.#misses }
  }
}
