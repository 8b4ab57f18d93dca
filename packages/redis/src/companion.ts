import { StoreUnavailableError, type Duration } from '@keyrot/core'
import { duplicateForData, whenReady, withDeadline } from './connection.js'
import { isClusterClient, positiveDuration, requireClient, resolveKeyPrefix, type RedisClient } from './options.js'

/**
 * What the store's companions on Redis (rate limiter, replay store, admin
 * history) share: the options that say which Redis and keys to use, and one
 * fail-fast connection of their own.
 */

/** The options every companion takes; each documents them in its own `Options` type. */
export interface CompanionOptions {
  client: RedisClient
  keyPrefix?: string
  timeout?: Duration
}

export interface ResolvedCompanionOptions {
  client: RedisClient
  cluster: boolean
  keyPrefix: string
  timeoutMs: number
}

/**
 * Checks a companion's options once (never mutating them); throws a
 * `TypeError` naming the option that is wrong. `name` is the class, for the
 * message when `options` is not an object.
 */
export function resolveCompanionOptions(name: string, options: CompanionOptions, defaultTimeout: Duration): ResolvedCompanionOptions {
  if (options === null || typeof options !== 'object') throw new TypeError(`${name} options must be an object: { client }`)
  const client = requireClient(options.client)
  const keyPrefix = resolveKeyPrefix(options.keyPrefix)
  const timeoutMs = positiveDuration(options.timeout ?? defaultTimeout, 'timeout')
  return { client, cluster: isClusterClient(client), keyPrefix, timeoutMs }
}

/**
 * A companion's own connection: a fail-fast duplicate of the application's
 * client (never a command on the client itself, never closing it). Each
 * `call` waits for a first connection but never for a reconnection, and fails
 * with `StoreUnavailableError` past `timeoutMs`, waiting included.
 */
export class FailFastConnection {
  readonly timeoutMs: number
  readonly #redis: RedisClient
  readonly #closedMessage: string
  #closed = false

  /** `closedMessage` is the error of a call made after `close()`. */
  constructor(options: ResolvedCompanionOptions, closedMessage: string) {
    this.timeoutMs = options.timeoutMs
    this.#closedMessage = closedMessage
    this.#redis = duplicateForData(options.client, options.cluster, options.timeoutMs)
    // Failures surface on each call as StoreUnavailableError; this only keeps ioredis from reporting them as unhandled.
    this.#redis.on('error', () => {})
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Throws `StoreUnavailableError` once closed. */
  assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError(this.#closedMessage)
  }

  /** Runs `work` on the connection once it is ready; `what` and `keyId` name the call in its error. */
  call<T>(what: string, keyId: string | undefined, work: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError(this.#closedMessage))
    return withDeadline(this.timeoutMs, what, keyId, async () => {
      // Calls made while the first connection is being made share one wait (see whenReady).
      await whenReady(this.#redis)
      return work(this.#redis)
    })
  }

  /** Closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#redis.disconnect()
  }
}
