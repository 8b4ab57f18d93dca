import { stateOf, type ApiKey, type KeyRecord } from '../types.js'

const NO_SCOPES: readonly string[] = Object.freeze([])
const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({})

/** A frozen copy: the record's own arrays and objects stay the store's to change (a store may hand out what it keeps). */
function frozenArray<T>(value: readonly T[]): T[] {
  return Object.freeze(value.slice()) as T[]
}

function frozenObject<T extends object>(value: T): T {
  return Object.freeze({ ...value })
}

/**
 * The frozen public view of a record that the verification cache keeps and
 * that every cache hit hands out as `result.key` (`req.apiKey`): everything
 * but the hash, the shared proof and the import index. It is also the state
 * the verify path checks (status, expiry, scopes, networks, quota), so a
 * cached key holds one object, not a record and a view of it.
 *
 * Frozen all the way down to its scopes, metadata (top level), rate limit,
 * credits and networks: one request's middleware cannot change what the
 * next request of the same key sees. Those members are copies (the
 * record's stay the store's), made once per store read; empty ones are
 * shared constants.
 *
 * Built as one object literal, so V8 gives every field a slot inside the
 * object (no separate property array); only keys with credits or networks
 * add a field after it.
 */
export function keyView(record: KeyRecord): ApiKey {
  const view: ApiKey = {
    id: record.id,
    familyId: record.familyId,
    tenantId: record.tenantId,
    name: record.name,
    prefix: record.prefix,
    scopes: record.scopes.length === 0 ? (NO_SCOPES as string[]) : frozenArray(record.scopes),
    metadata: isEmpty(record.metadata) ? (NO_METADATA as Record<string, unknown>) : frozenObject(record.metadata),
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
    revokedReason: record.revokedReason,
    incidentId: record.incidentId,
    rotatedFrom: record.rotatedFrom,
    rotatedTo: record.rotatedTo,
    rotatedAt: record.rotatedAt,
    rateLimit: record.rateLimit === null ? null : frozenObject(record.rateLimit),
    usageCount: record.usageCount,
    lastUsedAt: record.lastUsedAt,
    lastUsedInGraceAt: record.lastUsedInGraceAt,
    // The state apart from expiry, which the verify path checks against its own clock on every request.
    state: stateOf(record, Number.NEGATIVE_INFINITY),
  }
  if (record.credits !== undefined) view.credits = Object.freeze({ refill: record.credits.refill ? frozenObject(record.credits.refill) : null })
  if (record.allowedIps !== undefined) view.allowedIps = frozenArray(record.allowedIps)
  return Object.freeze(view)
}

function isEmpty(object: object): boolean {
  for (const _ in object) return false
  return true
}
