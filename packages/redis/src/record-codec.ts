import { familyOf, type KeyRecord } from '@keyrot/core'
import { decodeHash, encodeHash } from './hash-codec.js'

/**
 * A `KeyRecord` as a Redis hash (docs/redis.md#record-encoding).
 *
 * Format 2 (written since this release) keeps a record small enough for
 * Redis's compact listpack encoding: one- or two-letter field names, a field
 * only when it differs from its default (no `usageCount` of 0, no `[]`
 * scopes, no `{}` metadata, no null), the hash as a parameter version and
 * its salt and digest (hash-codec.ts),
 * and no `id` or `familyId` (both are in the key's name). Field `v` = `2`
 * marks the format.
 *
 * Format 1 (the releases before) has one field per property under its own
 * name, the hash as a PHC string and no `v`. It is still read, and the
 * scripts update a format 1 record under its own names, so a store written
 * by an earlier release keeps working; `keyrot store migrate` converts it.
 *
 * Numbers are decimal, arrays and objects JSON, and `null` an absent field
 * (so Lua can test a field with `HGET` alone).
 *
 * Lua returns a format 2 record with its `id` appended (scripts.ts,
 * `record()`); that is the reply {@link decodeRecord} reads.
 */

/** The format written by {@link encodeRecord}, in field `v`. */
export const RECORD_FORMAT = 2

type Kind = 'text' | 'integer' | 'json'

interface FieldSpec {
  property: keyof KeyRecord
  /** Name in format 2. Never reuse a name, even of a dropped field. */
  field: string
  kind: Kind
  /** Written only when not the default; read as the default when absent. */
  empty?: unknown
  required?: boolean
  /** An optional property (`prop?:`): absent when not stored, rather than `null`. */
  optional?: boolean
  /** Refuses a decoded value that is not of the property's shape. */
  valid?: (value: unknown) => boolean
}

const isStrings = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string')
const isObject = (value: unknown) => value !== null && typeof value === 'object' && !Array.isArray(value)
const isCredits = (value: unknown) => {
  if (!isObject(value)) return false
  const refill = (value as { refill?: unknown }).refill
  return refill === null || (isObject(refill) && typeof (refill as { amount?: unknown }).amount === 'number' && typeof (refill as { intervalMs?: unknown }).intervalMs === 'number')
}
const isRateLimit = (value: unknown) =>
  isObject(value) && typeof (value as { limit?: unknown }).limit === 'number' && typeof (value as { windowMs?: unknown }).windowMs === 'number'

/**
 * Every stored property but `id`, `familyId`, `hash` and `sharedProof`
 * (handled apart). Format 1 names a field after its property. A new optional
 * property is one row here (and `null` means absent).
 */
const FIELDS: readonly FieldSpec[] = [
  { property: 'tenantId', field: 't', kind: 'text', required: true },
  { property: 'name', field: 'n', kind: 'text', required: true },
  { property: 'prefix', field: 'p', kind: 'text', required: true },
  { property: 'scopes', field: 's', kind: 'json', empty: [], valid: isStrings },
  { property: 'metadata', field: 'm', kind: 'json', empty: {}, valid: isObject },
  { property: 'createdAt', field: 'c', kind: 'integer', required: true },
  { property: 'expiresAt', field: 'e', kind: 'integer' },
  { property: 'revokedAt', field: 'r', kind: 'integer' },
  { property: 'revokedReason', field: 'w', kind: 'text' },
  { property: 'incidentId', field: 'i', kind: 'text' },
  { property: 'rotatedFrom', field: 'f', kind: 'text' },
  { property: 'rotatedTo', field: 'o', kind: 'text' },
  { property: 'rotatedAt', field: 'a', kind: 'integer' },
  { property: 'rateLimit', field: 'k', kind: 'json', valid: isRateLimit },
  { property: 'usageCount', field: 'u', kind: 'integer', empty: 0 },
  { property: 'lastUsedAt', field: 'l', kind: 'integer' },
  { property: 'lastUsedInGraceAt', field: 'g', kind: 'integer' },
  // Credits configuration (the balance is kept apart, see credits.ts).
  { property: 'credits', field: 'cr', kind: 'json', optional: true, valid: isCredits },
  { property: 'allowedIps', field: 'ip', kind: 'json', optional: true, valid: isStrings },
  { property: 'importIndex', field: 'ix', kind: 'text', optional: true },
]

/** Format 2 name -> format 1 name of the fields the scripts read or write, hash and proof included (scripts.ts). */
export const LEGACY_FIELD_NAMES: Readonly<Record<string, string>> = Object.freeze({
  ...Object.fromEntries(FIELDS.map((spec) => [spec.field, spec.property])),
  h: 'hash',
  x: 'proof',
})

