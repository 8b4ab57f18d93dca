import { KeyrotError, StoreUnavailableError } from '@keyrot/core'
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import type { RedisClient } from './options.js'
import { isNoScript, type LuaScript } from './scripts.js'

/**
 * The store's own connections: duplicates of the application's client with
 * fail-fast settings, whatever the application chose for its own (ioredis
 * defaults queue commands while offline and wait up to 10.5 s, or forever
 * against a server that accepts and never answers).
 */

/**
 * Reconnects quickly but never faster than every 50 ms, and at most every
 * 500 ms: a Redis restarted after a long outage is found within half a
 * second (keyrot serves from its cache meanwhile and wants it back soon;
 * one connection attempt per half second costs a server nothing).
 */
function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 500)
}

function nodeOverrides(commandTimeoutMs: number, connectionName: string): RedisOptions {
  return {
    // A command that gets no answer fails instead of waiting forever.
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1_000),
    // A command sent while disconnected fails at once instead of queueing.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A write that may have reached Redis is never sent a second time.
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    retryStrategy: reconnectDelay,
    reconnectOnError: null,
    // The store names its keys itself (`keyPrefix` of RedisStore).
    keyPrefix: '',
    lazyConnect: false,
    connectionName,
  }
}

/** A fail-fast duplicate for data commands. */
export function duplicateForData(client: RedisClient, cluster: boolean, commandTimeoutMs: number): RedisClient {
  if (cluster) {
    const source = client as Cluster
    const overrides: ClusterOptions = {
      keyPrefix: '',
      enableOfflineQueue: false,
      lazyConnect: false,
      scaleReads: 'master',
      maxRedirections: 4,
      retryDelayOnClusterDown: 50,
      retryDelayOnTryAgain: 50,
      retryDelayOnFailover: 50,
      slotsRefreshTimeout: Math.max(commandTimeoutMs, 500),
      clusterRetryStrategy: reconnectDelay,
      redisOptions: { ...source.options.redisOptions, ...nodeOverrides(commandTimeoutMs, 'keyrot-data') },
    }
    return source.duplicate([], overrides)
  }
  return (client as Redis).duplicate(nodeOverrides(commandTimeoutMs, 'keyrot-data'))
}

/**
 * A duplicate for the invalidation feed. On a Cluster it uses ioredis's
 * sharded subscribers (one per master) for `SSUBSCRIBE`.
 */
export function duplicateForSubscriber(client: RedisClient, cluster: boolean, commandTimeoutMs: number): RedisClient {
  if (cluster) {
    const source = client as Cluster
    return source.duplicate([], {
      keyPrefix: '',
      enableOfflineQueue: true,
      lazyConnect: false,
      shardedSubscribers: true,
      clusterRetryStrategy: reconnectDelay,
      redisOptions: { ...source.options.redisOptions, keyPrefix: '', connectionName: 'keyrot-invalidation' },
    })
  }
  return (client as Redis).duplicate({
    ...nodeOverrides(commandTimeoutMs, 'keyrot-invalidation'),
    // Subscriptions are made by the feed itself on every 'ready'.
    enableOfflineQueue: true,
  })
}

const DOWN = new Set(['reconnecting', 'close', 'end', 'disconnecting'])

/**
 * Resolves once `connection` is ready. Fails at once if it is known to be
 * down (no request waits for a reconnection); waits only while a first
 * connection is being made. The caller bounds the wait with its deadline.
 */
export function whenReady(connection: RedisClient): Promise<void> {
  const status = connection.status
  if (status === 'ready') return Promise.resolve()
  if (DOWN.has(status)) return Promise.reject(new Error(`Redis connection is ${status}`))
  // Callers waiting for the same first connection share one set of listeners.
  const shared = pendingReady.get(connection)
  if (shared) return shared
  const waiting = new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      connection.off('ready', onReady)
      connection.off('close', onDown)
      connection.off('end', onDown)
    }
    const onReady = () => {
      cleanup()
      resolve()
    }
    const onDown = () => {
      cleanup()
      reject(new Error('Redis connection closed'))
    }
    connection.once('ready', onReady)
    connection.once('close', onDown)
    connection.once('end', onDown)
  })
  pendingReady.set(connection, waiting)
  const forget = () => {
    if (pendingReady.get(connection) === waiting) pendingReady.delete(connection)
  }
  waiting.then(forget, forget)
  return waiting
}

