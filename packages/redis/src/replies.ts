import {
  AlreadyRotatedError,
  InvalidInputError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyRevokedError,
  type KeyRecord,
  type KeyrotError,
} from '@keyrot/core'
import { CorruptRecordError, decodeRecord } from './record-codec.js'

/** A script reply split into its tag and the rest; anything else is corrupt. */
export function tagged(reply: unknown): { tag: string; rest: unknown[] } {
  if (!Array.isArray(reply) || reply.length === 0 || typeof reply[0] !== 'string') {
    throw new CorruptRecordError('a script reply is not a tagged list')
  }
  return { tag: reply[0], rest: reply.slice(1) }
}

/** A record that must be there. */
export function requireRecord(reply: unknown): KeyRecord {
  const record = decodeRecord(reply)
  if (record === null) throw new CorruptRecordError('a script returned an empty record')
  return record
}

/**
 * The keyrot error a refusal tag stands for, or `null` for `'ok'`.
 * `keyId` names the key the operation was about; `newKeyId` the successor a
 * rotation tried to add.
 */
export function refusal(tag: string, rest: unknown[], keyId: string, newKeyId?: string, now?: number): KeyrotError | null {
  switch (tag) {
    case 'ok':
      return null
    case 'not_found':
      return new KeyNotFoundError(keyId)
    case 'exists':
      return new InvalidInputError('id', `key ${newKeyId ?? keyId} already exists`)
    case 'revoked': {
      const record = requireRecord(rest[0])
      return new KeyRevokedError(record.id, record.revokedAt as number, record.revokedReason)
    }
    case 'rotated': {
      const record = requireRecord(rest[0])
      return new AlreadyRotatedError(record.id, record.rotatedTo)
    }
    case 'expired': {
      const record = requireRecord(rest[0])
      return new KeyExpiredError(record.id, record.expiresAt ?? now ?? 0)
    }
    default:
      throw new CorruptRecordError(`a script replied with the unknown tag ${JSON.stringify(tag.slice(0, 40))}`)
  }
}

/** Throws the refusal a reply carries; returns its payload when it is `'ok'`. */
export function okPayload(reply: unknown, keyId: string, newKeyId?: string, now?: number): unknown[] {
  const { tag, rest } = tagged(reply)
  const error = refusal(tag, rest, keyId, newKeyId, now)
  if (error) throw error
  return rest
}
