import { InvalidInputError } from '../errors.js'
import { parseDuration, type Duration } from '../duration.js'
import { shortGraceReason } from '../grace-period.js'
import type { KeyMetadata } from '../types.js'

const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/
const SCOPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:._*/-]{0,63}$/
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/
export const MAX_SCOPES = 64
export const MAX_METADATA_BYTES = 8_192

export function checkTenantId(value: unknown): string {
  if (typeof value !== 'string' || !TENANT_PATTERN.test(value)) {
    throw new InvalidInputError('tenantId', "must be 1-128 characters of letters, digits and . _ : @ -, starting with a letter or digit")
  }
  return value
}

export function checkName(value: unknown, field = 'name'): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > 200 || CONTROL_CHARS.test(value)) {
    throw new InvalidInputError(field, 'must be a non-empty string of at most 200 characters without control characters')
  }
  return value
}

export function checkScopes(value: unknown): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw new InvalidInputError('scopes', 'must be an array of strings')
  if (value.length > MAX_SCOPES) throw new InvalidInputError('scopes', `at most ${MAX_SCOPES} scopes`)
  for (const scope of value) {
    if (typeof scope !== 'string' || !SCOPE_PATTERN.test(scope)) {
      throw new InvalidInputError('scopes', 'each scope must be 1-64 characters of letters, digits and : . _ * / -')
    }
  }
  return [...new Set(value as string[])]
}

export function checkMetadata(value: unknown): KeyMetadata {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidInputError('metadata', 'must be a plain object')
  }
  let json: string
  try {
    json = JSON.stringify(value)
  } catch {
    throw new InvalidInputError('metadata', 'must be JSON-serialisable')
  }
  if (Buffer.byteLength(json) > MAX_METADATA_BYTES) throw new InvalidInputError('metadata', `must serialise to at most ${MAX_METADATA_BYTES} bytes`)
  return JSON.parse(json) as KeyMetadata
}

/** A timestamp from a number (epoch ms), a Date or an ISO string; `null`/`undefined` pass through. */
export function checkTimestamp(value: unknown, field: string): number | null {
  if (value === undefined || value === null) return null
  let ms: number
  if (value instanceof Date) ms = value.getTime()
  else if (typeof value === 'number') ms = value
  else if (typeof value === 'string' && value.trim() !== '') ms = Date.parse(value)
  else throw new InvalidInputError(field, 'must be an epoch-millisecond number, a Date or an ISO 8601 string')
  if (!Number.isFinite(ms) || ms < 0 || ms > 8.64e15) throw new InvalidInputError(field, 'is not a valid point in time')
  return Math.floor(ms)
}

export function checkDuration(value: Duration, field: string): number {
  try {
    return parseDuration(value, field)
  } catch (error) {
    throw new InvalidInputError(field, (error as Error).message.replace(`${field} `, ''))
  }
}

/**
 * A grace period (`rotate`'s `gracePeriod`, `extendGrace`'s `by`): a
 * duration, and a bare number 0 or at least 1 s (see grace-period.ts).
 * `call` prefixes the reason, to name the parameter of a positional argument.
 */
export function checkGrace(value: Duration, field: string, call = ''): number {
  let ms: number
  try {
    ms = parseDuration(value, field)
  } catch (error) {
    throw new InvalidInputError(field, call + (error as Error).message.replace(`${field} `, ''))
  }
  const reason = shortGraceReason(value)
  if (reason !== null) throw new InvalidInputError(field, call + reason)
  return ms
}

export interface RateLimitInput {
  /** Requests allowed per window. */
  limit: number
  /** Window length: ms or a duration string. */
  window: Duration
}

export function checkRateLimit(value: unknown): { limit: number; windowMs: number } | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object') throw new InvalidInputError('rateLimit', 'must be { limit, window }')
  const { limit, window } = value as { limit?: unknown; window?: unknown }
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1e9) {
    throw new InvalidInputError('rateLimit.limit', 'must be a positive integer')
  }
  const windowMs = checkDuration((window ?? '1m') as Duration, 'rateLimit.window')
  if (windowMs < 1000) throw new InvalidInputError('rateLimit.window', 'must be at least 1s')
  return { limit, windowMs }
}
