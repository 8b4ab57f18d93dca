import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { VerificationCache } from '../cache/verification-cache.js'
import { InvalidInputError, InvalidSecretError, KeyNotFoundError, MalformedTokenError, RateLimitedError, StoreUnavailableError, type KeyrotError } from '../errors.js'
import type { RequestContext } from '../events.js'
import type { Hasher } from '../hash/hasher.js'
import { isPromise, type AttemptGuard, type Gate } from '../rate-limit/guard.js'
import type { KeyStore } from '../store/store.js'
import { CHECKSUM_LENGTH, KEY_ID_LENGTH, newKeyId, parseToken, SECRET_LENGTH } from '../token/format.js'
import { toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { checkKeyDraft } from './key-draft.js'
import type { CreateKeyInput, VerifyOptions, VerifyResult } from './keyring-types.js'
import { newRecord } from './succession.js'

/**
 * Keys brought in from another system (`keyring.import()`): tokens in their
 * existing format, which carry no keyrot key id. Such a token is found
 * through a keyed index, `HMAC-SHA256(importKey, SHA-256(token))`: computable
 * from the token at verify time and from a legacy unsalted SHA-256 at import
 * time, and useless to whoever reads the store without the import key (unlike
 * the unsalted hash itself). A key imported from its SHA-256 alone keeps that
 * hash (as `$legacy-sha256$<hex>`) until its first successful verify, which
 * replaces it with the keyring's Argon2id hash.
 */

/** The `hash` of a key imported from an unsalted SHA-256, until its first verify upgrades it. */
export const LEGACY_SHA256_PREFIX = '$legacy-sha256$'

/** Longest imported token accepted (a legacy format may be longer than ours). */
export const MAX_IMPORTED_TOKEN_LENGTH = 512

const SHA256_HEX = /^[0-9a-fA-F]{64}$/
/** The layout of a keyrot token (`parseToken` checks it strictly, checksum included). */
const KEYROT_SHAPE = new RegExp(`^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_[0-9A-Za-z]{${KEY_ID_LENGTH}}_[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}$`)
// Printable ASCII without spaces: what fits an Authorization header or an X-API-Key value.
const TOKEN_CHARS = /^[\x21-\x7e]+$/
/** The HKDF label of an import key derived from the proof key: distinct from every other use of that key. */
const DERIVATION_LABEL = 'keyrot import index key v1'

export function isLegacyHash(hash: string): boolean {
  return hash.startsWith(LEGACY_SHA256_PREFIX)
}

/**
 * Checks `token` against a stored hash: a legacy SHA-256 in constant time,
 * anything else with the keyring's hasher (Argon2id).
 */
export function checkHash(hasher: Hasher, hash: string, token: string): Promise<boolean> {
  if (!isLegacyHash(hash)) return hasher.verify(hash, token)
  const expected = Buffer.from(hash.slice(LEGACY_SHA256_PREFIX.length), 'hex')
  const actual = createHash('sha256').update(token).digest()
  return Promise.resolve(expected.length === actual.length && timingSafeEqual(expected, actual))
}

/** The keyed index of a token, from its SHA-256 (32 bytes). */
export function importIndexOf(importKey: Buffer, sha256: Buffer): string {
  return createHmac('sha256', importKey).update(sha256).digest('base64url')
}

export interface ImportOptions {
  /** Server-side key of the index; `null` when imports are off. */
  key: Buffer | null
  /** Token prefixes that route a token which is not in keyrot format to the index, longest first. */
  prefixes: readonly string[]
}

/**
 * Resolves the `importKey` and `importedPrefixes` options once. Without an
 * `importKey`, the key is derived from the proof key with HKDF-SHA256 under
 * its own label (so every replica sharing the proof key finds imported
 * tokens); without either, imports are off.
 */
export function resolveImportOptions(importKey: unknown, prefixes: unknown, proofKey: Buffer | null): ImportOptions {
  let key: Buffer | null = null
  if (importKey !== undefined && importKey !== null) {
    if (typeof importKey === 'string') key = Buffer.from(importKey, 'base64')
    else if (Buffer.isBuffer(importKey) || importKey instanceof Uint8Array) key = Buffer.from(importKey)
    else throw new TypeError('importKey must be a Buffer or a base64 string of at least 32 random bytes')
    if (key.length < 32) throw new TypeError(`importKey must be at least 32 random bytes; got ${key.length}`)
  } else if (proofKey !== null) {
    key = Buffer.from(hkdfSync('sha256', proofKey, Buffer.alloc(0), DERIVATION_LABEL, 32))
  }
  if (prefixes === undefined) return { key, prefixes: [] }
  if (!Array.isArray(prefixes)) throw new TypeError("importedPrefixes must be an array of token prefixes, e.g. ['old_']")
  for (const prefix of prefixes) {
    if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 32 || !TOKEN_CHARS.test(prefix)) {
      throw new TypeError(`importedPrefixes must hold 1-32 printable characters each; got ${JSON.stringify(prefix)}`)
    }
  }
  if (prefixes.length > 0 && key === null) {
    throw new TypeError('importedPrefixes needs an import key: set importKey, or proofKey (KEYROT_PROOF_KEY) to derive it from')
  }
  return { key, prefixes: [...new Set(prefixes as string[])].sort((a, b) => b.length - a.length) }
}