/** Format 1 fields that format 2 derives from the key name. */
export const DERIVED_LEGACY_FIELDS = ['id', 'familyId'] as const

/** Format 1 values that format 2 leaves out (the defaults), by format 1 name. */
export const LEGACY_DEFAULTS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(FIELDS.filter((spec) => spec.empty !== undefined).map((spec) => [spec.property, serialise(spec, spec.empty)])),
)

/** Thrown when Redis holds or returns something this store did not write. */
export class CorruptRecordError extends Error {
  constructor(message: string) {
    super(`keyrot Redis store: ${message}`)
    this.name = 'CorruptRecordError'
  }
}

function serialise(spec: FieldSpec, value: unknown): string {
  if (spec.kind === 'json') return JSON.stringify(value)
  return String(value)
}

function isEmpty(spec: FieldSpec, value: unknown): boolean {
  if (value === null || value === undefined) return true
  if (spec.empty === undefined) return false
  return serialise(spec, value) === serialise(spec, spec.empty)
}

/**
 * Flat `[field, value, ...]` pairs for `HSET`, in format 2.
 */
export function encodeRecord(record: KeyRecord): string[] {
  const pairs: string[] = ['v', String(RECORD_FORMAT)]
  for (const spec of FIELDS) {
    const value = record[spec.property]
    if (!isEmpty(spec, value)) pairs.push(spec.field, serialise(spec, value))
  }
  const hash = encodeHash(record.hash)
  pairs.push('hv', hash.version, 'h', hash.value)
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

function parse(spec: FieldSpec, name: string, raw: string): unknown {
  if (spec.kind === 'text') return raw
  if (spec.kind === 'integer') {
    const value = Number(raw)
    if (raw === '' || !Number.isSafeInteger(value)) throw new CorruptRecordError(`field ${name} is not an integer`)
    return value
  }
  let value: unknown
  try {
    value = JSON.parse(raw) as unknown
  } catch {
    throw new CorruptRecordError(`field ${name} is not valid JSON`)
  }
  if (spec.valid && !spec.valid(value)) throw new CorruptRecordError(`field ${name} is not a ${spec.property === 'rateLimit' ? '{ limit, windowMs }' : `valid ${spec.property}`}`)
  return value
}

/**
 * Parses a record reply from a script (format 2 or 1) into a record.
 * Returns `null` for an empty reply (no such key); throws
 * {@link CorruptRecordError} for anything else that is not a whole record.
 */
export function decodeRecord(reply: unknown): KeyRecord | null {
  const map = toMap(reply)
  if (map.size === 0) return null
  const version = map.get('v')
  if (version !== undefined && version !== String(RECORD_FORMAT)) throw new CorruptRecordError(`record format ${JSON.stringify(version.slice(0, 10))} is newer than this release reads`)
  const legacy = version === undefined
  const name = (spec: FieldSpec) => (legacy ? spec.property : spec.field)
  const id = map.get('id')
  if (id === undefined) throw new CorruptRecordError('field id is missing')
  const record = { id, familyId: legacy ? map.get('familyId') : familyOf(id) } as Record<string, unknown>
  if (record.familyId === undefined) throw new CorruptRecordError('field familyId is missing')
  for (const spec of FIELDS) {
    const raw = map.get(name(spec))
    if (raw === undefined) {
      if (spec.required) throw new CorruptRecordError(`field ${name(spec)} is missing`)
      if (spec.optional) continue
      record[spec.property] = spec.empty === undefined ? null : structuredClone(spec.empty)
    } else {
      record[spec.property] = parse(spec, name(spec), raw)
    }
  }
  const hash = map.get(legacy ? 'hash' : 'h')
  if (hash === undefined) throw new CorruptRecordError('field hash is missing')
  if (legacy) record.hash = hash
  else {
    const decoded = decodeHash(map.get('hv') ?? '', hash)
    if (decoded === null) throw new CorruptRecordError('fields hv and h are not a stored hash')
    record.hash = decoded
  }
  // The shared proof (`putProof`): never written by encodeRecord, so a new key has none.
  const proof = map.get(legacy ? 'proof' : 'x')
  if (proof !== undefined) record.sharedProof = proof
  return record as unknown as KeyRecord
}


/** A nullable string as one Lua argument: `''` for null, `'='` + value otherwise. */
export function optionalArg(value: string | null | undefined): string {
  return value === null || value === undefined ? '' : `=${value}`
}
