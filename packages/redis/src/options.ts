import { parseDuration, silentLogger, systemClock, type Clock, type Duration, type Logger } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'

/** The application's ioredis connection: a standalone `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

/** Store operations that can wait for a replica before reporting success. */
export type DurableOperation = 'insert' | 'rotate' | 'revoke' | 'emergencyRotate' | 'setExpiry'

export interface RedisStoreOptions {
  /**
   * The application's ioredis `Redis` or `Cluster`. Used only as a template:
   * the store opens its own connections with `client.duplicate()` (one for
   * data, one for the invalidation feed) with fail-fast settings, never sends
   * a command on `client` and never closes it.
   */
  client: RedisClient
  /**
   * Prefix of every key and channel the store uses, so several keyrot
   * deployments can share one Redis. Letters, digits and `: . _ -`, at most
   * 64 characters. Default `'keyrot'`.
   */
  keyPrefix?: string
  /**
   * Longest any store call may take, waiting for a connection included. Past
   * it the call throws `StoreUnavailableError` (503 in the adapters). ms or
   * `'300ms'`. Default `'500ms'`. Must be greater than 0.
   */
  timeout?: Duration
  /**
   * How long the record of an expired or revoked key (why it fails, usage,
   * its hash) is kept after its deadline or revocation. ms or `'30d'`.
   * Default `'30d'`. `0` removes the record at the deadline: the key then
   * reads as unknown instead of expired.
   */
  retention?: Duration
  usage?: {
    /**
     * How often batched usage counts are written (one pipelined write per
     * key per interval). A crash loses at most the counts of one interval.
     * ms or `'1s'`. Default `'1s'`. Must be greater than 0.
     */
    flushInterval?: Duration
    /**
     * Most distinct keys counted between two flushes; reaching it flushes at
     * once. Default 10,000. Must be a positive integer.
     */
    maxPendingKeys?: number
  }
  /**
   * Cross-replica invalidation over Redis pub/sub (sharded pub/sub on a
   * Cluster). `false` turns it off: other replicas then see changes after
   * their keyring's `cache.stateTtl`. Default: on.
   */
  invalidation?:
    | false
    | {
        /** How often the store publishes a heartbeat on its own channel. ms or `'1s'`. Default `'1s'`. Must be greater than 0. */
        heartbeatInterval?: Duration
        /**
         * A heartbeat not received within this time means messages may have
         * been lost: listeners get a `reset`. ms or `'3s'`. Default `'3s'`.
         * Must be at least `heartbeatInterval`.
         */
        heartbeatTimeout?: Duration
      }
  /**
   * Redis replication is asynchronous: a failover can lose a write the
   * primary acknowledged. For the listed operations the store sends `WAIT`
   * after the write and reports success only once `replicas` replicas have
   * it. A primary with no replica attached at all counts as success (there is
   * nothing to wait for). `false` never waits.
   */
  durability?:
    | false
    | {
        /** Replicas that must acknowledge. Default 1. `0` never waits. */
        replicas?: number
        /** Longest wait for them, added to `timeout`. ms or `'250ms'`. Default `'500ms'`. */
        timeout?: Duration
        /** Default `['revoke', 'emergencyRotate']`. */
        operations?: DurableOperation[]
      }
  /**
   * How often the store checks that Redis did not come back empty or rolled
   * back (its identity and change sequence; see docs/redis.md). ms or `'1s'`.
   * Default `'1s'`. `0` checks only before answering "not found" and before
   * admin writes.
   */
  resetCheckInterval?: Duration
  /**
   * `waitUntilReady()` reads Redis's persistence (`appendonly`,
   * `appendfsync`) and `maxmemory-policy` and logs a warning for each setting
   * that can lose or evict keys. `true` makes it throw
   * `UnsafeRedisConfigError` instead, so the service refuses to start.
   * Default `false`. When Redis answers neither `CONFIG GET` nor `INFO`, the
   * check is skipped with a warning (also with `true`).
   */
  requireDurability?: boolean
  /** pino-compatible logger for warnings. Default: silent. */
  logger?: Logger
  /** Time source (epoch ms), for heartbeats and message stamps. Default: `Date.now`. */
  clock?: Clock
}

export interface ResolvedRedisStoreOptions {
  client: RedisClient
  cluster: boolean
  keyPrefix: string
  timeoutMs: number
  retentionMs: number
  usageFlushIntervalMs: number
  usageMaxPendingKeys: number
  invalidation: { heartbeatIntervalMs: number; heartbeatTimeoutMs: number } | null
  durability: { replicas: number; timeoutMs: number; operations: ReadonlySet<DurableOperation> }
  resetCheckIntervalMs: number
  requireDurability: boolean
  logger: Logger
  clock: Clock
}

