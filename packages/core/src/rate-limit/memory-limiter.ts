import { LRUCache } from 'lru-cache'
import { grown, SlotMap } from '../cache/slot-map.js'
import { decideAdmission, decideQuota, decideRelease, type IpState, type WindowCount } from './decisions.js'
import type { Admission, Attempt, Charge, FailureLimits, Quota, QuotaDecision, RateLimiter } from './limiter.js'

export interface MemoryRateLimiterOptions {
  /**
   * Most client IPs tracked (failures and blocks), and most wider networks (each). Default 100,000. The
   * least recently seen IP is forgotten first, so memory stays bounded
   * whatever the number of attacking addresses.
   */
  maxIps?: number
  /** Most key ids tracked, for failures and for quotas (each). Default 100,000. */
  maxKeys?: number
}

const ADMITTED: Admission = Object.freeze({ allowed: true })

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer; got ${String(value)}`)
  return value
}

/**
 * Abuse counters in this process's memory: right for one process. Behind a
 * load balancer with several replicas each would count alone (an attacker
 * gets N times the failures), so use `RedisRateLimiter` there.
 *
 * Concurrency guarantee: every method is synchronous, so each call is
 * atomic within the process.
 *
 * @example
 * const keyring = createKeyring({ rateLimit: { limiter: new MemoryRateLimiter({ maxIps: 50_000 }) } })
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #ips: LRUCache<string, IpState>
  readonly #networks: LRUCache<string, WindowCount>
  readonly #keyFailures: LRUCache<string, WindowCount>
  /**
   * GCRA times by key id: a slot per key, the time in a typed array updated
   * in place. A request costs one lookup and no allocation, and a key one
   * `Map` entry and a few array cells (every key a replica serves has one).
   */
  readonly #quotas: SlotMap
  #tats = new Float64Array(0)
  /**
   * The latest start of any IP's or network's failure window, and the end of
   * the latest IP block: once every window that began by then has ended
   * (whatever the asking keyring's window lengths) and the block is over,
   * no entry can refuse an attempt that charges nothing (see decisions.ts).
   */
  #ipFailuresSince = Number.NEGATIVE_INFINITY
  #networkFailuresSince = Number.NEGATIVE_INFINITY
  #blocksUntil = 0

  constructor(options: MemoryRateLimiterOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('MemoryRateLimiter options must be an object')
    const maxIps = positiveInteger(options.maxIps, 100_000, 'maxIps')
    const maxKeys = positiveInteger(options.maxKeys, 100_000, 'maxKeys')
    this.#ips = new LRUCache({ max: maxIps })
    this.#networks = new LRUCache({ max: maxIps })
    this.#keyFailures = new LRUCache({ max: maxKeys })
    this.#quotas = new SlotMap({ max: maxKeys, evict: () => {}, grow: (capacity) => (this.#tats = grown(this.#tats, capacity)) })
  }

  admit(attempt: Attempt, limits: FailureLimits, now: number): Admission {
    // A proven token's admission charges nothing: a client with no failure on record (nearly every one) passes with no decision to build.
    if (!attempt.chargeIp && !attempt.chargeKey && this.#clean(attempt)) return ADMITTED
    const before = {
      ip: attempt.ip === undefined ? undefined : this.#ips.get(attempt.ip),
      network: attempt.network === undefined ? undefined : this.#networks.get(attempt.network),
      key: attempt.keyId === undefined ? undefined : this.#keyFailures.get(attempt.keyId),
    }
    const { admission, ip, network, key } = decideAdmission(before, attempt, limits, now)
    // Only what changed is written: a proven token's admission charges nothing and leaves no entry behind.
    if (attempt.ip !== undefined && ip !== undefined && ip !== before.ip && (before.ip !== undefined || attempt.chargeIp)) {
      this.#ips.set(attempt.ip, ip)
      if (ip.blockedUntil > this.#blocksUntil) this.#blocksUntil = ip.blockedUntil
      if (ip.failures !== undefined && ip.failures.start > this.#ipFailuresSince) this.#ipFailuresSince = ip.failures.start
    }
    if (attempt.network !== undefined && network !== undefined && network !== before.network) {
      this.#networks.set(attempt.network, network)
      if (network.start > this.#networkFailuresSince) this.#networkFailuresSince = network.start
    }
    if (attempt.keyId !== undefined && key !== undefined && key !== before.key) this.#keyFailures.set(attempt.keyId, key)
    return admission
  }

  /**
   * See {@link RateLimiter.clientsClean}: the guard's hit path asks it first.
   * Once the last failure window and block have ended, the hit path is as
   * short as before any failure was seen.
   */
  clientsClean(now: number, limits: FailureLimits): boolean {
    if (this.#ips.size === 0 && this.#networks.size === 0) return true
    return (
      now >= this.#blocksUntil &&
      (limits.failuresPerIp === null || now >= this.#ipFailuresSince + limits.failuresPerIp.windowMs) &&
      (!limits.failuresPerNetwork || now >= this.#networkFailuresSince + limits.failuresPerNetwork.windowMs)
    )
  }

  /** Whether none of the attempt's counters holds anything (no failure, no block). */
  #clean(attempt: Attempt): boolean {
    return (
      (attempt.ip === undefined || !this.#ips.has(attempt.ip)) &&
      (attempt.network === undefined || !this.#networks.has(attempt.network)) &&
      (attempt.keyId === undefined || !this.#keyFailures.has(attempt.keyId))
    )
  }

  release(charge: Charge, limits: FailureLimits, now: number): void {
    const { ip, network, key } = decideRelease(
      {
        ip: charge.ip === undefined ? undefined : this.#ips.get(charge.ip),
        network: charge.network === undefined ? undefined : this.#networks.get(charge.network),
        key: charge.keyId === undefined ? undefined : this.#keyFailures.get(charge.keyId),
      },
      charge,
      limits,
      now,
    )
    if (charge.ip !== undefined && ip !== undefined) this.#ips.set(charge.ip, ip)
    if (charge.network !== undefined && network !== undefined) this.#networks.set(charge.network, network)
    if (charge.keyId !== undefined && key !== undefined) {
      // No failure left in the window: the same as no entry, so a proven key keeps nothing here.
      if (key.count === 0) this.#keyFailures.delete(charge.keyId)
      else this.#keyFailures.set(charge.keyId, key)
    }
  }

  consume(keyId: string, quota: Quota, now: number): QuotaDecision {
    const slot = this.#quotas.get(keyId)
    const { decision, tat } = decideQuota(slot === -1 ? undefined : this.#tats[slot], quota, now)
    if (decision.allowed && tat !== undefined) {
      // Claimed before the array is read: a claim may grow it (the callback replaces #tats).
      const held = slot === -1 ? this.#quotas.claim(keyId) : slot
      this.#tats[held] = tat
    }
    return decision
  }

  /** Entries held, for tests and metrics. */
  get size(): { ips: number; networks: number; keyFailures: number; quotas: number } {
    return { ips: this.#ips.size, networks: this.#networks.size, keyFailures: this.#keyFailures.size, quotas: this.#quotas.size }
  }

  async close(): Promise<void> {
    this.#ips.clear()
    this.#networks.clear()
    this.#keyFailures.clear()
    this.#quotas.clear()
  }
}
