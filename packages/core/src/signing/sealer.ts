import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto'
import { inspect } from 'node:util'
import { SecretUnreadableError } from './errors.js'

/** A master key: encrypts signing secrets at rest. */
export interface MasterKey {
  /**
   * Names the key inside every sealed secret, so the right key decrypts it.
   * 1-64 characters of letters, digits and `. _ -` (e.g. `'2025-06'`).
   */
  id: string
  /** 32 bytes: raw bytes, or a base64 / base64url string of them. */
  key: Uint8Array | string
}

export interface SigningOptions {
  /**
   * Master keys, newest first: the first encrypts, every one decrypts. To
   * rotate, put a new key first, deploy, run `rewrapSigningSecrets()`, then
   * drop the old key. See {@link masterKeysFromEnv}.
   */
  masterKeys: readonly MasterKey[]
}

const MASTER_KEY_ID = /^[A-Za-z0-9._-]{1,64}$/
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/
const MASTER_KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16
const SEALED_TAG = 'keyrot-sealed'
const SEALED_VERSION = 'v1'

/** Decodes and checks one master key's bytes; the error names `option`, never the value. */
function keyBytes(key: unknown, option: string): Buffer {
  let bytes: Buffer
  if (typeof key === 'string') {
    const trimmed = key.trim()
    if (!BASE64.test(trimmed)) throw new TypeError(`${option} must be 32 bytes, base64-encoded; it is not base64`)
    bytes = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64')
  } else if (key instanceof Uint8Array) {
    bytes = Buffer.from(key)
  } else {
    throw new TypeError(`${option} must be 32 bytes: a Uint8Array or a base64 string`)
  }
  if (bytes.length !== MASTER_KEY_BYTES) {
    throw new TypeError(`${option} must be exactly ${MASTER_KEY_BYTES} bytes; got ${bytes.length} (generate one with: openssl rand -base64 32)`)
  }
  return bytes
}

/**
 * Reads master keys from an environment variable (default
 * `KEYROT_MASTER_KEYS`): comma-separated `id:base64key` pairs, newest first.
 * Throws a `TypeError` naming the variable when it is missing or malformed;
 * no message ever contains key material.
 *
 * @example
 * // KEYROT_MASTER_KEYS="2025-06:3q2+7w...=,2025-01:q83v...="
 * const keyring = createKeyring({ store, signing: { masterKeys: masterKeysFromEnv() } })
 */
export function masterKeysFromEnv(env: Record<string, string | undefined> = process.env, variable = 'KEYROT_MASTER_KEYS'): MasterKey[] {
  const raw = env[variable]
  if (raw === undefined || raw.trim() === '') {
    throw new TypeError(`${variable} is not set: expected "id:base64key[,id:base64key...]" with 32-byte keys, newest first`)
  }
  const keys = raw.split(',').map((entry, index) => {
    const colon = entry.indexOf(':')
    const id = colon === -1 ? '' : entry.slice(0, colon).trim()
    if (colon === -1 || !MASTER_KEY_ID.test(id)) {
      throw new TypeError(`${variable} entry ${index + 1} must look like "id:base64key" with an id of 1-64 letters, digits, '.', '_' or '-'`)
    }
    return { id, key: keyBytes(entry.slice(colon + 1), `${variable} key "${id}"`) }
  })
  return keys
}

/** The parts of a sealed secret string, without decrypting it. */
interface SealedParts {
  masterKeyId: string
  nonce: Buffer
  ciphertext: Buffer
  tag: Buffer
}

function parseSealed(sealed: string): SealedParts | null {
  const parts = sealed.split('$')
  if (parts.length !== 6 || parts[0] !== '' || parts[1] !== SEALED_TAG || parts[2] !== SEALED_VERSION) return null
  const masterKeyId = parts[3] as string
  if (!MASTER_KEY_ID.test(masterKeyId)) return null
  const nonce = Buffer.from(parts[4] as string, 'base64url')
  const body = Buffer.from(parts[5] as string, 'base64url')
  if (nonce.length !== NONCE_BYTES || body.length <= TAG_BYTES) return null
  return { masterKeyId, nonce, ciphertext: body.subarray(0, body.length - TAG_BYTES), tag: body.subarray(body.length - TAG_BYTES) }
}

/** Whether a stored hash field holds a sealed signing secret. */
export function isSealedSecret(hash: string): boolean {
  return typeof hash === 'string' && hash.startsWith(`$${SEALED_TAG}$`)
}

