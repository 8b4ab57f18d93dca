import { LRUCache } from 'lru-cache'
import { systemClock, type Clock } from '../clock.js'
import { silentLogger, type Logger } from '../logger.js'

/**
 * Remembers request nonces for replay protection. Implementations: the
 * in-process {@link MemoryReplayStore} and `RedisReplayStore` from
 * `@keyrot/redis`, whose refusal holds across replicas.
 */
export interface ReplayStore {
  /**
   * Records `key` for `ttlMs` and resolves `true` if it was not already
   * recorded (the first sighting), `false` if it was (a replay).
   *
   * Concurrency guarantee: atomic. Of concurrent calls with one key, exactly
   * one resolves `true`. Rejects when the backend cannot answer.
   */
  remember(key: string, ttlMs: number): Promise<boolean>
}

export interface MemoryReplayStoreOptions {
  /**
   * Most nonces kept. Default 100,000. When more distinct nonces arrive
   * within one retention period, the oldest are forgotten early and a
   * warning is logged once: size it at least peak requests per second ×
   * twice the tolerance in seconds. Must be positive.
   */
  maxEntries?: number
  /** Time source (epoch ms). Default: `Date.now`. */
  clock?: Clock
  /** Where the early-eviction warning goes. Default: silent. */
  logger?: Logger
}

/**
 * Nonces in process memory, each forgotten after its TTL, at most
 * `maxEntries` of them. Each replica has its own: behind a load balancer a
 * replay sent to another replica is not caught; use `RedisReplayStore` there.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #seen: LRUCache<string, number>
  readonly #clock: Clock
  #warned = false

  constructor(options: MemoryReplayStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('MemoryReplayStore options must be an object')
    const maxEntries = options.maxEntries ?? 100_000
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`maxEntries must be a positive integer; got ${String(maxEntries)}`)
    this.#clock = options.clock ?? systemClock
    const logger = options.logger ?? silentLogger
    this.#seen = new LRUCache<string, number>({
      max: maxEntries,
      ttlResolution: 0,
      perf: this.#clock,
      dispose: (expiresAt, _key, reason) => {
        if (reason !== 'evict' || this.#warned || expiresAt <= this.#clock.now()) return
        this.#warned = true
        logger.warn(
          { event: 'replay_store.evicted_live_nonce', maxEntries },
          'keyrot forgot a request nonce before its window ended: raise MemoryReplayStore maxEntries or use RedisReplayStore',
        )
      },
    })
  }

  /** Nonces held now (including any past their TTL not yet dropped). */
  get size(): number {
    return this.#seen.size
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    // has() and set() run with no await between them: atomic in one process.
    if (this.#seen.has(key)) return false
    const ttl = Math.max(1, Math.ceil(ttlMs))
    this.#seen.set(key, this.#clock.now() + ttl, { ttl })
    return true
  }
}
