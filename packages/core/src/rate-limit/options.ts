import { parseDuration, type Duration } from '../duration.js'
import type { FailureLimits, IpBlockLimit, Quota, RateLimiter, WindowLimit } from './limiter.js'
import type { PrefixLengths } from './client-network.js'
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
  /**
   * How client IPs are grouped for `failuresPerIp` and `ipBlock`: IPv6 per
   * `/ipv6` prefix, IPv4 per `/ipv4` prefix (bits). Default
   * `{ ipv4: 32, ipv6: 64 }`: an IPv4 address, an IPv6 /64 (what one
   * customer gets; counting exact IPv6 addresses would give an attacker
   * 2^64 fresh starts). `ipv4: 24` counts a /24 as one client. An
   * IPv4-mapped IPv6 address counts as IPv4.
   */
  ipPrefix?: { ipv4?: number; ipv6?: number }
  /**
   * Failures one wider network may make per window, from all its addresses
   * together: IPv6 per `/ipv6` (default 48), IPv4 per `/ipv4` (default 24).
   * Refused with 429 (`network-failures`) for the rest of the window.
   * Default `{ limit: 100, window: '1m', ipv4: 24, ipv6: 48 }`. A prefix
   * not wider than `ipPrefix`'s has no budget of its own.
   */
  failuresPerNetwork?: (WindowLimitOptions & { ipv4?: number; ipv6?: number }) | false
  /**
   * Argon2 proofs of tokens not yet proven in this process, per key id, in
   * this process: more wait (429, `key-failures`) for the next one. A key
   * id has one right token, proven once and then cached, so this costs a
   * legitimate client nothing, and it bounds the hashing a flood on one key
   * id can cause on a replica. It also keeps the key usable under a flood:
   * when `failuresPerKey` is spent, a token still gets proven at this rate,
   * and a network whose proof failed while the key was under attack is
   * not given another until `failuresPerKey.window` has passed. Default
   * `{ limit: 1, window: '1s' }`. Needs the verification cache (without it
   * every verify hashes, and this is off).
   */
  proofsPerKey?: WindowLimitOptions | false
  /** How long a token that just failed is refused without a store read or hashing. ms or `'10s'`. Default `'10s'`; `0` turns it off. */
  negativeCacheTtl?: Duration
  /** Most failed tokens remembered. Default 10,000. */
  negativeCacheMaxEntries?: number
}

export interface ResolvedRateLimitOptions {
  limiter: RateLimiter
  failures: FailureLimits
  /** Prefix lengths of the IP counters, and of the network counters (`null`: no network budget). */
  prefixes: { ip: PrefixLengths; network: PrefixLengths | null }
  /** `null`: proofs are not paced. */
  proofsPerKey: WindowLimit | null
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

function prefixLength(value: unknown, fallback: number, max: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) throw new TypeError(`${name} must be an integer from 1 to ${max}; got ${String(value)}`)
  return value
}

function prefixes(ipPrefix: RateLimitOptions['ipPrefix'], network: RateLimitOptions['failuresPerNetwork']): ResolvedRateLimitOptions['prefixes'] {
  if (ipPrefix !== undefined && !isObject(ipPrefix)) throw new TypeError('rateLimit.ipPrefix must be { ipv4?, ipv6? }')
  if (network !== undefined && network !== false && !isObject(network)) throw new TypeError('rateLimit.failuresPerNetwork must be { limit?, window?, ipv4?, ipv6? } or false')
  const given = ipPrefix ?? {}
  const wide = network === false ? null : (network ?? {})
  return {
    ip: { ipv4: prefixLength(given.ipv4, 32, 32, 'rateLimit.ipPrefix.ipv4'), ipv6: prefixLength(given.ipv6, 64, 128, 'rateLimit.ipPrefix.ipv6') },
    network:
      wide === null
        ? null
        : { ipv4: prefixLength(wide.ipv4, 24, 32, 'rateLimit.failuresPerNetwork.ipv4'), ipv6: prefixLength(wide.ipv6, 48, 128, 'rateLimit.failuresPerNetwork.ipv6') },
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
      failuresPerNetwork: windowLimit(given.failuresPerNetwork, { limit: 100, window: '1m' }, 'failuresPerNetwork'),
    },
    prefixes: prefixes(given.ipPrefix, given.failuresPerNetwork),
    proofsPerKey: windowLimit(given.proofsPerKey, { limit: 1, window: '1s' }, 'proofsPerKey'),
    perKey: windowLimit(given.perKey, { limit: 100, window: '1m' }, 'perKey'),
    negativeCacheTtlMs: parseDuration(given.negativeCacheTtl ?? '10s', 'rateLimit.negativeCacheTtl'),
    negativeCacheMaxEntries: count(given.negativeCacheMaxEntries, 10_000, 'rateLimit.negativeCacheMaxEntries'),
  }
}
