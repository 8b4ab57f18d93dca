import type { CreditsConfig } from './credits/credits.js'

/** Where a key is in its life, at a given instant. */
export type KeyState = 'active' | 'grace' | 'expired' | 'revoked'

export type KeyMetadata = Record<string, unknown>

/**
 * A key as stored: everything but the secret. `hash` is the PHC string of the
 * token (Argon2id by default), never the token itself.
 */
export interface KeyRecord {
  id: string
  /** First 10 characters of `id`, shared by every key rotated from one another. */
  familyId: string
  tenantId: string
  name: string
  prefix: string
  scopes: string[]
  metadata: KeyMetadata
  /** Epoch ms. */
  createdAt: number
  /** Epoch ms after which the key no longer verifies; `null` for never. */
  expiresAt: number | null
  revokedAt: number | null
  revokedReason: string | null
  /** Incident id of an emergency rotation that revoked this key. */
  incidentId: string | null
  rotatedFrom: string | null
  rotatedTo: string | null
  /** Epoch ms of the rotation that made this key's successor. */
  rotatedAt: number | null
  /** Per-key request limit (requests per `windowMs`), inherited by rotation. `null`: the keyring default. */
  rateLimit: { limit: number; windowMs: number } | null
  usageCount: number
  lastUsedAt: number | null
  /** Last time this key was used while in its grace period. */
  lastUsedInGraceAt: number | null
  hash: string
  /**
   * The key spends credits (`create({ credits })`), inherited by rotation;
   * the balance itself is kept per family beside the records. Absent:
   * unlimited.
   */
  credits?: CreditsConfig
  /**
   * The fleet-wide proof of this key's token (`<fingerprint>.<HMAC>` under the
   * keyrings' proof key, never stored with it), written after one replica proved the
   * token with Argon2; absent until then and after a rotation or revocation.
   * See docs/redis.md#shared-proofs.
   */
  sharedProof?: string
  /**
   * Client IP ranges (canonical CIDRs) the key may be used from; absent for
   * any IP. Kept by rotation. See docs/policies.md#ip-allowlists.
   */
  allowedIps?: string[]
  /**
   * Set on a key brought in by `keyring.import()`: the keyed index of its
   * token (HMAC-SHA256 under the import key of the SHA-256 of the token), by
   * which a token without a key id is found. See docs/policies.md#importing-keys.
   */
  importIndex?: string
}

/** A record without its secrets' traces (hash, shared proof, import index): what the checks after a proof read. */
export type KeyFields = Omit<KeyRecord, 'hash' | 'sharedProof' | 'importIndex'>

/** A key as the keyring returns it: no hash, and its state at the time of the call. */
export type ApiKey = KeyFields & { state: KeyState }

export function stateOf(record: Pick<KeyRecord, 'revokedAt' | 'expiresAt' | 'rotatedTo'>, now: number): KeyState {
  if (record.revokedAt !== null) return 'revoked'
  if (record.expiresAt !== null && record.expiresAt <= now) return 'expired'
  if (record.rotatedTo !== null) return 'grace'
  return 'active'
}

/**
 * The public view of a record. Built field by field: a `{ hash, ...rest }`
 * destructuring leaves V8 a dictionary-mode object (hash-table properties,
 * about four times the bytes), and the verification cache keeps one view per
 * cached key.
 */
export function toApiKey(record: KeyRecord, now: number): ApiKey {
  const key: Record<string, unknown> = {}
  for (const name in record) {
    if (name !== 'hash' && name !== 'sharedProof' && name !== 'importIndex') key[name] = record[name as keyof KeyRecord]
  }
  key['scopes'] = [...record.scopes]
  key['metadata'] = { ...record.metadata }
  key['state'] = stateOf(record, now)
  if (record.allowedIps !== undefined) key['allowedIps'] = [...record.allowedIps]
  if (record.credits) key['credits'] = { refill: record.credits.refill ? { ...record.credits.refill } : null }
  return key as ApiKey
}
