/**
 * The credit headers of a response to a client that proved its key:
 * `X-Credits-Remaining` (credits left after this request) and, for a key
 * with a refill, `X-Credits-Reset` (seconds until the next refill, rounded
 * up). Kept apart from the `RateLimit` fields: credits are a balance, not a
 * window quota, and clients read the two separately.
 *
 * @example
 * creditsHeaders(41, 3_600_000) // { 'x-credits-remaining': '41', 'x-credits-reset': '3600' }
 *
 * `resetMs`: milliseconds until the next refill, `null` for a key without one.
 */
export function creditsHeaders(remaining: number, resetMs: number | null): Record<string, string> {
  const headers: Record<string, string> = { 'x-credits-remaining': String(Math.max(0, remaining)) }
  if (resetMs !== null) headers['x-credits-reset'] = String(Math.max(0, Math.ceil(resetMs / 1000)))
  return headers
}
