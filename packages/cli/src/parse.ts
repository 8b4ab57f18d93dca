import { parseDuration } from '@keyrot/core'
import { InvalidArgumentError } from 'commander'

/** `--grace 24h`, `--within 7d`: a duration in ms. */
export function parseDurationArg(value: string): number {
  try {
    return parseDuration(value, 'value')
  } catch {
    throw new InvalidArgumentError("expected a duration such as '30s', '10m', '24h' or '7d'.")
  }
}

/**
 * `--expires 90d` or `--expires 2030-01-01T00:00:00Z`. A lifetime stays
 * relative (`expiresIn`): the keyring counts it from the key's `createdAt`,
 * so a 90-day key lives exactly 90 days, whatever the command's own clock.
 */
export function parseExpiresArg(value: string): { expiresIn: number } | { expiresAt: number } {
  try {
    const ms = parseDuration(value, 'value')
    if (ms > 0) return { expiresIn: ms }
  } catch {
    // not a duration: try a date below
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const at = Date.parse(value)
    if (Number.isFinite(at)) return { expiresAt: at }
  }
  throw new InvalidArgumentError("expected a duration from now ('90d', '12h') or an ISO 8601 date ('2030-01-01T00:00:00Z').")
}

const RATE_UNITS: Record<string, number> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
}

/** `--rate-limit 100/min`, `100/s`, `5000/hour` or `100/30s`: a limit per window. */
export function parseRateLimitArg(value: string): { limit: number; window: number } {
  const match = /^(\d+)\s*\/\s*([a-z0-9.]+)$/.exec(value.trim().toLowerCase())
  const fail = () => new InvalidArgumentError("expected <requests>/<window>, such as '100/min', '10/s', '5000/hour' or '100/30s'.")
  if (!match) throw fail()
  const limit = Number(match[1])
  if (!Number.isSafeInteger(limit) || limit < 1) throw fail()
  const unit = match[2] as string
  // Plurals of the word units: 'mins', 'hours' (not 'ms', which is no unit here).
  let window: number | undefined = RATE_UNITS[unit] ?? (unit.length > 3 && unit.endsWith('s') ? RATE_UNITS[unit.slice(0, -1)] : undefined)
  if (window === undefined) {
    try {
      window = parseDuration(match[2] as string, 'window')
    } catch {
      throw fail()
    }
  }
  return { limit, window: window as number }
}

/** `--scopes read,write`: a list, trimmed, without empty items. */
export function parseListArg(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0)
}

/** `--metadata '{"team":"infra"}'`: a JSON object. */
export function parseJsonObjectArg(value: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw new InvalidArgumentError('expected a JSON object.')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('expected a JSON object.')
  return parsed as Record<string, unknown>
}
