import { keyView } from './key-view.js'
import { grown, SlotMap } from './slot-map.js'
import { createTokenDigester } from './token-digest.js'
import type { Clock } from '../clock.js'
import type { ApiKey, KeyRecord } from '../types.js'

export interface VerificationCacheOptions {
  /** Most keys kept (each with its token's proof, its state and its stale copy). */
  maxEntries?: number
  /** @deprecated one entry per key now holds proof and state: use `maxEntries` (the larger of the two is used). */
  maxProofs?: number
  /** @deprecated see `maxProofs`. */
  maxStates?: number
  /** Longest a key's state is trusted before it is read from the store again (ms). */
  stateTtlMs: number
  clock: Clock
  /**
   * Longest a confirmed state may answer while the store cannot (ms); `0`
   * keeps none. See {@link VerificationCache.staleState}. Default 0.
   */
  staleIfErrorMs?: number
  /** Whether the invalidation feed is live: a cache hit then confirms its state again. Default: always. */
  feedLive?: () => boolean
}

/** A state read from the store: the record (with its hash, for a proof) and the view the cache keeps of it. */
export interface LoadedKey {
  record: KeyRecord
  key: ApiKey
}

interface PendingLoad {
  promise: Promise<LoadedKey | null>
  /** Set when the key is invalidated while the load is in flight: its result must not be cached. */
  stale: boolean
}

/**
 * One entry per key, holding three things with different lifetimes:
 *
 * - the **proof**: "the token with this digest belongs to this key". Argon2
 *   proved it once and it never changes, since a key's secret never changes.
 *   Kept as a digest of the token salted with a per-process random pepper,
 *   so the cache holds no plaintext and its contents are useless outside
 *   this process.
 * - the **state**: the key's frozen public view (key-view.ts), which is
 *   also what the verify path checks. Trusted for at most `stateTtlMs` and
 *   never past the key's own `expiresAt`.
 * - the **stale copy** (stale-if-error, RFC 5861's idea applied to key
 *   state): the same view, kept to answer while the store cannot, for at
 *   most `staleIfErrorMs` after this replica last confirmed it (read from
 *   the store, or a cache hit while the invalidation feed is live: no change
 *   arrived for it, and one would have).
 *
 * Invalidating a key (rotate, revoke, a message from another replica) drops
 * its state and stale copy, never its proof, so a flush costs store reads,
 * not Argon2 runs. A feed reset ("messages may have been lost") drops every
 * state but keeps the stale copies: losing messages during an outage is the
 * risk `staleIfErrorMs` bounds. A state load that was in flight when its key
 * was invalidated does not put its (possibly pre-change) result back. The
 * lifecycle code in `Keyring` is the only caller of `invalidate`.
 *
 * Entries live in slots of parallel arrays ({@link SlotMap}, CLOCK
 * eviction): a key costs one `Map` entry, the digest, its view and a few
 * array cells. See the README's "Hashing and the verification cache".
 */
export class VerificationCache {
  readonly #slots: SlotMap
  #digests: Array<string | undefined> = []
  #views: Array<ApiKey | undefined> = []
  /** Epoch ms until which each slot's state is trusted; 0 for none. */
  #until = new Float64Array(0)
  /** Epoch ms of each slot's last confirmation (its stale copy's age); 0 for none. */
  #confirmed = new Float64Array(0)
  readonly #pending = new Map<string, PendingLoad>()
  readonly #digest = createTokenDigester()
  readonly #stateTtlMs: number
  readonly #staleIfErrorMs: number
  readonly #clock: Clock
  readonly #feedLive: () => boolean
  #hits = 0
  #misses = 0

