import { AlreadyRotatedError, InvalidInputError, KeyExpiredError, KeyRevokedError } from '../errors.js'
import { familyOf } from '../token/format.js'
import type { KeyRecord } from '../types.js'
import type { RotateOptions } from './keyring-types.js'
import { checkMetadata, checkName, checkScopes, checkTimestamp } from './validate.js'

/** Moves a successor's creation (and an inherited lifetime) to the moment it is written. */
export function restamp(record: KeyRecord, mintedAt: number, at: number, inheritedLifetime: boolean): void {
  record.createdAt = at
  if (inheritedLifetime && record.expiresAt !== null) record.expiresAt += at - mintedAt
}

/**
 * What a rotation's successor inherits from the old key, with the caller's overrides applied.
 * An imported key's successor is a keyrot token with `keyrotPrefix` (the keyring's): its old token was in another format.
 */
export function successorDraft(old: KeyRecord, options: RotateOptions, now: number, keyrotPrefix?: string): RecordDraft {
  let expiresAt: number | null
  if (options.expiresAt !== undefined) {
    expiresAt = checkTimestamp(options.expiresAt, 'expiresAt')
    if (expiresAt !== null && expiresAt <= now) throw new InvalidInputError('expiresAt', 'must be in the future')
  } else {
    // A key issued with a lifetime (say 90 days) rotates into a key with the same lifetime.
    expiresAt = old.expiresAt === null ? null : now + Math.max(0, old.expiresAt - old.createdAt)
  }
  return {
    tenantId: old.tenantId,
    name: options.name === undefined ? old.name : checkName(options.name),
    scopes: options.scopes === undefined ? old.scopes : checkScopes(options.scopes),
    metadata: options.metadata === undefined ? old.metadata : checkMetadata(options.metadata),
    rateLimit: old.rateLimit,
    // The balance is the family's: the successor draws from it too.
    ...(old.credits ? { credits: old.credits } : {}),
    prefix: old.importIndex !== undefined && keyrotPrefix !== undefined ? keyrotPrefix : old.prefix,
    expiresAt,
    ...(old.allowedIps === undefined ? {} : { allowedIps: old.allowedIps }),
  }
}

/** Throws unless `old` can be rotated at `now`: not revoked, not rotated already, not expired. */
export function assertRotatable(old: KeyRecord, now: number, hint = ''): void {
  if (old.revokedAt !== null) throw new KeyRevokedError(old.id, old.revokedAt, old.revokedReason)
  if (old.rotatedTo !== null) throw new AlreadyRotatedError(old.id, old.rotatedTo, hint)
  if (old.expiresAt !== null && old.expiresAt <= now) throw new KeyExpiredError(old.id, old.expiresAt)
}

/** What a new key's record is built from: the caller's input, checked. */
export type RecordDraft = Pick<KeyRecord, 'tenantId' | 'name' | 'scopes' | 'metadata' | 'rateLimit' | 'prefix' | 'expiresAt' | 'credits' | 'allowedIps'>

/** A new key's record around its `hash`: not revoked, not rotated, unused. */
export function newRecord(draft: RecordDraft, id: string, rotatedFrom: string | null, now: number, hash: string): KeyRecord {
  const record: KeyRecord = {
    id,
    familyId: familyOf(id),
    tenantId: draft.tenantId,
    name: draft.name,
    prefix: draft.prefix,
    scopes: [...draft.scopes],
    metadata: draft.metadata,
    createdAt: now,
    expiresAt: draft.expiresAt,
    revokedAt: null,
    revokedReason: null,
    incidentId: null,
    rotatedFrom,
    rotatedTo: null,
    rotatedAt: null,
    rateLimit: draft.rateLimit,
    usageCount: 0,
    lastUsedAt: null,
    lastUsedInGraceAt: null,
    hash,
    ...(draft.credits ? { credits: { refill: draft.credits.refill ? { ...draft.credits.refill } : null } } : {}),
  }
  if (draft.allowedIps !== undefined && draft.allowedIps !== null) record.allowedIps = [...draft.allowedIps]
  return record
}
