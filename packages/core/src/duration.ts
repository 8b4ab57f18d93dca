/** A duration: milliseconds as a number, or a string such as `'250ms'`, `'30s'`, `'10m'`, `'24h'`, `'7d'`. */
export type Duration = number | string

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/

/**
 * Parses a {@link Duration} into milliseconds. Throws a `TypeError` naming
 * `name` when the value is not a finite, non-negative duration.
 *
 * @example parseDuration('24h', 'gracePeriod') // 86_400_000
 */
export function parseDuration(value: Duration, name: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      throw new TypeError(`${name} must be a non-negative number of milliseconds or a string like '30s' or '24h'; got ${String(value)}`)
    }
    return Math.floor(value)
  }
  if (typeof value === 'string') {
    const match = DURATION_PATTERN.exec(value.trim())
    if (match) {
      const ms = Number(match[1]) * (UNIT_MS[match[2] as string] as number)
      if (Number.isFinite(ms)) return Math.floor(ms)
    }
  }
  throw new TypeError(
    `${name} must be a non-negative number of milliseconds or a string like '250ms', '30s', '10m', '24h' or '7d'; got ${describe(value)}`,
  )
}

/** Names a rejected value for an error message; never throws (a BigInt or a cycle breaks JSON.stringify). */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** Formats milliseconds compactly: `86400000` → `'1d'`, `90000` → `'1m 30s'`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  const negative = ms < 0
  let rest = Math.abs(Math.round(ms))
  if (rest < 1000) return `${negative ? '-' : ''}${rest}ms`
  const parts: string[] = []
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`)
      rest %= size
    }
    if (parts.length === 2) break
  }
  return (negative ? '-' : '') + parts.join(' ')
}