  constructor(options: VerificationCacheOptions) {
    this.#clock = options.clock
    this.#stateTtlMs = options.stateTtlMs
    this.#staleIfErrorMs = options.staleIfErrorMs ?? 0
    this.#feedLive = options.feedLive ?? (() => true)
    const max = options.maxEntries ?? Math.max(options.maxProofs ?? 0, options.maxStates ?? 0, 1)
    this.#slots = new SlotMap({
      max,
      evict: (slot) => this.#empty(slot),
      grow: (capacity) => {
        this.#until = grown(this.#until, capacity)
        this.#confirmed = grown(this.#confirmed, capacity)
      },
    })
  }

  /** A salted SHA-256 of the token: the proof's form. Not reversible, not stable across processes. */
  digest(token: string): string {
    return this.#digest(token)
  }

  /** Whether the token with `digest` was proven to be `keyId`'s. */
  proven(keyId: string, digest: string): boolean {
    return this.provenId(keyId, digest) !== undefined
  }

  /**
   * The key id as this cache holds it (the record's own string) when the
   * token with `digest` was proven to be `keyId`'s, else `undefined`. The
   * cache hit goes on with it instead of `keyId`, a slice of the token that
   * would keep the token in memory wherever it is kept.
   */
  provenId(keyId: string, digest: string): string | undefined {
    const slot = this.#slots.get(keyId)
    return slot !== -1 && this.#digests[slot] === digest ? this.#slots.keyAt(slot) : undefined
  }

  rememberProof(digest: string, keyId: string): void {
    this.#digests[this.#slots.claim(keyId)] = digest
  }

  /** The trusted state of a key, if any. `now`: the caller's clock reading, if it has one (saves a read). */
  cachedState(keyId: string, now?: number): ApiKey | undefined {
    const slot = this.#slots.get(keyId)
    if (slot !== -1) {
      const at = now ?? this.#clock.now()
      if (this.#until[slot] as number > at) {
        this.#hits++
        // Trusted and unchanged as far as a live feed can tell: confirmed as of now.
        if (this.#staleIfErrorMs > 0 && this.#feedLive()) this.#confirmed[slot] = at
        return this.#views[slot]
      }
    }
    this.#misses++
    return undefined
  }

  /**
   * Reads the key from the store with `load` (one read per key at a time,
   * shared by concurrent callers). The state is kept unless the key was
   * invalidated meanwhile, or `keep` is false (the feed is down: the state
   * is used once, and only confirmed for stale-if-error).
   */
  load(keyId: string, load: (keyId: string) => Promise<KeyRecord | null>, keep = true): Promise<LoadedKey | null> {
    const pending = this.#pending.get(keyId)
    if (pending) return pending.promise
    const entry: PendingLoad = { stale: false, promise: Promise.resolve(null) }
    entry.promise = (async () => {
      try {
        const record = await load(keyId)
        if (record === null) return null
        const key = keyView(record)
        if (!entry.stale) this.#keep(record.id, key, keep)
        return { record, key }
      } finally {
        if (this.#pending.get(keyId) === entry) this.#pending.delete(keyId)
      }
    })()
    this.#pending.set(keyId, entry)
    return entry.promise
  }

  #keep(keyId: string, key: ApiKey, trusted: boolean): void {
    const now = this.#clock.now()
    let until = 0
    if (trusted) {
      let ttl = this.#stateTtlMs
      if (key.expiresAt !== null) ttl = Math.min(ttl, key.expiresAt - now)
      if (ttl > 0) until = now + ttl
    }
    // Nothing to keep: neither a trusted state nor a stale copy.
    if (until === 0 && this.#staleIfErrorMs === 0) return
    const slot = this.#slots.claim(keyId)
    this.#views[slot] = key
    this.#until[slot] = until
    this.#confirmed[slot] = now
  }

  /**
   * The last confirmed state of a key, for answering while the store cannot:
   * `undefined` when there is none confirmed within `staleIfErrorMs` (or the
   * key was invalidated since). The caller still checks revocation and
   * expiry on it: a key past its `expiresAt` is refused as expired, so
   * grace deadlines stay exact.
   */
  staleState(keyId: string): ApiKey | undefined {
    if (this.#staleIfErrorMs === 0) return undefined
    const slot = this.#slots.peek(keyId)
    if (slot === -1) return undefined
    const view = this.#views[slot]
    if (view === undefined || this.#clock.now() - (this.#confirmed[slot] as number) > this.#staleIfErrorMs) return undefined
    return view
  }

  /** Drops a key's state and stale copy (never its proof) and poisons any load of it in flight. */
  invalidate(keyId: string): void {
    const slot = this.#slots.peek(keyId)
    if (slot !== -1) {
      if (this.#digests[slot] === undefined) {
        this.#empty(slot)
        this.#slots.delete(keyId)
      } else {
        this.#views[slot] = undefined
        this.#until[slot] = 0
        this.#confirmed[slot] = 0
      }
    }
    const pending = this.#pending.get(keyId)
    if (pending) {
      pending.stale = true
      this.#pending.delete(keyId)
    }
  }

  /**
   * Drops every trusted state (not the proofs, nor the stale copies: the
   * feed may have lost messages, which is the risk `staleIfErrorMs` bounds)
   * and poisons every load in flight.
   */
  invalidateAll(): void {
    this.#until.fill(0)
    for (const pending of this.#pending.values()) pending.stale = true
    this.#pending.clear()
  }

  /** Drops everything, proofs included. */
  clear(): void {
    this.invalidateAll()
    this.#digests = []
    this.#views = []
    this.#slots.clear()
  }

  stats(): { proofs: number; states: number; hits: number; misses: number } {
    let proofs = 0
    let states = 0
    for (const [, slot] of this.#slots.entries()) {
      if (this.#digests[slot] !== undefined) proofs++
      if (this.#until[slot] !== 0) states++
    }
    return { proofs, states, hits: this.#hits, misses: this.#misses }
  }

  #empty(slot: number): void {
    this.#digests[slot] = undefined
    this.#views[slot] = undefined
    this.#until[slot] = 0
    this.#confirmed[slot] = 0
  }
}
