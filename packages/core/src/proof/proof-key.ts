import { hkdfSync } from 'node:crypto'

/** The environment variable a keyring reads when no `proofKey` option is given. */
export const PROOF_KEY_ENV = 'KEYROT_PROOF_KEY'

/** Fewest bytes a proof key may have: a 256-bit HMAC key. */
export const MIN_PROOF_KEY_BYTES = 32

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

/**
 * Resolves the keyring's `proofKey` option once. `undefined` falls back to
 * `KEYROT_PROOF_KEY` in `env` (the issue of every replica's deployment, not of
 * the code); `null` turns shared proofs off whatever the environment says.
 * Anything else that is not at least 32 bytes (a `Buffer`, or base64) throws a
 * `TypeError` naming where it came from.
 */
export function resolveProofKey(value: unknown, env: Readonly<Record<string, string | undefined>> = process.env): Buffer | null {
  if (value === null) return null
  if (value !== undefined) return decodeProofKey(value, 'proofKey')
  const fromEnv = env[PROOF_KEY_ENV]
  if (fromEnv === undefined || fromEnv.trim() === '') return null
  return decodeProofKey(fromEnv.trim(), PROOF_KEY_ENV)
}

function decodeProofKey(value: unknown, name: string): Buffer {
  let bytes: Buffer
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    bytes = Buffer.from(value)
  } else if (typeof value === 'string') {
    if (!BASE64.test(value)) throw new TypeError(`${name} must be base64 (at least ${MIN_PROOF_KEY_BYTES} random bytes); got a string that is not base64`)
    bytes = Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64')
  } else {
    throw new TypeError(`${name} must be a Buffer or a base64 string of at least ${MIN_PROOF_KEY_BYTES} random bytes`)
  }
  if (bytes.length < MIN_PROOF_KEY_BYTES) {
    throw new TypeError(`${name} must be at least ${MIN_PROOF_KEY_BYTES} random bytes; got ${bytes.length}`)
  }
  if (bytes.every((byte) => byte === bytes[0])) throw new TypeError(`${name} must be random bytes; got ${bytes.length} equal bytes`)
  return bytes
}

/** The HKDF label of a proof key derived from master keys: distinct from every other use of those keys. */
const DERIVATION_LABEL = 'keyrot shared proof key v1'

/**
 * The proof key of a deployment, from its environment: `KEYROT_PROOF_KEY`
 * (base64) when set, else derived with HKDF-SHA256 from the newest master key
 * of `KEYROT_MASTER_KEYS` (`id:base64key,...`, the keys that seal signing
 * secrets) under its own label, else `null` (shared proofs off). Adding a newer
 * master key changes a derived proof key: proofs made under the old one then
 * read as stale and the fleet re-proves each token with Argon2 once, without
 * failing a request. Set `KEYROT_PROOF_KEY` to keep proofs across master key
 * rotations.
 *
 * @example
 * const keyring = createKeyring({ store, proofKey: proofKeyFromEnv(process.env) })
 */
export function proofKeyFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): Buffer | null {
  const explicit = resolveProofKey(undefined, env)
  if (explicit) return explicit
  const masterKeys = env.KEYROT_MASTER_KEYS
  if (masterKeys === undefined || masterKeys.trim() === '') return null
  const newest = masterKeys.split(',')[0] as string
  const colon = newest.indexOf(':')
  const material = decodeProofKey(newest.slice(colon + 1).trim(), 'KEYROT_MASTER_KEYS (newest key)')
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), DERIVATION_LABEL, 32))
}
