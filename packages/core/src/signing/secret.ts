import { randomBytes } from 'node:crypto'
import type { Duration } from '../duration.js'
import type { ApiKey } from '../types.js'

/** Prefix of signing secrets, as the Standard Webhooks specification writes them. Also the `prefix` of their key records. */
export const SIGNING_PREFIX = 'whsec'

/** Random bytes in a new signing secret (256 bits). */
export const SIGNING_SECRET_BYTES = 32

const SECRET_PATTERN = /^whsec_([A-Za-z0-9+/]+={0,2})$/
/** Standard Webhooks accepts secrets of 24 to 64 bytes. */
const MIN_SECRET_BYTES = 24
const MAX_SECRET_BYTES = 64

/** A new signing secret: `whsec_` and the base64 of 32 random bytes, the Standard Webhooks format. */
export function generateSigningSecret(): string {
  return `${SIGNING_PREFIX}_${randomBytes(SIGNING_SECRET_BYTES).toString('base64')}`
}

/**
 * The HMAC key bytes of a `whsec_...` secret. Throws a `TypeError` naming
 * `option` (never echoing the value) when the secret is malformed.
 */
export function signingKeyBytes(secret: unknown, option = 'secret'): Buffer {
  const match = typeof secret === 'string' ? SECRET_PATTERN.exec(secret.trim()) : null
  const bytes = match ? Buffer.from(match[1] as string, 'base64') : Buffer.alloc(0)
  if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
    throw new TypeError(`${option} must be a signing secret: 'whsec_' and the base64 of ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes`)
  }
  return bytes
}

/** Whether a key (record or public view) is a signing secret rather than an API key. */
export function isSigningSecret(key: { prefix: string }): boolean {
  return key.prefix === SIGNING_PREFIX
}

export interface CreateSigningSecretInput {
  tenantId: string
  name: string
  /** When the secret stops working: epoch ms, Date or ISO string. Default: never. */
  expiresAt?: number | Date | string | null
  /** Its lifetime instead of `expiresAt`, from the moment it is created: `'365d'` or milliseconds. */
  expiresIn?: Duration
  metadata?: Record<string, unknown>
}

export interface IssuedSigningSecret {
  /** The plaintext secret (`whsec_...`). Shown once: keyrot keeps it only encrypted. */
  secret: string
  /** The secret's record; `key.id` is the secret id that signs webhooks and requests. */
  key: ApiKey
}