const pendingReady = new WeakMap<RedisClient, Promise<void>>()

/** Runs `work` and fails with `StoreUnavailableError` if it takes longer than `ms`. */
export async function withDeadline<T>(ms: number, what: string, keyId: string | undefined, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const running = work()
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`The Redis store did not ${what} within ${ms} ms.`, { keyId })), ms)
  })
  // The loser of the race must not become an unhandled rejection.
  running.catch(() => {})
  try {
    return await Promise.race([running, expired])
  } catch (error) {
    throw asStoreError(error, what, keyId)
  } finally {
    clearTimeout(timer)
  }
}

/** Keyrot errors pass through; anything from Redis or the network becomes `StoreUnavailableError`. */
export function asStoreError(error: unknown, what: string, keyId: string | undefined): KeyrotError {
  if (error instanceof KeyrotError) return error
  const detail = error instanceof Error ? error.message.slice(0, 200) : String(error)
  return new StoreUnavailableError(`The Redis store could not ${what}: ${detail}`, { cause: error, keyId })
}

type ScriptCaller = {
  evalsha(sha: string, numberOfKeys: number, ...args: (string | number)[]): Promise<unknown>
  eval(source: string, numberOfKeys: number, ...args: (string | number)[]): Promise<unknown>
}

/** `EVALSHA`, and `EVAL` (which also caches the script) on `NOSCRIPT` only. */
export async function runScript(connection: RedisClient, script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
  const caller = connection as unknown as ScriptCaller
  try {
    return await caller.evalsha(script.sha, script.numberOfKeys, ...keys, ...args)
  } catch (error) {
    if (!isNoScript(error)) throw error
    return caller.eval(script.source, script.numberOfKeys, ...keys, ...args)
  }
}

type PipelineReply = [Error | null, unknown][]

function check(results: PipelineReply | null, length: number): PipelineReply {
  if (!Array.isArray(results) || results.length !== length) throw new Error('unexpected pipeline reply')
  for (const [error] of results) if (error) throw error
  return results
}

/**
 * Runs a script, then waits for `replicas` replicas to acknowledge it.
 *
 * Round trip 1: the script and `INFO replication` (the keys route the
 * pipeline to the slot's primary on a Cluster). Round trip 2, only when the
 * primary has replicas attached: `WAIT replicas timeoutMs` on the same
 * connection, behind a read of the same key so a Cluster routes it to the
 * same primary. (`WAIT` on a primary with no replica would block for the
 * whole timeout and return 0.)
 */
export async function runScriptAndWait(
  connection: RedisClient,
  script: LuaScript,
  keys: string[],
  args: (string | number)[],
  replicas: number,
  timeoutMs: number,
): Promise<{ reply: unknown; acknowledged: number; attached: number }> {
  const write = async (useSource: boolean): Promise<[Error | null, unknown][]> => {
    const pipeline = connection.pipeline()
    if (useSource) pipeline.eval(script.source, script.numberOfKeys, ...keys, ...args)
    else pipeline.evalsha(script.sha, script.numberOfKeys, ...keys, ...args)
    pipeline.info('replication')
    const results = (await pipeline.exec()) as PipelineReply | null
    if (!Array.isArray(results) || results.length !== 2) throw new Error('unexpected pipeline reply')
    return results
  }
  let results = await write(false)
  if (isNoScript(results[0]?.[0])) results = await write(true)
  const [[, reply], [, info]] = check(results, 2) as [[null, unknown], [null, unknown]]
  const match = /^connected_slaves:(\d+)/m.exec(typeof info === 'string' ? info : '')
  const attached = match ? Number(match[1]) : 0
  if (attached === 0) return { reply, acknowledged: 0, attached }
  const waited = check((await connection.pipeline().exists(keys[0] as string).wait(replicas, timeoutMs).exec()) as PipelineReply | null, 2)
  const acknowledged = waited[1]?.[1]
  return { reply, acknowledged: typeof acknowledged === 'number' ? acknowledged : 0, attached }
}
