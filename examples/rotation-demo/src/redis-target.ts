import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { extname } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createKeyring, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import type { ReplicaConfig, ReplicaMessage } from './replica.js'
import type { DemoTarget } from './server.js'

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/**
 * How long after a revocation returned another replica may still accept the
 * key: the invalidation message is published by the same Lua script, but a
 * replica may read a request before the message that arrived with it. The
 * bound the cross-replica tests hold; the demo's own figures are printed.
 */
export const REVOCATION_TOLERANCE_MS = 50

/** Redis could not be reached or refused the connection: the demo exits 1 with this message. */
export class RedisUnreachableError extends Error {
  override name = 'RedisUnreachableError'
}

export interface RedisTargetOptions {
  redisUrl: string
  /** Replica processes to start. Default 3. */
  replicas?: number
  /** Longest wait for Redis to answer a PING, then for each replica to be ready, ms. Default 3000 and 20000. */
  connectTimeoutMs?: number
  replicaStartTimeoutMs?: number
  /** Lines a replica writes on stderr, and replicas that exit on their own. */
  onReplicaOutput?: (line: string) => void
}

/** `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`: the URL as it may be printed. */
export function displayRedisUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparsable URL)'
  }
}

/** Throws a `TypeError` unless `url` is a `redis://` or `rediss://` URL. */
export function checkRedisUrl(url: string): void {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError(`--redis-url must be a redis:// or rediss:// URL; got ${JSON.stringify(displayRedisUrl(url))}`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError(`--redis-url must be a redis:// or rediss:// URL; got ${displayRedisUrl(url)}`)
  }
}

/**
 * Runs `work` on a fresh connection that never retries, then closes it. A
 * failure is rethrown with its cause: the `error` event carries it
 * (ECONNREFUSED, ETIMEDOUT, a TLS error), `connect()` only says the
 * connection closed.
 */
async function withConnection<T>(url: string, timeoutMs: number, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
  let cause: Error | null = null
  redis.on('error', (error: Error) => (cause ??= error))
  try {
    await redis.connect()
    return await work(redis)
  } catch (error) {
    throw new Error((cause ?? (error as Error)).message || String(error))
  } finally {
    redis.disconnect()
  }
}

/** Fails with `RedisUnreachableError` unless Redis at `url` answers PING within `timeoutMs`. */
async function assertReachable(url: string, timeoutMs: number): Promise<void> {
  try {
    await withConnection(url, timeoutMs, (redis) => redis.ping())
  } catch (error) {
    throw new RedisUnreachableError(`cannot reach Redis at ${displayRedisUrl(url)}: ${(error as Error).message}`)
  }
}

/** Deletes every key under `keyPrefix:`, with SCAN and UNLINK (never KEYS); returns how many. */
function removeKeys(url: string, keyPrefix: string): Promise<number> {
  return withConnection(url, 5_000, async (redis) => {
    let removed = 0
    let cursor = '0'
    // Bounded: a few SCAN passes cover the few hundred keys a run writes.
    for (let pass = 0; pass < 10_000; pass++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', 1000)
      if (keys.length > 0) removed += await redis.unlink(...keys)
      cursor = next
      if (cursor === '0') break
    }
    return removed
  })
}

