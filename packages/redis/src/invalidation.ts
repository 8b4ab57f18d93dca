import { randomBytes } from 'node:crypto'
import { isKeyId, type Clock, type InvalidationEvent, type InvalidationListener, type Logger } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'
import type { RedisClient } from './options.js'

/**
 * Messages on the invalidation channel: `k|<keyId>|<sentAt>` for a changed
 * key, `h|<sender>|<seq>` for a heartbeat. Neither carries a secret.
 */
export function keyMessage(keyId: string, sentAt: number): string {
  return `k|${keyId}|${sentAt}`
}

export type FeedMessage = { type: 'key'; keyId: string; sentAt: number | undefined } | { type: 'heartbeat'; sender: string; seq: number }

/** Parses a channel message; anything malformed is ignored (`null`). */
export function parseFeedMessage(message: string): FeedMessage | null {
  const [kind, a, b, ...rest] = message.split('|')
  if (rest.length > 0 || a === undefined || b === undefined) return null
  if (kind === 'k' && isKeyId(a)) {
    const sentAt = Number(b)
    return { type: 'key', keyId: a, sentAt: Number.isSafeInteger(sentAt) ? sentAt : undefined }
  }
  if (kind === 'h') {
    const seq = Number(b)
    return Number.isSafeInteger(seq) ? { type: 'heartbeat', sender: a, seq } : null
  }
  return null
}

/** How the feed reaches Redis: subscribe on one connection, publish on another. */
export interface FeedTransport {
  /**
   * Starts listening; calls `onMessage` per message and `onReconnect` whenever
   * messages may have been lost. `down: true` means messages are being lost
   * from now on (the subscriber is gone) until a later call with `down: false`.
   */
  start(onMessage: (message: string) => void, onReconnect: (reason: string, down?: boolean) => void): void
  /** Resolves once the first subscription is confirmed. */
  ready(): Promise<void>
  /** Subscribes again (after a missed heartbeat): the subscription may be gone (slot migration). */
  resubscribe(): void
  publish(message: string): Promise<unknown>
  close(): Promise<void>
}

export interface InvalidationFeedOptions {
  transport: FeedTransport
  heartbeatIntervalMs: number
  heartbeatTimeoutMs: number
  clock: Clock
  logger: Logger
}

/**
 * Delivers other replicas' changes to the store's listeners, and says when
 * it may have missed some. Pub/sub is at-most-once: when the subscriber
 * reconnects, or a heartbeat this feed publishes on its own channel does not
 * come back within `heartbeatTimeoutMs`, listeners get `{ type: 'reset' }`
 * so keyrings drop cached key states. Once heartbeats come back after a
 * miss, listeners get a second reset: states cached during the gap may be
 * stale too.
 */
export class InvalidationFeed {
  readonly #transport: FeedTransport
  readonly #listeners = new Set<InvalidationListener>()
  readonly #options: InvalidationFeedOptions
  readonly #sender = randomBytes(9).toString('base64url')
  /** Heartbeats sent and not yet seen, by sequence number → send time. */
  readonly #outstanding = new Map<number, number>()
  #seq = 0
  #healthy = true
  /** The subscription is confirmed and no disconnect was seen since. */
  #subscribed = false
  #timer: NodeJS.Timeout | undefined
  #started = false
  #closed = false

  constructor(options: InvalidationFeedOptions) {
    this.#options = options
    this.#transport = options.transport
  }

  /** Whether heartbeats currently come back in time. */
  get healthy(): boolean {
    return this.#healthy
  }

  /**
   * Whether a change published now would reach this replica: subscribed, not
   * disconnected, heartbeats coming back. While it is false, keyrings do not
   * cache key states (every verify reads the store).
   */
  get live(): boolean {
    return this.#subscribed && this.#healthy && !this.#closed
  }

  subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    this.#start()
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** Resolves once the subscription is live (tests and startup checks). */
  ready(): Promise<void> {
    this.#start()
    return this.#transport.ready()
  }

  #start(): void {
    if (this.#started || this.#closed) return
    this.#started = true
    this.#transport.start(
      (message) => this.#onMessage(message),
      (reason, down = false) => {
        this.#subscribed = !down
        this.#emit({ type: 'reset', reason })
      },
    )
    this.#transport.ready().then(
      () => {
        this.#subscribed = true
      },
      () => {},
    )
    this.#timer = setInterval(() => this.#tick(), this.#options.heartbeatIntervalMs)
    this.#timer.unref()
  }

  #onMessage(message: string): void {
    const parsed = parseFeedMessage(message)
    if (parsed === null) return
    if (parsed.type === 'key') {
      this.#emit(parsed.sentAt === undefined ? { type: 'key', keyId: parsed.keyId } : { type: 'key', keyId: parsed.keyId, sentAt: parsed.sentAt })
      return
    }
    if (parsed.sender !== this.#sender) return
    for (const seq of this.#outstanding.keys()) if (seq <= parsed.seq) this.#outstanding.delete(seq)
    if (!this.#healthy) {
      this.#healthy = true
      this.#options.logger.info({ event: 'invalidation.recovered' }, 'keyrot invalidation feed receives heartbeats again')
      this.#emit({ type: 'reset', reason: 'invalidation feed recovered after missed heartbeats' })
    }
  }

  #tick(): void {
    const now = this.#options.clock.now()
    if (this.#healthy) {
      let oldest = Number.POSITIVE_INFINITY
      for (const sentAt of this.#outstanding.values()) oldest = Math.min(oldest, sentAt)
      if (now - oldest >= this.#options.heartbeatTimeoutMs) {
        this.#healthy = false
        this.#outstanding.clear()
        this.#options.logger.warn({ event: 'invalidation.heartbeat_missed' }, 'keyrot missed its invalidation heartbeat; dropping cached key states')
        this.#emit({ type: 'reset', reason: 'invalidation heartbeat missed' })
        this.#transport.resubscribe()
      }
    }
    const seq = ++this.#seq
    // While unhealthy any heartbeat that comes back ends the gap; only the latest matters.
    if (!this.#healthy) this.#outstanding.clear()
    this.#outstanding.set(seq, now)
    this.#transport.publish(`h|${this.#sender}|${seq}`).catch(() => {
      // A failed publish shows up as a missed heartbeat.
    })
  }

  #emit(event: InvalidationEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (error) {
        this.#options.logger.error({ event: 'invalidation.listener_failed', err: { message: (error as Error)?.message } }, 'keyrot invalidation listener threw')
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#listeners.clear()
    await this.#transport.close()
  }
}