const KEY_PREFIX_PATTERN = /^[A-Za-z0-9:._-]{1,64}$/
const DURABLE_OPERATIONS: readonly DurableOperation[] = ['insert', 'rotate', 'revoke', 'emergencyRotate', 'setExpiry']

/** A duration in ms that must be greater than 0; throws a `TypeError` naming the option otherwise. */
export function positiveDuration(value: Duration, name: string): number {
  const ms = parseDuration(value, name)
  if (ms <= 0) throw new TypeError(`${name} must be greater than 0; got ${JSON.stringify(value)}`)
  return ms
}

/** The application's client, checked to be something the store and its companions can `duplicate()`. */
export function requireClient(client: unknown): RedisClient {
  if (!client || typeof (client as { duplicate?: unknown }).duplicate !== 'function') {
    throw new TypeError('client must be an ioredis Redis or Cluster instance (it needs duplicate())')
  }
  return client as RedisClient
}

/** Whether the client is a `Cluster` (ioredis marks it with `isCluster`). */
export function isClusterClient(client: RedisClient): boolean {
  return (client as { isCluster?: boolean }).isCluster === true
}

/** The key prefix, `'keyrot'` when omitted; throws a `TypeError` when it is not 1-64 of `A-Z a-z 0-9 : . _ -`. */
export function resolveKeyPrefix(value: string | undefined): string {
  const keyPrefix = value ?? 'keyrot'
  if (typeof keyPrefix !== 'string' || !KEY_PREFIX_PATTERN.test(keyPrefix)) {
    throw new TypeError(`keyPrefix must be 1-64 letters, digits or : . _ -; got ${JSON.stringify(keyPrefix)}`)
  }
  return keyPrefix
}

/** Resolves and validates options once; never mutates the caller's object. */
export function resolveRedisStoreOptions(options: RedisStoreOptions): ResolvedRedisStoreOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('RedisStore options must be an object')
  const client = requireClient(options.client)
  const keyPrefix = resolveKeyPrefix(options.keyPrefix)
  const usageMaxPendingKeys = options.usage?.maxPendingKeys ?? 10_000
  if (!Number.isInteger(usageMaxPendingKeys) || usageMaxPendingKeys < 1) {
    throw new TypeError(`usage.maxPendingKeys must be a positive integer; got ${String(usageMaxPendingKeys)}`)
  }

  let invalidation: ResolvedRedisStoreOptions['invalidation'] = null
  if (options.invalidation !== false) {
    const heartbeatIntervalMs = positiveDuration(options.invalidation?.heartbeatInterval ?? '1s', 'invalidation.heartbeatInterval')
    const heartbeatTimeoutMs = positiveDuration(options.invalidation?.heartbeatTimeout ?? '3s', 'invalidation.heartbeatTimeout')
    if (heartbeatTimeoutMs < heartbeatIntervalMs) {
      throw new TypeError('invalidation.heartbeatTimeout must be at least invalidation.heartbeatInterval')
    }
    invalidation = { heartbeatIntervalMs, heartbeatTimeoutMs }
  }

  let durability: ResolvedRedisStoreOptions['durability'] = { replicas: 0, timeoutMs: 0, operations: new Set() }
  if (options.durability !== false) {
    const replicas = options.durability?.replicas ?? 1
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new TypeError(`durability.replicas must be a non-negative integer; got ${String(replicas)}`)
    }
    const operations = options.durability?.operations ?? ['revoke', 'emergencyRotate']
    if (!Array.isArray(operations) || operations.some((op) => !DURABLE_OPERATIONS.includes(op))) {
      throw new TypeError(`durability.operations must list some of ${DURABLE_OPERATIONS.join(', ')}`)
    }
    durability = {
      replicas,
      timeoutMs: positiveDuration(options.durability?.timeout ?? '500ms', 'durability.timeout'),
      operations: new Set(replicas === 0 ? [] : operations),
    }
  }

  const clock = options.clock ?? systemClock
  if (typeof clock.now !== 'function') throw new TypeError('clock must have a now() method returning epoch milliseconds')
  return {
    client,
    cluster: isClusterClient(client),
    keyPrefix,
    timeoutMs: positiveDuration(options.timeout ?? '500ms', 'timeout'),
    retentionMs: parseDuration(options.retention ?? '30d', 'retention'),
    usageFlushIntervalMs: positiveDuration(options.usage?.flushInterval ?? '1s', 'usage.flushInterval'),
    usageMaxPendingKeys,
    invalidation,
    durability,
    resetCheckIntervalMs: parseDuration(options.resetCheckInterval ?? '1s', 'resetCheckInterval'),
    requireDurability: resolveRequireDurability(options.requireDurability),
    logger: options.logger ?? silentLogger,
    clock,
  }
}

function resolveRequireDurability(value: unknown): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new TypeError(`requireDurability must be a boolean; got ${JSON.stringify(value)}`)
  return value
}