interface RunningReplica {
  index: number
  child: ChildProcess
  baseUrl: string
  /** SIGTERM, then SIGKILL; resolves once the process is gone. */
  stop(): Promise<void>
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** SIGTERM (the replica closes its server and keyring), SIGKILL after `graceMs`; resolves once it is gone. */
async function stopProcess(child: ChildProcess, exited: Promise<void>, graceMs = 3_000): Promise<void> {
  if (hasExited(child)) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

/** The fleet-wide proof key of this demo run, unless `KEYROT_PROOF_KEY` is set (docs/redis.md#shared-proofs). */
const RUN_PROOF_KEY = randomBytes(32).toString('base64')

/** The replica's module beside this one: `replica.js` when built, `replica.ts` under tsx. */
function replicaEntry(): string {
  return fileURLToPath(new URL(`./replica${extname(fileURLToPath(import.meta.url))}`, import.meta.url))
}

async function startReplica(index: number, config: ReplicaConfig, timeoutMs: number, report: (line: string) => void): Promise<RunningReplica> {
  // Every replica gets the run's proof key (in its environment, never argv): a token proven by one is accepted by all with one HMAC.
  const env = { ...process.env, KEYROT_PROOF_KEY: process.env.KEYROT_PROOF_KEY ?? RUN_PROOF_KEY }
  const child = fork(replicaEntry(), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json', env })
  const name = `replica ${index + 1}`
  let stopping = false
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      if (!stopping) report(`${name} (pid ${child.pid}) exited on its own: ${signal ?? `exit code ${code}`}`)
      resolve()
    })
  })
  const stop = () => {
    stopping = true
    return stopProcess(child, exited)
  }
  const stderr: string[] = []
  if (child.stderr) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      stderr.push(line)
      report(`${name}: ${line}`)
    })
  }
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${timeoutMs} ms`)), timeoutMs)
      child.on('message', (message: ReplicaMessage) => {
        clearTimeout(timer)
        if (message.type === 'ready') resolve(message.port)
        else reject(new Error(`${name} could not start: ${message.message}`))
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      void exited.then(() => {
        clearTimeout(timer)
        reject(new Error(`${name} exited before it was ready${stderr.length > 0 ? `: ${stderr.join(' ')}` : ''}`))
      })
      child.send(config)
    })
    return { index, child, baseUrl: `http://127.0.0.1:${port}`, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * Three replicas of the demo's API (each a separate Node process with its
 * own keyring, `RedisStore`, verification cache and invalidation subscriber)
 * on one Redis, and the operator's keyring on its own `RedisStore`: the admin
 * calls of the scenario are made here, as an admin service would, and reach
 * the replicas only through Redis.
 *
 * Every run uses its own key prefix (`keyrot-demo:<random>`), so it never
 * touches other data on a shared Redis; `close()` stops the replicas, then
 * removes every key under that prefix.
 */
export async function startRedisTarget(options: RedisTargetOptions): Promise<DemoTarget> {
  const { redisUrl } = options
  checkRedisUrl(redisUrl)
  const count = options.replicas ?? 3
  const report = options.onReplicaOutput ?? (() => {})
  await assertReachable(redisUrl, options.connectTimeoutMs ?? 3_000)

  const keyPrefix = `keyrot-demo:${randomBytes(6).toString('hex')}`
  const started: RunningReplica[] = []
  // A template for the operator store's connections: never connected itself.
  const client = new Redis(redisUrl, { lazyConnect: true })
  // The operator never verifies, so it has nothing to invalidate.
  const operator: Keyring = createKeyring({ store: new RedisStore({ client, keyPrefix, invalidation: false }) })

  let closing: Promise<string> | null = null
  const close = () =>
    (closing ??= (async () => {
      await Promise.all(started.map((replica) => replica.stop()))
      await operator.close()
      client.disconnect()
      const removed = await removeKeys(redisUrl, keyPrefix).then(
        (n) => `${n} Redis keys under ${keyPrefix}: removed`,
        (error: unknown) => `could not remove the Redis keys under ${keyPrefix}: ${(error as Error).message}`,
      )
      return `cleanup: ${started.length} replicas stopped; ${removed}`
    })())

  try {
    const config: ReplicaConfig = { type: 'config', redisUrl, keyPrefix }
    // One after another: three Node processes booting at once on a small machine only slow each other down.
    for (let index = 0; index < count; index++) {
      started.push(await startReplica(index, config, options.replicaStartTimeoutMs ?? 20_000, report))
    }
  } catch (error) {
    await close()
    throw error
  }

  return {
    description: `Redis store at ${displayRedisUrl(redisUrl)} (key prefix ${keyPrefix}), ${count} replicas in separate processes`,
    details: [
      ...started.map((replica) => `  replica ${replica.index + 1}  ${replica.baseUrl}  pid ${replica.child.pid}: own keyring, RedisStore, cache, invalidation subscriber`),
      `  operator  (this process)      keyring on its own RedisStore: creates, rotates and revokes keys; replicas hear of it only through Redis`,
    ],
    baseUrls: started.map((replica) => replica.baseUrl),
    admin: operator,
    replicated: true,
    revocationToleranceMs: REVOCATION_TOLERANCE_MS,
    close,
  }
}
