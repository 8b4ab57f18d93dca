import { formatDuration } from '@keyrot/core'

/** A span for people: `'23h 59m'`, `'3d 4h'`, `'45s'`; under a second is `'0s'`. */
export function formatSpan(ms: number): string {
  const abs = Math.abs(ms)
  return abs < 1000 ? '0s' : formatDuration(abs)
}

/**
 * Where `at` lies from `now`, for people: `'in 23h 59m'`, `'3m 12s ago'`,
 * `'now'` within a second. `null` becomes `ifNull` (`'never'` by default).
 *
 * @example formatRelative(now + 86_340_000, now) // 'in 23h 59m'
 */
export function formatRelative(at: number | null, now: number, ifNull = 'never'): string {
  if (at === null) return ifNull
  const delta = at - now
  if (Math.abs(delta) < 1000) return 'now'
  return delta > 0 ? `in ${formatSpan(delta)}` : `${formatSpan(delta)} ago`
}

/** An instant as an ISO 8601 UTC string followed by its relative time: `'2030-01-01T00:00:00.000Z (in 2d 3h)'`. */
export function formatInstant(at: number | null, now: number, ifNull = 'never'): string {
  if (at === null) return ifNull
  return `${new Date(at).toISOString()} (${formatRelative(at, now)})`
}
