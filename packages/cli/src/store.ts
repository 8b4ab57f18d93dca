import { readFileSync } from 'node:fs'
import { createKeyring, type Keyring, type KeyringOptions, type Logger } from '@keyrot/core'
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import { CliError, UsageError } from './exit-codes.js'
import type { CliIo } from './io.js'

export interface StoreFlags {
  /** `--redis <url>`; falls back to `REDIS_URL`. */
  redis?: string | undefined
  /** `--cluster`: the URL (or comma-separated URLs) are Redis Cluster seed nodes. */
  cluster?: boolean | undefined
  /** `--redis-password-file <path>`: the Redis password, read from a file (first line). */
  redisPasswordFile?: string | undefined
  /** `--key-prefix`: the RedisStore's `keyPrefix`; falls back to `KEYROT_KEY_PREFIX`, then the store's default. */
  keyPrefix?: string | undefined
}

export interface OpenedKeyring {
  keyring: Keyring
  client: Redis | Cluster
  /** Where the store is, with any password masked: safe to print. */
  location: string
  /** Flushes usage counts, closes the store and the Redis connection. */
  close(): Promise<void>
}

/** `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`. */
export function maskRedisUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparsable URL)'
  }
}

function parseRedisUrls(value: string): URL[] {
  const urls = value.split(',').map((part) => part.trim()).filter(Boolean)
  if (urls.length === 0) throw new UsageError('--redis needs a URL such as redis://127.0.0.1:6379', 'KEYROT_CLI_NO_STORE')
  return urls.map((text) => {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      throw new UsageError(`--redis must be a URL such as redis://127.0.0.1:6379 (got ${JSON.stringify(maskRedisUrl(text))})`)
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new UsageError(`--redis must start with redis:// or rediss:// (got ${url.protocol}//)`)
    }
    return url
  })
}

/** Where the CLI reads a Redis password that is not in the URL. */
export const REDIS_PASSWORD_VARIABLE = 'REDIS_PASSWORD'

/**
 * The Redis URL from `--redis` or `REDIS_URL`, or a usage error explaining
 * why one is needed. A password can stay out of the URL, and so out of the
 * process arguments every local user can read (`ps`): `--redis-password-file`
 * or `REDIS_PASSWORD` supply it and are put into the URL here, in memory
 * only. A password given in `--redis` itself still works but draws a warning.
 */
export function resolveRedisUrl(flags: StoreFlags, io: CliIo, command: string): string {
  const url = flags.redis ?? io.env['REDIS_URL']
  if (url === undefined || url.trim() === '') {
    throw new UsageError(
      `keyrot ${command} needs a shared key store: pass --redis redis://host:6379 or set REDIS_URL. ` +
        '(An in-memory store would forget every key when this command exits.)',
      'KEYROT_CLI_NO_STORE',
    )
  }
  if (flags.redis !== undefined && /:\/\/[^/@]*:[^/@]*@/.test(flags.redis)) {
    io.stderr.write(
      `keyrot: warning: --redis ${maskRedisUrl(flags.redis.split(',')[0] ?? '')} carries a password in the command line, which other users of this machine can read; ` +
        `put it in ${REDIS_PASSWORD_VARIABLE} or a file given to --redis-password-file instead\n`,
    )
  }
  const password = redisPassword(flags, io)
  if (password === undefined) return url
  return url
    .split(',')
    .map((part) => {
      const trimmed = part.trim()
      try {
        const parsed = new URL(trimmed)
        if (parsed.password || !/^rediss?:$/.test(parsed.protocol)) return trimmed
        parsed.password = encodeURIComponent(password)
        return parsed.toString()
      } catch {
        return trimmed // reported by openKeyring with the URL masked
      }
    })
    .join(',')
}

