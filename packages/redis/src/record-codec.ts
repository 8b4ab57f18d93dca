import type { KeyRecord } from '@keyrot/core'

/**
 * A `KeyRecord` as a Redis hash: one field per property, numbers in decimal,
 * arrays and objects as JSON, and `null` as an absent field (so Lua can test
 * a field with `HGET` alone).
 */

const STRING_FIELDS = ['id', 'familyId', 'tenantId', 'name', 'prefix', 'hash'] as const
const OPTIONAL_STRING_FIELDS = ['revokedReason', 'incidentId', 'rotatedFrom', 'rotatedTo'] as const
const OPTIONAL_NUMBER_FIELDS = ['expiresAt', 'revokedAt', 'rotatedAt', 'lastUsedAt', 'lastUsedInGraceAt'] as const

/** Thrown when Redis holds or returns something this store did not write. */
export class CorruptRecordError extends Error {
  constructor(message: string) {
    super(`keyrot Redis store: ${message}`)
    this.name = 'CorruptRecordError'
  }
}

/** Flat `[field, value, ...]` pairs for `HSET`. */
export function encodeRecord(record: KeyRecord): string[] {
  const pairs: string[] = []
  for (const field of STRING_FIELDS) pairs.push(field, record[field])
  for (const field of OPTIONAL_STRING_FIELDS) {
    const value = record[field]
    if (value !== null) pairs.push(field, value)
  }
  for (const field of OPTIONAL_NUMBER_FIELDS) {
    const value = record[field]
    if (value !== null) pairs.push(field, String(value))
  }
  pairs.push('createdAt', String(record.createdAt))
  pairs.push('usageCount', String(record.usageCount))
  pairs.push('scopes', JSON.stringify(record.scopes))
  pairs.push('metadata', JSON.stringify(record.metadata))
  if (record.rateLimit !== null) pairs.push('rateLimit', JSON.stringify(record.rateLimit))
  if (record.credits) pairs.push('credits', JSON.stringify(record.credits))
  if (record.allowedIps !== undefined) pairs.push('allowedIps', JSON.stringify(record.allowedIps))
  if (record.importIndex !== undefined) pairs.push('importIndex', record.importIndex)
  return pairs
}

function toMap(reply: unknown): Map<string, string> {
  if (!Array.isArray(reply) || reply.length % 2 !== 0) throw new CorruptRecordError('a record reply is not a list of field/value pairs')
  const map = new Map<string, string>()
  for (let i = 0; i < reply.length; i += 2) {
    const field = reply[i]
    const value = reply[i + 1]
    if (typeof field !== 'string' || typeof value !== 'string') throw new CorruptRecordError('a record field is not a string')
    map.set(field, value)
  }
  return map
}

function integer(map: Map<string, string>, field: string): number | null {
  const raw = map.get(field)
  if (raw === undefined) return null
  const value = Number(raw)
  if (!Number.isSafeInteger(value)) throw new CorruptRecordError(`field ${field} is not an integer`)
  return value
}

function json(map: Map<string, string>, field: string): unknown {
  const raw = map.get(field)
  if (raw === undefined) return undefined
  try {
    return JSON.parse(raw) as unknown
  } catch {
    throw new CorruptRecordError(`field ${field} is not valid JSON`)
  }
}

/**
 * Parses a flat `HGETALL` reply (as returned from Lua) into a record.
 * Returns `null` for an empty reply (no such key); throws
 * {@link CorruptRecordError} for anything else that is not a whole record.
 */
export function decodeRecord(reply: unknown): KeyRecord | null {
  const map = toMap(reply)
  if (map.size === 0) return null
  const text = (field: string): string => {
    const value = map.get(field)
    if (value === undefined) throw new CorruptRecordError(`field ${field} is missing`)
    return value
  }
  const required = (field: string): number => {
    const value = integer(map, field)
    if (value === null) throw new CorruptRecordError(`field ${field} is missing`)
    return value
  }
  const scopes = json(map, 'scopes')
  if (!Array.isArray(scopes) || scopes.some((scope) => typeof scope !== 'string')) throw new CorruptRecordError('field scopes is not a list of strings')
  const metadata = json(map, 'metadata')
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new CorruptRecordError('field metadata is not an object')
  const rateLimit = json(map, 'rateLimit')
  if (
    rateLimit !== undefined &&
    (rateLimit === null ||
      typeof rateLimit !== 'object' ||
      typeof (rateLimit as { limit?: unknown }).limit !== 'number' ||
      typeof (rateLimit as { windowMs?: unknown }).windowMs !== 'number')
  ) {
    throw new CorruptRecordError('field rateLimit is not { limit, windowMs }')
  }
  const record: KeyRecord = {
    id: text('id'),
    familyId: text('familyId'),
    tenantId: text('tenantId'),
    name: text('name'),
    prefix: text('prefix'),
    scopes: scopes as string[],
    metadata: metadata as Record<string, unknown>,
    createdAt: required('createdAt'),
    expiresAt: integer(map, 'expiresAt'),
    revokedAt: integer(map, 'revokedAt'),
    revokedReason: map.get('revokedReason') ?? null,
    incidentId: map.get('incidentId') ?? null,
    rotatedFrom: map.get('rotatedFrom') ?? null,
    rotatedTo: map.get('rotatedTo') ?? null,
    rotatedAt: integer(map, 'rotatedAt'),
    rateLimit: rateLimit === undefined ? null : { limit: (rateLimit as { limit: number }).limit, windowMs: (rateLimit as { windowMs: number }).windowMs },
    usageCount: integer(map, 'usageCount') ?? 0,
    lastUsedAt: integer(map, 'lastUsedAt'),
    lastUsedInGraceAt: integer(map, 'lastUsedInGraceAt'),
    hash: text('hash'),
  }
  // Credits configuration (the balance is kept apart, see credits.ts).
  const credits = json(map, 'credits')
  if (credits !== undefined) record.credits = decodeCredits(credits)
  // The shared proof (`putProof`): never written by encodeRecord, so a new key has none.
  const proof = map.get('proof')
  if (proof !== undefined) record.sharedProof = proof
  const allowedIps = json(map, 'allowedIps')
  if (allowedIps !== undefined) {
    if (!Array.isArray(allowedIps) || allowedIps.some((range) => typeof range !== 'string')) throw new CorruptRecordError('field allowedIps is not a list of strings')
    record.allowedIps = allowedIps as string[]
  }
  const importIndex = map.get('importIndex')
  if (importIndex !== undefined) record.importIndex = importIndex
  return record
}

function decodeCredits(value: unknown): NonNullable<KeyRecord['credits']> {
  const refill = (value as { refill?: unknown } | null)?.refill
  if (value === null || typeof value !== 'object' || refill === undefined) throw new CorruptRecordError('field credits is not { refill }')
  if (refill === null) return { refill: null }
  const { amount, intervalMs } = refill as { amount?: unknown; intervalMs?: unknown }
  if (typeof amount !== 'number' || typeof intervalMs !== 'number') throw new CorruptRecordError('field credits.refill is not { amount, intervalMs }')
  return { refill: { amount, intervalMs } }
}

/** A nullable string as one Lua argument: `''` for null, `'='` + value otherwise. */
export function optionalArg(value: string | null | undefined): string {
  return value === null || value === undefined ? '' : `=${value}`
}