/**
 * The feed over a standalone Redis: `SUBSCRIBE` on a dedicated connection
 * (made again on every `ready`, so a reconnect is noticed), `PUBLISH` on the
 * data connection or from inside the write scripts.
 */
export class StandaloneTransport implements FeedTransport {
  readonly #subscriber: Redis
  readonly #publisher: () => RedisClient
  readonly #channel: string
  #ready: Promise<void> | undefined
  #connections = 0

  constructor(subscriber: Redis, publisher: () => RedisClient, channel: string) {
    this.#subscriber = subscriber
    this.#publisher = publisher
    this.#channel = channel
  }

  start(onMessage: (message: string) => void, onReconnect: (reason: string, down?: boolean) => void): void {
    const subscriber = this.#subscriber
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) onMessage(message)
    })
    subscriber.on('error', () => {
      // Connection errors show up as reconnects and missed heartbeats.
    })
    let resolveReady: () => void = () => {}
    this.#ready = new Promise((resolve) => {
      resolveReady = resolve
    })
    const onConnected = () => {
      const first = this.#connections++ === 0
      subscriber.subscribe(this.#channel).then(
        () => {
          if (first) resolveReady()
          else onReconnect('invalidation subscriber reconnected')
        },
        () => {
          // Retried on the next 'ready' or missed heartbeat.
        },
      )
    }
    subscriber.on('ready', onConnected)
    if (subscriber.status === 'ready') onConnected()
    // Messages published from now until the next subscription are lost:
    // listeners drop cached states at once, not only when the subscriber is back.
    subscriber.on('close', () => {
      if (this.#connections > 0) onReconnect('invalidation subscriber disconnected', true)
    })
  }

  ready(): Promise<void> {
    return this.#ready ?? Promise.reject(new Error('invalidation feed not started'))
  }

  resubscribe(): void {
    if (this.#subscriber.status === 'ready') this.#subscriber.subscribe(this.#channel).catch(() => {})
  }

  publish(message: string): Promise<unknown> {
    return this.#publisher().publish(this.#channel, message)
  }

  async close(): Promise<void> {
    this.#subscriber.disconnect()
  }
}

/**
 * The feed over a Cluster: sharded pub/sub (`SSUBSCRIBE` through ioredis's
 * sharded subscribers, `SPUBLISH` routed to the channel's slot). A node
 * leaving, the subscribers being rebuilt (slot moves) or the cluster
 * reconnecting all count as possible loss.
 */
export class ClusterTransport implements FeedTransport {
  readonly #subscriber: Cluster
  readonly #publisher: () => RedisClient
  readonly #channel: string
  #ready: Promise<void> | undefined

  constructor(subscriber: Cluster, publisher: () => RedisClient, channel: string) {
    this.#subscriber = subscriber
    this.#publisher = publisher
    this.#channel = channel
  }

  start(onMessage: (message: string) => void, onReconnect: (reason: string, down?: boolean) => void): void {
    const subscriber = this.#subscriber
    subscriber.on('smessage', (channel: string, message: string) => {
      if (channel === this.#channel) onMessage(message)
    })
    subscriber.on('error', () => {})
    let confirmed = false
    this.#ready = new Promise((resolve) => {
      const subscribe = () => {
        subscriber.ssubscribe(this.#channel).then(
          () => {
            confirmed = true
            resolve()
          },
          () => setTimeout(subscribe, 100).unref(),
        )
      }
      subscribe()
    })
    const lost = (reason: string) => () => {
      if (confirmed) onReconnect(reason)
    }
    // Redis unsubscribes sharded subscribers when their slot moves away; ioredis
    // 5.9 surfaces that push only as an error on the node's subscriber.
    subscriber.on('nodeError', (error: Error) => {
      if (confirmed && /sunsubscribe/i.test(error?.message ?? '')) {
        onReconnect('the invalidation channel slot moved')
        this.resubscribe()
      }
    })
    subscriber.on('-node', lost('a cluster node left'))
    subscriber.on('subscribersReady', lost('sharded subscribers were rebuilt'))
    subscriber.on('ready', lost('cluster connection reconnected'))
  }

  ready(): Promise<void> {
    return this.#ready ?? Promise.reject(new Error('invalidation feed not started'))
  }

  resubscribe(): void {
    const subscriber = this.#subscriber
    subscriber
      .sunsubscribe(this.#channel)
      .catch(() => {})
      .then(() => subscriber.ssubscribe(this.#channel))
      .catch(() => {})
  }

  publish(message: string): Promise<unknown> {
    return (this.#publisher() as Cluster).spublish(this.#channel, message)
  }

  async close(): Promise<void> {
    this.#subscriber.disconnect()
  }
}