/** The password from `--redis-password-file` (first line) or `REDIS_PASSWORD`; the file wins. */
function redisPassword(flags: StoreFlags, io: CliIo): string | undefined {
  if (flags.redisPasswordFile !== undefined) {
    let text: string
    try {
      text = readFileSync(flags.redisPasswordFile, 'utf8')
    } catch (error) {
      throw new UsageError(`--redis-password-file: cannot read ${JSON.stringify(flags.redisPasswordFile)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    const password = text.split(/\r?\n/)[0] ?? ''
    if (password === '') throw new UsageError(`--redis-password-file: ${JSON.stringify(flags.redisPasswordFile)} is empty; its first line must be the password`)
    return password
  }
  const password = io.env[REDIS_PASSWORD_VARIABLE]
  return password === undefined || password === '' ? undefined : password
}

export interface ConnectOptions {
  /**
   * One-shot commands fail at the first connection error; `keyrot serve`
   * keeps reconnecting (ioredis's default back-off) and reports through
   * /healthz meanwhile.
   */
  reconnect: boolean
  /**
   * Keep the abuse counters (failures per IP and key, per-key quotas) in
   * Redis so every replica shares them: for `keyrot serve`, which verifies
   * keys. One-shot commands verify nothing and turn the limits off.
   */
  sharedRateLimits?: boolean
  logger?: Logger
  keyring?: Omit<KeyringOptions, 'store' | 'logger' | 'rateLimit' | 'history'>
  /**
   * Record admin actions in the shared admin history in Redis
   * (`RedisHistoryLog` under the store's prefix), with their actor: the "who"
   * of evidence reports (docs/policies.md#evidence-report).
   */
  history?: boolean
}

/**
 * Connects to Redis and builds a keyring on a `RedisStore`. Fails with exit
 * code 1 and a message naming the (masked) URL when Redis cannot be reached.
 */
export async function openKeyring(url: string, flags: StoreFlags, options: ConnectOptions): Promise<OpenedKeyring> {
  const urls = parseRedisUrls(url)
  const location = urls.map((u) => maskRedisUrl(u.toString())).join(',')
  const base: RedisOptions = {
    lazyConnect: true,
    connectTimeout: 5_000,
    ...(options.reconnect ? {} : { retryStrategy: () => null, maxRetriesPerRequest: 1 }),
  }
  // Loaded here, not at start-up: `keyrot --help` need not pay for ioredis.
  const { Cluster: ClusterClient, Redis: RedisClient } = await import('ioredis')
  let client: Redis | Cluster
  if (flags.cluster) {
    const first = urls[0] as URL
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      redisOptions: {
        connectTimeout: base.connectTimeout,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
        ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
      },
      ...(options.reconnect ? {} : { clusterRetryStrategy: () => null, maxRedirections: 16 }),
    }
    client = new ClusterClient(
      urls.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
      clusterOptions,
    )
  } else {
    if (urls.length > 1) throw new UsageError('--redis takes one URL; pass --cluster for several Redis Cluster seed nodes')
    client = new RedisClient(url, base)
  }
  // ioredis reports connection problems as 'error' events; without a listener
  // Node prints them as unhandled. Failures surface through connect() and commands.
  let lastError: unknown
  // One warning per outage (ioredis reports every failed reconnect attempt), one line when it ends.
  let outage = false
  client.on('error', (error: unknown) => {
    lastError = error
    if (!options.reconnect || outage) return
    outage = true
    options.logger?.warn({ event: 'redis.unreachable', error: (error as Error).message }, 'keyrot serve: Redis connection lost, reconnecting')
  })
  client.on('ready', () => {
    if (!outage) return
    outage = false
    options.logger?.info({ event: 'redis.reconnected' }, 'keyrot serve: Redis connection restored')
  })
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    // connect() rejects with "Connection is closed."; the 'error' event had the cause (ECONNREFUSED, auth...).
    const reason = (lastError as Error | undefined)?.message || (error as Error)?.message || 'unknown error'
    throw new CliError(`cannot reach Redis at ${location}: ${reason}`, { code: 'KEYROT_STORE_UNAVAILABLE', cause: error })
  }

  let keyring: Keyring
  try {
    const { RedisStore, RedisRateLimiter, RedisHistoryLog } = await import('@keyrot/redis')
    const store = new RedisStore({ client, ...(flags.keyPrefix ? { keyPrefix: flags.keyPrefix } : {}), ...(options.logger ? { logger: options.logger } : {}) })
    keyring = createKeyring({
      ...options.keyring,
      store,
      // The documented defaults (docs/cli.md, "Abuse limits"), counted in Redis under the store's prefix.
      rateLimit: options.sharedRateLimits ? { limiter: RedisRateLimiter.forStore(store) } : false,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.history ? { history: new RedisHistoryLog({ client, ...(flags.keyPrefix ? { keyPrefix: flags.keyPrefix } : {}) }) } : {}),
    })
  } catch (error) {
    client.disconnect()
    throw error
  }
  let closing: Promise<void> | undefined
  return {
    keyring,
    client,
    location,
    close() {
      closing ??= (async () => {
        try {
          await keyring.close()
        } finally {
          // QUIT waits for Redis; while it is unreachable the command would sit in ioredis's queue.
          if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
          else client.disconnect()
        }
      })()
      return closing
    },
  }
}
