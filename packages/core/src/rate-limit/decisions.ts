import type { Admission, Attempt, Charge, FailureLimits, Quota, QuotaDecision } from './limiter.js'

/**
 * The rate-limit decisions as pure functions of (state, limits, now). The
 * memory limiter applies them between two awaits; the Redis limiter's Lua
 * scripts implement the same rules line for line. Both are tested against
 * the same boundary cases.
 */

/** A fixed window that starts at its first event: `count` events since `start`. */
export interface WindowCount {
  start: number
  count: number
}

/** What a limiter keeps per client IP. */
export interface IpState {
  /** Failures in the current `failuresPerIp` window. */
  failures: WindowCount | undefined
  /** Failures in the current `ipBlock` window. */
  recent: WindowCount | undefined
  /** Epoch ms the block ends; `0` when not blocked. */
  blockedUntil: number
}

export function countIn(window: WindowCount | undefined, windowMs: number, now: number): number {
  return window !== undefined && now < window.start + windowMs ? window.count : 0
}

/** The window after one more event at `now` (a new window if the old one ended). */
export function charged(window: WindowCount | undefined, windowMs: number, now: number): WindowCount {
  return window !== undefined && now < window.start + windowMs ? { start: window.start, count: window.count + 1 } : { start: now, count: 1 }
}

/** The window after refunding an event made at `chargedAt`: unchanged if that window has ended. */
export function refunded(window: WindowCount | undefined, windowMs: number, chargedAt: number): WindowCount | undefined {
  if (window === undefined || window.count === 0) return window
  if (chargedAt < window.start || chargedAt >= window.start + windowMs) return window
  return { start: window.start, count: window.count - 1 }
}

/** An IP's state with a served block wiped: after a block the IP starts afresh. */
export function current(ip: IpState | undefined, now: number): IpState {
  if (ip === undefined || (ip.blockedUntil !== 0 && ip.blockedUntil <= now)) return { failures: undefined, recent: undefined, blockedUntil: 0 }
  return ip
}

/** The counters one attempt touches: its IP's, its wider network's, its key id's. */
export interface AttemptState {
  ip: IpState | undefined
  network: WindowCount | undefined
  key: WindowCount | undefined
}

/**
 * Admission of one attempt. Refusals are checked in order: IP block, IP
 * failures, network failures, key failures. Refused attempts are not charged
 * (a locked-out client hammering us costs a counter read, and does not
 * extend its lockout).
 */
export function decideAdmission(state: AttemptState, attempt: Attempt, limits: FailureLimits, now: number): { admission: Admission } & AttemptState {
  const { failuresPerIp, ipBlock, failuresPerKey } = limits
  const failuresPerNetwork = attempt.network === undefined ? null : (limits.failuresPerNetwork ?? null)
  let ip = attempt.ip === undefined ? undefined : current(state.ip, now)
  let network = state.network
  let key = state.key
  if (ip !== undefined) {
    if (ip.blockedUntil > now) {
      return {
        admission: {
          allowed: false,
          policy: 'ip-block',
          limit: ipBlock?.threshold ?? 0,
          windowMs: ipBlock?.windowMs ?? 0,
          retryAfterMs: ip.blockedUntil - now,
        },
        ip,
        network,
        key,
      }
    }
    if (failuresPerIp !== null && ip.failures !== undefined && countIn(ip.failures, failuresPerIp.windowMs, now) >= failuresPerIp.limit) {
      const retryAfterMs = ip.failures.start + failuresPerIp.windowMs - now
      return { admission: { allowed: false, policy: 'ip-failures', ...failuresPerIp, retryAfterMs }, ip, network, key }
    }
  }
  if (failuresPerNetwork !== null && network !== undefined && countIn(network, failuresPerNetwork.windowMs, now) >= failuresPerNetwork.limit) {
    const retryAfterMs = network.start + failuresPerNetwork.windowMs - now
    return { admission: { allowed: false, policy: 'network-failures', ...failuresPerNetwork, retryAfterMs }, ip, network, key }
  }
  if (attempt.keyId !== undefined && failuresPerKey !== null && key !== undefined && countIn(key, failuresPerKey.windowMs, now) >= failuresPerKey.limit) {
    const retryAfterMs = key.start + failuresPerKey.windowMs - now
    return { admission: { allowed: false, policy: 'key-failures', ...failuresPerKey, retryAfterMs }, ip, network, key }
  }
  if (ip !== undefined && attempt.chargeIp) {
    ip = { ...ip }
    if (failuresPerIp !== null) ip.failures = charged(ip.failures, failuresPerIp.windowMs, now)
    if (ipBlock !== null) {
      ip.recent = charged(ip.recent, ipBlock.windowMs, now)
      if (ip.recent.count >= ipBlock.threshold) ip.blockedUntil = now + ipBlock.durationMs
    }
  }
  if (failuresPerNetwork !== null && attempt.chargeIp) network = charged(network, failuresPerNetwork.windowMs, now)
  if (attempt.keyId !== undefined && attempt.chargeKey && failuresPerKey !== null) key = charged(key, failuresPerKey.windowMs, now)
  return { admission: { allowed: true }, ip, network, key }
}

