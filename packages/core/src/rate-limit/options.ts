import { parseDuration, type Duration } from '../duration.js'
import type { FailureLimits, IpBlockLimit, Quota, RateLimiter, WindowLimit } from './limiter.js'
import { MemoryRateLimiter } from './memory-limiter.js'

/** `limit` per `window`. */
export interface WindowLimitOptions {
  /** A positive integer. */
  limit?: number
  /** ms or `'1m'`; more than 0. */
  window?: Duration
}

/**
 * Abuse protection for `verify()`. Every limit takes `false` to turn it off.
 * The IP limits apply only when the caller passes `clientIp` (the HTTP
 * adapters do).
 */
export interface RateLimitOptions {
  /**
   * Where the counters live. Default: a new `MemoryRateLimiter` (this
   * process only). Use `RedisRateLimiter` from `@keyrot/redis` so replicas
   * share them.
   */
  limiter?: RateLimiter
  /**
   * Failed attempts (malformed token, unknown key id, wrong secret) one
   * client IP may make per window; after that it gets 429 for the rest of
   * the window. Default `{ limit: 5, window: '1m' }`.
   */
  failuresPerIp?: WindowLimitOptions | false
  /**
   * An IP with `threshold` failures within `window` is blocked (429
   * `KEYROT_IP_BLOCKED`) for `duration`. Default
   * `{ threshold: 20, window: '1h', duration: '1h' }`.
   */
  ipBlock?: { threshold?: number; window?: Duration; duration?: Duration } | false
  /**
   * Attempts with tokens not yet proven in this process that one key id may
   * fail per window, from all IPs together; after that such tokens are
   * refused with 429 before any store read or Argon2 run until the window
   * ends, while tokens already proven keep working. This is what bounds the
   * Argon2 work a flood spread over many IPs can cause. Default
   * `{ limit: 20, window: '1m' }`.
   */
  failuresPerKey?: WindowLimitOptions | false
  /**
   * Requests per window for each key, unless the key has its own `rateLimit`
   * (set at `create`, kept by rotation). Default `{ limit: 100, window: '1m' }`.
   * `false`: only keys with their own limit are limited.
   */
  perKey?: WindowLimitOptions | false
  /** How long a token that just failed is refused without a store read or hashing. ms or `'10s'`. Default `'10s'`; `0` turns it off. */
  negativeCacheTtl?: Duration
  /** Most failed tokens remembered. Default 10,000. */
  negativeCacheMaxEntries?: number
}

export interface ResolvedRateLimitOptions {
  limiter: RateLimiter
  failures: FailureLimits
  perKey: Quota | null
  /** `0`: no negative cache. */
  negativeCacheTtlMs: number
  negativeCacheMaxEntries: number
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

function count(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer; got ${String(value)}`)
  return value
}

function span(value: Duration | undefined, fallback: Duration, name: string): number {
  const ms = parseDuration(value ?? fallback, name)
  if (ms <= 0) throw new TypeError(`${name} must be longer than 0`)
  return ms
}

function windowLimit(value: unknown, defaults: { limit: number; window: Duration }, name: string): WindowLimit | null {
  if (value === false) return null
  if (value !== undefined && !isObject(value)) throw new TypeError(`rateLimit.${name} must be { limit?, window? } or false`)
  const options = (value ?? {}) as WindowLimitOptions
  return {
    limit: count(options.limit, defaults.limit, `rateLimit.${name}.limit`),
    windowMs: span(options.window, defaults.window, `rateLimit.${name}.window`),
  }
}

function ipBlock(value: RateLimitOptions['ipBlock']): IpBlockLimit | null {
  if (value === false) return null
  if (value !== undefined && !isObject(value)) throw new TypeError('rateLimit.ipBlock must be { threshold?, window?, duration? } or false')
  const options = value ?? {}
  return {
    threshold: count(options.threshold, 20, 'rateLimit.ipBlock.threshold'),
    windowMs: span(options.window, '1h', 'rateLimit.ipBlock.window'),
    durationMs: span(options.duration, '1h', 'rateLimit.ipBlock.duration'),
  }
}

/**
 * Resolves `rateLimit` once; `false` turns abuse protection off (`null`).
 * Never mutates the caller's object.
 */
export function resolveRateLimitOptions(options: RateLimitOptions | false | undefined): ResolvedRateLimitOptions | null {
  if (options === false) return null
  if (options !== undefined && !isObject(options)) throw new TypeError('rateLimit must be an object or false')
  const given: RateLimitOptions = options ?? {}
  const limiter = given.limiter ?? new MemoryRateLimiter()
  for (const method of ['admit', 'release', 'consume'] as const) {
    if (typeof (limiter as unknown as Record<string, unknown>)[method] !== 'function') {
      throw new TypeError(`rateLimit.limiter must implement RateLimiter: missing ${method}()`)
    }
  }
  return {
    limiter,
    failures: {
      failuresPerIp: windowLimit(given.failuresPerIp, { limit: 5, window: '1m' }, 'failuresPerIp'),
      ipBlock: ipBlock(given.ipBlock),
      failuresPerKey: windowLimit(given.failuresPerKey, { limit: 20, window: '1m' }, 'failuresPerKey'),
    },
    perKey: windowLimit(given.perKey, { limit: 100, window: '1m' }, 'perKey'),
    negativeCacheTtlMs: parseDuration(given.negativeCacheTtl ?? '10s', 'rateLimit.negativeCacheTtl'),
    negativeCacheMaxEntries: count(given.negativeCacheMaxEntries, 10_000, 'rateLimit.negativeCacheMaxEntries'),
  }
}
