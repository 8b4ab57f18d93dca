import type { RateLimitPolicy } from './limiter.js'

/** Where a client stands against one rate-limit policy. */
export interface RateLimitInfo {
  policy: RateLimitPolicy
  /** Quota units (requests or failures) per window. */
  limit: number
  windowMs: number
  /** Units left now. */
  remaining: number
  /** Until the quota is whole again (or the refusal ends). */
  resetMs: number
}

function seconds(ms: number): number {
  return Math.max(0, Math.ceil(ms / 1000))
}

/**
 * The `RateLimit-Policy` and `RateLimit` fields of
 * draft-ietf-httpapi-ratelimit-headers (structured-field lists of one item,
 * the policy name as a string):
 *
 * @example
 * rateLimitHeaders({ policy: 'per-key', limit: 100, windowMs: 60_000, remaining: 42, resetMs: 17_400 })
 * // { 'ratelimit-policy': '"per-key";q=100;w=60', ratelimit: '"per-key";r=42;t=18' }
 */
export function rateLimitHeaders(info: RateLimitInfo): { 'ratelimit-policy': string; ratelimit: string } {
  return { 'ratelimit-policy': policyField(info), ratelimit: `"${info.policy}";r=${Math.max(0, info.remaining)};t=${seconds(info.resetMs)}` }
}

/** The last policy field written: most responses repeat the same quota, so the string is built once. */
let lastPolicy = { policy: '', limit: -1, windowMs: -1, field: '' }

function policyField(info: RateLimitInfo): string {
  const last = lastPolicy
  if (last.policy === info.policy && last.limit === info.limit && last.windowMs === info.windowMs) return last.field
  const field = `"${info.policy}";q=${info.limit};w=${seconds(info.windowMs)}`
  lastPolicy = { policy: info.policy, limit: info.limit, windowMs: info.windowMs, field }
  return field
}