/**
 * Refunds a charge. An IP block that its failures no longer justify (the
 * refunded attempt was the one that reached the threshold) is lifted.
 */
export function decideRelease(state: AttemptState, charge: Charge, limits: FailureLimits, now: number): AttemptState {
  let ip = state.ip
  let network = state.network
  let key = state.key
  if (charge.ip !== undefined && ip !== undefined) {
    ip = { ...ip }
    if (limits.failuresPerIp !== null) ip.failures = refunded(ip.failures, limits.failuresPerIp.windowMs, charge.chargedAt)
    if (limits.ipBlock !== null) {
      ip.recent = refunded(ip.recent, limits.ipBlock.windowMs, charge.chargedAt)
      if (ip.blockedUntil > now && countIn(ip.recent, limits.ipBlock.windowMs, now) < limits.ipBlock.threshold) ip.blockedUntil = 0
    }
  }
  const failuresPerNetwork = limits.failuresPerNetwork ?? null
  if (charge.network !== undefined && failuresPerNetwork !== null) network = refunded(network, failuresPerNetwork.windowMs, charge.chargedAt)
  if (charge.keyId !== undefined && limits.failuresPerKey !== null) key = refunded(key, limits.failuresPerKey.windowMs, charge.chargedAt)
  return { ip, network, key }
}

/** Slack for floating-point emission intervals (e.g. 60000 / 7 ms). */
const EPSILON_MS = 1e-6

/**
 * GCRA (the generic cell rate algorithm): `limit` requests at once, then one
 * more every `windowMs / limit`. State is one number per key, the
 * theoretical arrival time `tat` (epoch ms, fractional): a key with no state
 * has its full quota.
 *
 * Chosen over a fixed window (which lets 2 × limit through around a window
 * edge) and a sliding log (one entry per request): one number, exact, and
 * both `remaining` and the time to a full quota fall out of it.
 */
export function decideQuota(tat: number | undefined, quota: Quota, now: number): { decision: QuotaDecision; tat: number | undefined } {
  const { limit, windowMs } = quota
  const interval = windowMs / limit
  const base = tat === undefined || tat < now ? now : tat
  const next = base + interval
  if (next - now > windowMs + EPSILON_MS) {
    return {
      decision: { allowed: false, limit, windowMs, remaining: 0, resetMs: Math.ceil(base - now), retryAfterMs: Math.ceil(next - now - windowMs) },
      tat,
    }
  }
  const remaining = Math.max(0, Math.floor((windowMs - (next - now)) / interval + EPSILON_MS))
  return { decision: { allowed: true, limit, windowMs, remaining, resetMs: Math.ceil(next - now) }, tat: next }
}
