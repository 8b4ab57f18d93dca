import {
  familyOf,
  StoreUnavailableError,
  type Admission,
  type Attempt,
  type Charge,
  type Duration,
  type FailureLimits,
  type Quota,
  type QuotaDecision,
  type RateLimiter,
} from '@keyrot/core'
import { FailFastConnection, resolveCompanionOptions } from '../companion.js'
import { runScript } from '../connection.js'
import type { RedisClient } from '../options.js'
import type { RedisStore } from '../redis-store.js'
import type { LuaScript } from '../scripts.js'
import { RATE_LIMIT_SCRIPTS } from './scripts.js'

export interface RedisRateLimiterOptions {
  /**
   * The application's ioredis `Redis` or `Cluster`, used as a template: the
   * limiter opens its own fail-fast duplicate, never sends a command on
   * `client` and never closes it.
   */
  client: RedisClient
  /** Prefix of the limiter's keys. Letters, digits and `: . _ -`, at most 64. Default `'keyrot'`. */
  keyPrefix?: string
  /**
   * Longest one call may take. Past it the call fails and the keyring
   * answers 503 (`KEYROT_STORE_UNAVAILABLE`): a request is never let through
   * unchecked. ms or `'500ms'`. Default `'500ms'`. Must be greater than 0.
   */
  timeout?: Duration
}

const POLICIES = new Set(['ip-block', 'ip-failures', 'network-failures', 'key-failures'])

function flag(value: boolean): string {
  return value ? '1' : '0'
}

/** A whole, non-negative number from a script reply, or an error saying what was wrong. */
function count(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new StoreUnavailableError(`The Redis rate limiter gave an unexpected ${what}: ${JSON.stringify(value)?.slice(0, 60)}`)
  }
  return n
}

function unexpected(reply: unknown, script: string): StoreUnavailableError {
  return new StoreUnavailableError(`The Redis rate limiter gave an unexpected reply to ${script}: ${JSON.stringify(reply)?.slice(0, 80)}`)
}

/**
 * Abuse counters shared by every replica through Redis: failures per client
 * IP, IP blocks, failures per key id and the per-key quota (GCRA). Each call
 * is one Lua script, so it is atomic across replicas and costs one round
 * trip; the rules are those of the memory limiter, in Lua.
 *
 * Keys (all expire on their own once they no longer matter):
 * - `<prefix>:{abuse}:ip:<ip>`, `<prefix>:{abuse}:net:<network>` and
 *   `<prefix>:{abuse}:kf:<keyId>`: failure counters (an IPv6 client is
 *   named by its /64, a network by its prefix, e.g. `2001:db8:1::/48`).
 *   One admission reads an IP's, a network's and a key id's counters
 *   together, so they share the `{abuse}` hash tag: on a Redis Cluster they live in
 *   one slot (one shard carries every admission check).
 * - `<prefix>:{<familyId>}:quota:<keyId>`: the key's arrival time, beside
 *   the store's records of the key.
 *
 * Time comes from the keyring's clock (replicas should run NTP; a few ms of
 * skew shifts a window by as much).
 *
 * @example
 * const store = new RedisStore({ client })
 * const keyring = createKeyring({ store, rateLimit: { limiter: RedisRateLimiter.forStore(store) } })
 */
export class RedisRateLimiter implements RateLimiter {
  readonly keyPrefix: string
  readonly timeoutMs: number
  readonly #connection: FailFastConnection

  constructor(options: RedisRateLimiterOptions) {
    const resolved = resolveCompanionOptions('RedisRateLimiter', options, '500ms')
    this.keyPrefix = resolved.keyPrefix
    this.timeoutMs = resolved.timeoutMs
    this.#connection = new FailFastConnection(resolved, 'The Redis rate limiter is closed.')
  }

  /** A limiter on the same Redis (client, key prefix and timeout) as a `RedisStore`. */
  static forStore(store: RedisStore): RedisRateLimiter {
    return new RedisRateLimiter({ client: store.options.client, keyPrefix: store.options.keyPrefix, timeout: store.options.timeoutMs })
  }

  ipKey(ip: string): string {
    return `${this.keyPrefix}:{abuse}:ip:${ip}`
  }

  networkKey(network: string): string {
    return `${this.keyPrefix}:{abuse}:net:${network}`
  }

