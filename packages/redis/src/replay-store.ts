import { parseDuration, StoreUnavailableError, type Duration, type ReplayStore } from '@keyrot/core'
import { duplicateForData, whenReady, withDeadline } from './connection.js'
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

const KEY_PREFIX_PATTERN = /^[A-Za-z0-9:._-]{1,64}$/

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
  readonly #redis: RedisClient
  /** One wait for the connection shared by every check made while it connects. */
  #connecting: Promise<void> | null = null
  #closed = false

  constructor(options: RedisReplayStoreOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('RedisReplayStore options must be an object: { client }')
    const client = options.client as RedisClient | undefined
    if (!client || typeof (client as { duplicate?: unknown }).duplicate !== 'function') {
      throw new TypeError('client must be an ioredis Redis or Cluster instance (it needs duplicate())')
    }
    const keyPrefix = options.keyPrefix ?? 'keyrot'
    if (typeof keyPrefix !== 'string' || !KEY_PREFIX_PATTERN.test(keyPrefix)) {
      throw new TypeError(`keyPrefix must be 1-64 letters, digits or : . _ -; got ${JSON.stringify(keyPrefix)}`)
    }
    const timeoutMs = parseDuration(options.timeout ?? '500ms', 'timeout')
    if (timeoutMs <= 0) throw new TypeError(`timeout must be greater than 0; got ${JSON.stringify(options.timeout)}`)
    this.keyPrefix = keyPrefix
    this.timeoutMs = timeoutMs
    this.#redis = duplicateForData(client, (client as { isCluster?: boolean }).isCluster === true, timeoutMs)
    // Failures surface on each call as StoreUnavailableError; this only keeps ioredis from reporting them as unhandled.
    this.#redis.on('error', () => {})
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
    if (this.#closed) throw new StoreUnavailableError('The replay store is closed.')
    const ttl = Math.max(1, Math.ceil(ttlMs))
    const reply = await withDeadline(this.timeoutMs, 'check a request nonce', undefined, async () => {
      await this.#ready()
      return this.#redis.set(this.keyOf(key), '1', 'PX', ttl, 'NX')
    })
    if (reply === 'OK') return true
    if (reply === null) return false
    throw new StoreUnavailableError(`The Redis replay store gave an unexpected reply to SET NX: ${JSON.stringify(reply).slice(0, 60)}`)
  }

  #ready(): Promise<void> {
    if (this.#redis.status === 'ready') return Promise.resolve()
    if (!this.#connecting) {
      const connecting = whenReady(this.#redis)
      this.#connecting = connecting
      const clear = () => {
        if (this.#connecting === connecting) this.#connecting = null
      }
      connecting.then(clear, clear)
    }
    return this.#connecting
  }

  /** Closes the replay store's own connection (never the application's client). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#redis.disconnect()
  }
}