/** The prefix of `prefixes` that `token` starts with (the longest), or `undefined`. */
function prefixOf(prefixes: readonly string[], token: string): string | undefined {
  for (const prefix of prefixes) if (token.startsWith(prefix)) return prefix
  return undefined
}

// ---------------------------------------------------------------- verify

/** What the verifier lends the imported-token path: its cache, guard and private steps. */
export interface VerifyPort {
  readonly cache: VerificationCache | null
  readonly guard: AttemptGuard | null
  admit(guard: AttemptGuard, input: Parameters<AttemptGuard['admit']>[0], context: RequestContext, now: number): Gate | Promise<Gate>
  refuse(error: RateLimitedError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult
  fail(error: KeyrotError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult
  /** The verify path after the key id is known: state, proof, status, IPs, scopes, quota. */
  verifyKeyId(token: string, keyId: string, prefix: string, digest: string, options: VerifyOptions, now: number): Promise<VerifyResult>
}

/**
 * The verify path of tokens in an imported key's format. Reached only when a
 * token does not parse as a keyrot token and starts with one of
 * `importedPrefixes`: a keyrot token costs nothing here.
 */
export class ImportedTokens {
  readonly #key: Buffer
  readonly #prefixes: readonly string[]
  readonly #store: KeyStore
  readonly #port: VerifyPort
  /** Index lookups by token digest: a token maps to one key id until the key is gone. */
  readonly #found: LRUCache<string, string>

  constructor(options: ImportOptions & { store: KeyStore; port: VerifyPort; maxEntries: number }) {
    this.#key = options.key as Buffer
    this.#prefixes = options.prefixes
    this.#store = options.store
    this.#port = options.port
    this.#found = new LRUCache({ max: Math.max(1, options.maxEntries) })
  }

  /**
   * Whether `token` is for this path: within bounds, with an imported prefix,
   * and not shaped as a keyrot token (which verifies by its key id, even when
   * its prefix also starts an imported one). Checked before the keyrot parse,
   * so an imported token costs no thrown parse error.
   */
  claims(token: unknown): token is string {
    return typeof token === 'string' && token.length <= MAX_IMPORTED_TOKEN_LENGTH && prefixOf(this.#prefixes, token) !== undefined && !KEYROT_SHAPE.test(token)
  }

  async verify(token: string, options: VerifyOptions, now: number): Promise<VerifyResult> {
    const { cache, guard } = this.#port
    const prefix = prefixOf(this.#prefixes, token) as string
    const digest = cache ? cache.digest(token) : guard ? guard.digest(token) : ''
    // A token found before needs no index read (the cache then tells whether it was proven).
    // (Without a cache or a guard there is no digest: every token is looked up.)
    let keyId = digest === '' ? undefined : this.#found.get(digest)
    if (keyId === undefined) {
      const found = await this.#lookup(token, digest, options, now)
      if (typeof found !== 'string') return found
      keyId = found
    }
    if (!guard) return this.#port.verifyKeyId(token, keyId, prefix, digest, options, now)
    // From here as for a keyrot token: the abuse checks with the key id, the verify, the verdict.
    let gate = this.#port.admit(guard, { ip: options.clientIp, keyId, digest, proven: cache?.proven(keyId, digest) === true }, options, now)
    if (isPromise(gate)) gate = await gate
    if (!gate.ok) return this.#port.refuse(gate.error, keyId, undefined, options, now)
    if (gate.known) {
      const error = gate.known.code === 'KEYROT_KEY_NOT_FOUND' ? new KeyNotFoundError(keyId) : new InvalidSecretError(keyId)
      return this.#port.fail(error, keyId, gate.known.tenantId, options, now)
    }
    const ticket = gate.ticket
    if (!ticket) return this.#port.verifyKeyId(token, keyId, prefix, digest, options, now)
    let guessed = false
    try {
      const result = await this.#port.verifyKeyId(token, keyId, prefix, digest, options, now)
      guessed = !result.ok && (result.error.code === 'KEYROT_KEY_NOT_FOUND' || result.error.code === 'KEYROT_INVALID_SECRET')
      return result
    } finally {
      const settled = guard.settle(ticket, guessed)
      if (isPromise(settled)) await settled
    }
  }

  /**
   * Finds the key id of an unproven token through the index: a store read,
   * so the client's abuse checks (IP block, failures per IP, the negative
   * cache) come first, as before a keyrot token's key read. A token no key
   * has counts as a failed attempt.
   */
  async #lookup(token: string, digest: string, options: VerifyOptions, now: number): Promise<string | VerifyResult> {
    const { guard } = this.#port
    const unknown = new MalformedTokenError('no imported key has this token')
    let ticket = null
    if (guard) {
      let gate = this.#port.admit(guard, { ip: options.clientIp, keyId: undefined, digest, proven: false }, options, now)
      if (isPromise(gate)) gate = await gate
      if (!gate.ok) return this.#port.refuse(gate.error, undefined, undefined, options, now)
      if (gate.known) return this.#port.fail(unknown, undefined, gate.known.tenantId, options, now)
      ticket = gate.ticket
    }
    let keyId: string | null = null
    try {
      keyId = await this.#findImported(importIndexOf(this.#key, createHash('sha256').update(token).digest()))
    } catch (error) {
      if (ticket) await guard?.settle(ticket, false)
      const failure = error instanceof StoreUnavailableError ? error : new StoreUnavailableError(undefined, { cause: error })
      this.#port.fail(failure, undefined, undefined, options, now)
      throw failure
    }
    if (ticket) await guard?.settle(ticket, keyId === null)
    if (keyId === null) {
      guard?.rememberFailure(digest, { code: 'KEYROT_KEY_NOT_FOUND', tenantId: undefined })
      return this.#port.fail(unknown, undefined, undefined, options, now)
    }
    if (digest !== '') this.#found.set(digest, keyId)
    return keyId
  }

  #findImported(index: string): Promise<string | null> {
    const find = this.#store.findImported
    return find ? find.call(this.#store, index) : Promise.resolve(null)
  }
}

// ---------------------------------------------------------------- import

/** `keyring.import()`'s input: a key's settings and either its plaintext `token` or its `legacy` SHA-256. */
export type ImportKeyInput = Omit<CreateKeyInput, 'prefix'> & {
  /** The key's plaintext token, in its existing format (it must start with one of the keyring's `importedPrefixes`). */
  token?: string
  /** A key stored only as an unsalted SHA-256 of its token. */
  legacy?: {
    /** Hex SHA-256 of the token (64 characters). */
    sha256: string
    /** The token's prefix, one of the keyring's `importedPrefixes` (e.g. `'old_'`). */
    tokenPrefix: string
  }
}

export interface ImportedKeyResult {
  key: ApiKey
  /** `false` when the token was imported before: the existing key is returned and nothing is written. */
  created: boolean
}

/**
 * Imports one key (see `Keyring.import`). Idempotent: the index identifies
 * the token, so importing it again returns the key already holding it. The
 * index is claimed before the record is written and released if the write
 * fails, so two concurrent imports of one token make one key.
 */
export async function importKey(
  context: { store: KeyStore; hasher: Hasher; imports: ImportOptions; now: number },
  input: ImportKeyInput,
): Promise<ImportedKeyResult> {
  const { store, hasher, imports, now } = context
  if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
  if (imports.key === null) throw new TypeError('importing keys needs an import key: createKeyring({ importKey }) or a proofKey (KEYROT_PROOF_KEY)')
  if (!store.findImported || !store.putImportIndex) throw new TypeError('this store cannot hold imported keys (no findImported/putImportIndex)')
  // As at create: the same rules, and a key imported with credits spends them.
  const { draft, credits } = checkKeyDraft(input, store, now)
  const { prefix, sha256, token } = importedSecret(input, imports.prefixes)
  const index = importIndexOf(imports.key, sha256)
  const existing = await existingKey(store, index, now)
  if (existing) return { key: existing, created: false }
  const id = newKeyId()
  const hash = token === undefined ? LEGACY_SHA256_PREFIX + sha256.toString('hex') : await hasher.hash(token)
  const record: KeyRecord = { ...newRecord({ ...draft, prefix }, id, null, now, hash), importIndex: index }
  const holder = await store.putImportIndex(index, id, draft.expiresAt)
  if (holder !== id) {
    const raced = await existingKey(store, index, now)
    if (raced) return { key: raced, created: false }
    throw new InvalidInputError('token', 'another import of this token is in progress; retry')
  }
  try {
    await store.insert(record)
  } catch (error) {
    await store.dropImportIndex?.(index, id).catch(() => undefined)
    throw error
  }
  // The family's balance, before the key is reported imported (a verify may come at once).
  if (credits) await store.adjustCredits?.({ familyId: record.familyId, change: { set: credits.remaining }, refill: credits.config.refill, now })
  return { key: toApiKey(record, now), created: true }
}

/** The key already holding `index`; an index whose record is gone (retention) is taken over. */
async function existingKey(store: KeyStore, index: string, now: number): Promise<ApiKey | null> {
  const keyId = await (store.findImported as NonNullable<KeyStore['findImported']>).call(store, index)
  if (keyId === null) return null
  const record = await store.get(keyId)
  if (record === null) {
    await store.dropImportIndex?.(index, keyId)
    return null
  }
  return toApiKey(record, now)
}

function importedSecret(input: ImportKeyInput, prefixes: readonly string[]): { prefix: string; sha256: Buffer; token: string | undefined } {
  const listed = prefixes.length === 0 ? 'none are set' : prefixes.map((p) => JSON.stringify(p)).join(', ')
  if ((input.token === undefined) === (input.legacy === undefined)) throw new InvalidInputError('token', 'give exactly one of token and legacy')
  if (input.token !== undefined) {
    const token = input.token
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_IMPORTED_TOKEN_LENGTH || !TOKEN_CHARS.test(token)) {
      throw new InvalidInputError('token', `must be 1-${MAX_IMPORTED_TOKEN_LENGTH} printable characters without spaces`)
    }
    if (isKeyrotToken(token)) throw new InvalidInputError('token', 'is a keyrot token already: it verifies by its own key id, not through an import')
    const prefix = prefixOf(prefixes, token)
    if (prefix === undefined) throw new InvalidInputError('token', `must start with one of the keyring's importedPrefixes (${listed})`)
    return { prefix, sha256: createHash('sha256').update(token).digest(), token }
  }
  const legacy = input.legacy
  if (legacy === null || typeof legacy !== 'object') throw new InvalidInputError('legacy', 'must be { sha256, tokenPrefix }')
  if (typeof legacy.sha256 !== 'string' || !SHA256_HEX.test(legacy.sha256)) throw new InvalidInputError('legacy.sha256', 'must be 64 hex characters')
  if (typeof legacy.tokenPrefix !== 'string' || !prefixes.includes(legacy.tokenPrefix)) {
    throw new InvalidInputError('legacy.tokenPrefix', `must be one of the keyring's importedPrefixes (${listed})`)
  }
  return { prefix: legacy.tokenPrefix, sha256: Buffer.from(legacy.sha256, 'hex'), token: undefined }
}

function isKeyrotToken(token: string): boolean {
  try {
    parseToken(token)
    return true
  } catch {
    return false
  }
}