  keyFailuresKey(keyId: string): string {
    return `${this.keyPrefix}:{abuse}:kf:${keyId}`
  }

  quotaKey(keyId: string): string {
    return `${this.keyPrefix}:{${familyOf(keyId)}}:quota:${keyId}`
  }

  async admit(attempt: Attempt, limits: FailureLimits, now: number): Promise<Admission> {
    const { failuresPerIp, ipBlock, failuresPerKey } = limits
    const failuresPerNetwork = limits.failuresPerNetwork ?? null
    const keys = [this.ipKey(attempt.ip ?? ''), this.keyFailuresKey(attempt.keyId ?? ''), this.networkKey(attempt.network ?? '')]
    const reply = await this.#run('check a rate limit', attempt.keyId, RATE_LIMIT_SCRIPTS.admit, keys, [
      now,
      flag(attempt.ip !== undefined),
      flag(attempt.keyId !== undefined),
      flag(attempt.chargeIp),
      flag(attempt.chargeKey),
      failuresPerIp?.limit ?? 0,
      failuresPerIp?.windowMs ?? 0,
      ipBlock?.threshold ?? 0,
      ipBlock?.windowMs ?? 0,
      ipBlock?.durationMs ?? 0,
      failuresPerKey?.limit ?? 0,
      failuresPerKey?.windowMs ?? 0,
      flag(attempt.network !== undefined),
      failuresPerNetwork?.limit ?? 0,
      failuresPerNetwork?.windowMs ?? 0,
    ])
    if (!Array.isArray(reply)) throw unexpected(reply, 'admit')
    if (reply.length === 1 && reply[0] === 'ok') return { allowed: true }
    const [policy, limit, windowMs, retryAfterMs] = reply as unknown[]
    if (reply.length !== 4 || typeof policy !== 'string' || !POLICIES.has(policy)) throw unexpected(reply, 'admit')
    return {
      allowed: false,
      policy: policy as 'ip-block' | 'ip-failures' | 'network-failures' | 'key-failures',
      limit: count(limit, 'limit'),
      windowMs: count(windowMs, 'window'),
      retryAfterMs: count(retryAfterMs, 'retry delay'),
    }
  }

  async release(charge: Charge, limits: FailureLimits, now: number): Promise<void> {
    const { failuresPerIp, ipBlock, failuresPerKey } = limits
    const keys = [this.ipKey(charge.ip ?? ''), this.keyFailuresKey(charge.keyId ?? ''), this.networkKey(charge.network ?? '')]
    const reply = await this.#run('refund a rate-limit charge', charge.keyId, RATE_LIMIT_SCRIPTS.release, keys, [
      now,
      flag(charge.ip !== undefined),
      flag(charge.keyId !== undefined),
      charge.chargedAt,
      failuresPerIp?.windowMs ?? 0,
      ipBlock?.threshold ?? 0,
      ipBlock?.windowMs ?? 0,
      failuresPerKey?.windowMs ?? 0,
      flag(charge.network !== undefined),
      limits.failuresPerNetwork?.windowMs ?? 0,
    ])
    if (!Array.isArray(reply) || reply.length !== 1 || reply[0] !== 'ok') throw unexpected(reply, 'release')
  }

  async consume(keyId: string, quota: Quota, now: number): Promise<QuotaDecision> {
    const reply = await this.#run('take from a key quota', keyId, RATE_LIMIT_SCRIPTS.consume, [this.quotaKey(keyId)], [now, quota.limit, quota.windowMs])
    if (!Array.isArray(reply) || reply.length !== 3) throw unexpected(reply, 'consume')
    const { limit, windowMs } = quota
    if (reply[0] === 'ok') return { allowed: true, limit, windowMs, remaining: count(reply[1], 'remaining'), resetMs: count(reply[2], 'reset') }
    if (reply[0] === 'limited') {
      return { allowed: false, limit, windowMs, remaining: 0, resetMs: count(reply[1], 'reset'), retryAfterMs: count(reply[2], 'retry delay') }
    }
    throw unexpected(reply, 'consume')
  }

  #run(what: string, keyId: string | undefined, script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.#connection.call(what, keyId, (redis) => runScript(redis, script, keys, args))
  }

  /** Closes the limiter's own connection (never the application's client). Idempotent. */
  async close(): Promise<void> {
    this.#connection.close()
  }
}
