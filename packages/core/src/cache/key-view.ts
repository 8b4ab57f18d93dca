import { stateOf, type ApiKey, type KeyRecord } from '../types.js'

const NO_SCOPES: readonly string[] = Object.freeze([])
const NO_METADATA: Readonly<Record<string, unknown>> = Object.freeze({})

function frozen<T extends object>(value: T): T {
  return Object.isFrozen(value) ? value : Object.freeze(value)
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
 * next request of the same key sees. Those members are the record's own
 * (frozen in place: the record comes from a store read and is not used
 * again once its view exists), and empty ones are shared constants.
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
    scopes: record.scopes.length === 0 ? (NO_SCOPES as string[]) : frozen(record.scopes),
    metadata: isEmpty(record.metadata) ? (NO_METADATA as Record<string, unknown>) : frozen(record.metadata),
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
    revokedReason: record.revokedReason,
    incidentId: record.incidentId,
    rotatedFrom: record.rotatedFrom,
    rotatedTo: record.rotatedTo,
    rotatedAt: record.rotatedAt,
    rateLimit: record.rateLimit === null ? null : frozen(record.rateLimit),
    usageCount: record.usageCount,
    lastUsedAt: record.lastUsedAt,
    lastUsedInGraceAt: record.lastUsedInGraceAt,
    // The state apart from expiry, which the verify path checks against its own clock on every request.
    state: stateOf(record, Number.NEGATIVE_INFINITY),
  }
  if (record.credits !== undefined) {
    if (record.credits.refill) frozen(record.credits.refill)
    view.credits = frozen(record.credits)
  }
  if (record.allowedIps !== undefined) view.allowedIps = frozen(record.allowedIps)
  return Object.freeze(view)
}

function isEmpty(object: object): boolean {
  for (const _ in object) return false
  return true
}
