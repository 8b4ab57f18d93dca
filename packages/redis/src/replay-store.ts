import { StoreUnavailableError, type Duration, type ReplayStore } from '@keyrot/core'
import { FailFastConnection, resolveCompanionOptions } from './companion.js'
import type { RedisClient } from './options.js'
import type { RedisStore } from './redis-store.js'

export interface RedisReplayStoreOptions {
  /**
   * The application's ioredis `Redis` or `Cluster`, used as a template: the
   * replay store opens its own fail-fast duplicate, never sends a command on
   * `client` and never closes it.
   */
  client: RedisClient
  /** Prefix of the nonce keys (`<prefix>:nonce:<keyId>:<nonce>`). Letters, digits and `: . _ -`, at most 64. Default `'keyrot'`. */
  keyPrefix?: string
  /**
   * Longest one check may take. Past it the check fails with
   * `StoreUnavailableError` (503 in the adapters): a request is never let
   * through unchecked. ms or `'500ms'`. Default `'500ms'`. Must be greater than 0.
   */
  timeout?: Duration
}

/**
 * Replay protection shared by every replica: each nonce is written with
 * `SET <prefix>:nonce:<key> 1 NX PX <ttl>`. Redis runs it atomically, so of
 * any number of replicas receiving one request, exactly one sees the key
 * created and accepts it; the others refuse it as a replay until the key
 * expires. One key per nonce, so it works unchanged on a Redis Cluster.
 *
 * @example
 * const replayStore = RedisReplayStore.forStore(store) // the keyring's RedisStore
 * app.post('/v1/payments', signedRequest({ keyring, replayStore }), handler)
 */
export class RedisReplayStore implements ReplayStore {
  readonly keyPrefix: string
  readonly timeoutMs: number
  readonly #connection: FailFastConnection

  constructor(options: RedisReplayStoreOptions) {
    const resolved = resolveCompanionOptions('RedisReplayStore', options, '500ms')
    this.keyPrefix = resolved.keyPrefix
    this.timeoutMs = resolved.timeoutMs
    this.#connection = new FailFastConnection(resolved, 'The replay store is closed.')
  }

  /** A replay store on the same Redis (client, key prefix and timeout) as a `RedisStore`. */
  static forStore(store: RedisStore): RedisReplayStore {
    return new RedisReplayStore({ client: store.options.client, keyPrefix: store.options.keyPrefix, timeout: store.options.timeoutMs })
  }

  /** The Redis key that holds one nonce. */
  keyOf(key: string): string {
    return `${this.keyPrefix}:nonce:${key}`
  }

  async remember(key: string, ttlMs: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlMs))
    const reply = await this.#connection.call('check a request nonce', undefined, (redis) => redis.set(this.keyOf(key), '1', 'PX', ttl, 'NX'))
    if (reply === 'OK') return true
    if (reply === null) return false
    throw new StoreUnavailableError(`The Redis replay store gave an unexpected reply to SET NX: ${JSON.stringify(reply).slice(0, 60)}`)
  }

  /** Closes the replay store's own connection (never the application's client). Idempotent. */
  async close(): Promise<void> {
    this.#connection.close()
  }
}
