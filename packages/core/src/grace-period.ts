import { parseDuration, type Duration } from './duration.js'

/**
 * Durations given as bare numbers are milliseconds (as in express-rate-limit
 * and setTimeout), but a grace period of a few milliseconds is almost surely
 * seconds meant: `rotate(id, { gracePeriod: 5 })` would cut the old key off
 * at once. So a grace period given as a number must be 0 (end now) or at
 * least this; shorter ones must be written with their unit, e.g. `'500ms'`.
 */
export const MIN_NUMERIC_GRACE_MS = 1_000

/** Why a bare-number grace period is refused, or `null` when it is fine. */
export function shortGraceReason(value: Duration): string | null {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value >= MIN_NUMERIC_GRACE_MS) return null
  return (
    `${value} means ${value} ms, and a grace period under 1 s is almost surely a mistake. ` +
    `Write '${value}s' for seconds, or '${value}ms' if you mean milliseconds (0 ends the grace at once)`
  )
}

/** Parses a grace period in ms; throws a TypeError naming `name` for a bad value or a bare number under 1 s. */
export function parseGracePeriod(value: Duration, name: string): number {
  const ms = parseDuration(value, name)
  const reason = shortGraceReason(value)
  if (reason !== null) throw new TypeError(`${name}: ${reason}; got ${String(value)}`)
  return ms
}