/**
 * Encrypts signing secrets at rest with AES-256-GCM (node:crypto): a fresh
 * 96-bit random nonce per encryption, the key id as associated data (so a
 * sealed secret copied onto another key does not open), the master key id in
 * the clear so the right key decrypts it.
 *
 * Sealed form: `$keyrot-sealed$v1$<masterKeyId>$<nonce b64url>$<ciphertext+tag b64url>`.
 * It starts with `$keyrot-sealed$`, which no hasher accepts, so a sealed
 * record never verifies as an API key.
 *
 * Random 96-bit nonces stay far below GCM's collision bound (2^32
 * encryptions per key) for any realistic number of secrets and re-wraps.
 */
export class SecretSealer {
  readonly #keys: Map<string, KeyObject>
  /** Id of the master key that encrypts. */
  readonly currentKeyId: string
  /** Ids of every configured master key, newest first. */
  readonly keyIds: readonly string[]

  constructor(options: SigningOptions) {
    if (options === null || typeof options !== 'object') throw new TypeError('signing must be an object: { masterKeys: [{ id, key }] }')
    const masterKeys: unknown = options.masterKeys
    if (!Array.isArray(masterKeys) || masterKeys.length === 0) {
      throw new TypeError('signing.masterKeys must be a non-empty array of { id, key } (32-byte keys), newest first')
    }
    this.#keys = new Map()
    masterKeys.forEach((entry: unknown, index) => {
      const option = `signing.masterKeys[${index}]`
      if (entry === null || typeof entry !== 'object') throw new TypeError(`${option} must be { id, key }`)
      const { id, key } = entry as { id?: unknown; key?: unknown }
      if (typeof id !== 'string' || !MASTER_KEY_ID.test(id)) {
        throw new TypeError(`${option}.id must be 1-64 letters, digits, '.', '_' or '-'`)
      }
      if (this.#keys.has(id)) throw new TypeError(`${option}.id "${id}" appears twice`)
      this.#keys.set(id, createSecretKey(keyBytes(key, `${option}.key`)))
    })
    this.keyIds = Object.freeze([...this.#keys.keys()])
    this.currentKeyId = this.keyIds[0] as string
  }

  /** Encrypts `secret` for the key `keyId` under the newest master key. */
  seal(secret: string, keyId: string): string {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.currentKeyId) as KeyObject, nonce, { authTagLength: TAG_BYTES })
    cipher.setAAD(Buffer.from(keyId, 'utf8'))
    const ciphertext = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()])
    return `$${SEALED_TAG}$${SEALED_VERSION}$${this.currentKeyId}$${nonce.toString('base64url')}$${ciphertext.toString('base64url')}`
  }

  /**
   * Decrypts a sealed secret of key `keyId`. Throws
   * {@link SecretUnreadableError} (naming the master key id only) when the
   * master key is not configured or the data or key id do not match.
   */
  open(sealed: string, keyId: string): string {
    const parts = parseSealed(sealed)
    if (!parts) throw new SecretUnreadableError(keyId, 'it is not a sealed secret')
    const key = this.#keys.get(parts.masterKeyId)
    if (!key) throw new SecretUnreadableError(keyId, `master key "${parts.masterKeyId}" is not configured`, parts.masterKeyId)
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, parts.nonce, { authTagLength: TAG_BYTES })
      decipher.setAAD(Buffer.from(keyId, 'utf8'))
      decipher.setAuthTag(parts.tag)
      return Buffer.concat([decipher.update(parts.ciphertext), decipher.final()]).toString('utf8')
    } catch {
      throw new SecretUnreadableError(keyId, `authentication failed under master key "${parts.masterKeyId}"`, parts.masterKeyId)
    }
  }

  /** Id of the master key a sealed secret was encrypted with, or `undefined` if it is not one. */
  masterKeyIdOf(sealed: string): string | undefined {
    return parseSealed(sealed)?.masterKeyId
  }

  /** Never print key material, whatever a caller logs. */
  [inspect.custom](): string {
    return `SecretSealer { currentKeyId: ${JSON.stringify(this.currentKeyId)}, keyIds: ${JSON.stringify(this.keyIds)} }`
  }

  toJSON(): { currentKeyId: string; keyIds: readonly string[] } {
    return { currentKeyId: this.currentKeyId, keyIds: this.keyIds }
  }
}
