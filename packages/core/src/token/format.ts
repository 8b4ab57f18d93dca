import { randomBytes } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { MalformedTokenError } from '../errors.js'
import { base62Width, encodeBase62 } from './base62.js'

/**
 * Token layout: `<prefix>_<keyId>_<secret><checksum>`
 *
 * - `prefix`: lowercase letters and digits in `_`-separated words, at most 32
 *   characters (default `sk_live`), so scanners and humans can tell a keyrot
 *   key from other secrets.
 * - `keyId`: 16 base62 characters, public (logs, metrics, O(1) lookup). Its
 *   first 10 characters are the key *family*: a key and every key rotated from
 *   it share them, which lets a store keep a rotation's keys together (one
 *   Redis Cluster hash slot).
 * - `secret`: 43 base62 characters encoding 32 random bytes (256 bits) from
 *   `crypto.randomBytes`.
 * - `checksum`: 6 base62 characters, the CRC32 of everything before it, so a
 *   mistyped or random string is rejected before any store lookup or hashing
 *   (as GitHub does for its tokens).
 */
export const KEY_ID_LENGTH = 16
export const FAMILY_ID_LENGTH = 10
export const SECRET_BYTES = 32
export const SECRET_LENGTH = base62Width(SECRET_BYTES) // 43
export const CHECKSUM_LENGTH = 6
export const MAX_PREFIX_LENGTH = 32
/** No token is longer than this; longer input is rejected before any work. */
export const MAX_TOKEN_LENGTH = MAX_PREFIX_LENGTH + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
export const DEFAULT_PREFIX = 'sk_live'

const PREFIX_PATTERN = /^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$/
const BASE62_PATTERN = /^[0-9A-Za-z]+$/

/**
 * Finds keyrot tokens in text (for secret scanners, log scrubbers, pre-commit
 * hooks). Matches any prefix; use {@link tokenPatternFor} for one prefix.
 */
export const TOKEN_PATTERN =
  /\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*_[0-9A-Za-z]{16}_[0-9A-Za-z]{49}\b/g

/** A regex that finds tokens with one given prefix, e.g. `sk_live`. */
export function tokenPatternFor(prefix: string): RegExp {
  assertValidPrefix(prefix)
  return new RegExp(`\\b${prefix}_[0-9A-Za-z]{${KEY_ID_LENGTH}}_[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}\\b`, 'g')
}

export interface ParsedToken {
  prefix: string
  keyId: string
  familyId: string
}

export function assertValidPrefix(prefix: unknown, name = 'prefix'): asserts prefix is string {
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > MAX_PREFIX_LENGTH || !PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(
      `${name} must be 1-${MAX_PREFIX_LENGTH} lowercase letters and digits in '_'-separated words starting with a letter (e.g. 'sk_live'); got ${JSON.stringify(prefix)}`,
    )
  }
}

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** CRC32 of `body` as 6 base62 digits. Plain number arithmetic: a CRC32 fits a double exactly. */
function checksumOf(body: string): string {
  let n = crc32(body)
  let out = ''
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

/** The whole layout in one pass: the fast path of parseToken for well-formed input. */
const TOKEN_SHAPE = new RegExp(
  `^([a-z][a-z0-9]*(?:_[a-z0-9]+)*)_([0-9A-Za-z]{${KEY_ID_LENGTH}})_[0-9A-Za-z]{${SECRET_LENGTH + CHECKSUM_LENGTH}}$`,
)

function randomBase62(length: number): string {
  // Rejection sampling keeps every character uniform.
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

/** A new random family id (10 base62 chars, ~59 bits). */
export function newFamilyId(): string {
  return randomBase62(FAMILY_ID_LENGTH)
}

/** A new key id in the given family (or a new family). */
export function newKeyId(familyId: string = newFamilyId()): string {
  return familyId + randomBase62(KEY_ID_LENGTH - FAMILY_ID_LENGTH)
}

export function familyOf(keyId: string): string {
  return keyId.slice(0, FAMILY_ID_LENGTH)
}

export function isKeyId(value: unknown): value is string {
  if (typeof value !== 'string' || value.length !== KEY_ID_LENGTH) return false
  // Scanned with the class table rather than BASE62_PATTERN: stores check every use's key id.
  for (let i = 0; i < KEY_ID_LENGTH; i++) if (!hasClass(value.charCodeAt(i), BASE62)) return false
  return true
}

/** Builds a token for `keyId` with 256 fresh random bits. */
export function generateToken(prefix: string, keyId: string): string {
  const secret = encodeBase62(randomBytes(SECRET_BYTES), SECRET_LENGTH)
  const body = `${prefix}_${keyId}_${secret}`
  return body + checksumOf(body)
}

/**
 * Parses a token strictly: bounded length, exact charset and layout, and a
 * matching checksum. Throws {@link MalformedTokenError} (whose message never
 * contains the input) otherwise. Costs no I/O and no hashing.
 */
/**
 * The prefix and key id of a well-formed token, its checksum not checked;
 * `null` when the layout is wrong (`parseToken` then says why). For the
 * verify path, which checks the checksum only for tokens it has not proven
 * before: a proven token had a valid one.
 */
export function tokenLayout(token: unknown): { prefix: string; keyId: string } | null {
  // TOKEN_SHAPE's rules, scanned by hand with a class table: the regular expression costs a
  // fifth of a cache hit, and range comparisons per character twice the table's cost.
  if (typeof token !== 'string') return null
  // The prefix is 1 to MAX_PREFIX_LENGTH characters exactly when the length allows a key id offset.
  const keyIdAt = keyIdOffset(token)
  if (keyIdAt === -1) return null
  const secretAt = keyIdAt + KEY_ID_LENGTH + 1
  const prefixLength = keyIdAt - 1
  if (token.charCodeAt(secretAt - 1) !== UNDERSCORE || token.charCodeAt(keyIdAt - 1) !== UNDERSCORE) return null
  for (let i = keyIdAt; i < keyIdAt + KEY_ID_LENGTH; i++) if (!hasClass(token.charCodeAt(i), BASE62)) return null
  for (let i = secretAt; i < token.length; i++) if (!hasClass(token.charCodeAt(i), BASE62)) return null
  // Prefix: [a-z][a-z0-9]*(_[a-z0-9]+)*
  if (!hasClass(token.charCodeAt(0), LOWER)) return null
  for (let i = 1; i < prefixLength; i++) {
    const c = token.charCodeAt(i)
    if (c === UNDERSCORE) {
      if (i === prefixLength - 1 || token.charCodeAt(i + 1) === UNDERSCORE) return null
    } else if (!hasClass(c, LOWER_OR_DIGIT)) return null
  }
  return { prefix: token.slice(0, prefixLength), keyId: ownString(token.slice(keyIdAt, keyIdAt + KEY_ID_LENGTH)) }
}

/**
 * Where a token's key id starts if the token is well-formed (its place is
 * fixed from the end), or -1 when its length rules that out. Nothing else is
 * checked: for the verify path's cache hit, where a token whose digest matches
 * a proven one is that very token, so its layout and checksum hold.
 */
export function keyIdOffset(token: string): number {
  const at = token.length - (KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH)
  return at >= 2 && token.length <= MAX_TOKEN_LENGTH ? at : -1
}

const UNDERSCORE = 95
const BASE62 = 1
const LOWER = 2
const LOWER_OR_DIGIT = 4

/** The character classes of the ASCII range, one bit each. */
const CLASSES = (() => {
  const table = new Uint8Array(128)
  for (let c = 48; c <= 57; c++) table[c] = BASE62 | LOWER_OR_DIGIT
  for (let c = 65; c <= 90; c++) table[c] = BASE62
  for (let c = 97; c <= 122; c++) table[c] = BASE62 | LOWER | LOWER_OR_DIGIT
  return table
})()

function hasClass(c: number, bit: number): boolean {
  return c < 128 && ((CLASSES[c] as number) & bit) !== 0
}

/** Whether the last 6 characters of a token of {@link tokenLayout} are the CRC32 of the rest. */
export function hasValidChecksum(token: string): boolean {
  const split = token.length - CHECKSUM_LENGTH
  return checksumOf(token.slice(0, split)) === token.slice(split)
}

export function parseToken(token: unknown): ParsedToken {
  if (typeof token !== 'string') throw new MalformedTokenError('not a string')
  if (token.length > MAX_TOKEN_LENGTH) throw new MalformedTokenError('too long')
  const shape = TOKEN_SHAPE.exec(token)
  if (shape !== null && (shape[1] as string).length <= MAX_PREFIX_LENGTH) {
    const split = token.length - CHECKSUM_LENGTH
    if (checksumOf(token.slice(0, split)) !== token.slice(split)) throw new MalformedTokenError('checksum mismatch')
    const keyId = ownString(shape[2] as string)
    return { prefix: ownString(shape[1] as string), keyId, familyId: familyOf(keyId) }
  }
  // Not well-formed: find which rule it breaks, for the error's reason.
  const last = token.lastIndexOf('_')
  const middle = last > 0 ? token.lastIndexOf('_', last - 1) : -1
  if (middle <= 0) throw new MalformedTokenError('missing separators')
  const prefix = token.slice(0, middle)
  const keyId = token.slice(middle + 1, last)
  const tail = token.slice(last + 1)
  if (prefix.length > MAX_PREFIX_LENGTH || !PREFIX_PATTERN.test(prefix)) throw new MalformedTokenError('bad prefix')
  if (keyId.length !== KEY_ID_LENGTH || !BASE62_PATTERN.test(keyId)) throw new MalformedTokenError('bad key id')
  if (tail.length !== SECRET_LENGTH + CHECKSUM_LENGTH || !BASE62_PATTERN.test(tail)) throw new MalformedTokenError('bad secret')
  const body = token.slice(0, token.length - CHECKSUM_LENGTH)
  if (checksumOf(body) !== token.slice(token.length - CHECKSUM_LENGTH)) throw new MalformedTokenError('checksum mismatch')
  const id = ownString(keyId)
  return { prefix: ownString(prefix), keyId: id, familyId: familyOf(id) }
}

/**
 * `value` as a string of its own. V8 keeps a substring of 13 or more
 * characters as a view on the string it was cut from, so a key id cut from a
 * token would keep the token, secret included, in memory for as long as the
 * id lives: as a rate limiter's map key, or in an event a listener keeps. The
 * parsers return key ids (and `parseToken` its prefix, which may be that
 * long) made by this; the cache hit uses the id the cache holds instead, at
 * no cost.
 */
export function ownString(value: string): string {
  const codes = new Array<number>(value.length)
  for (let i = 0; i < value.length; i++) codes[i] = value.charCodeAt(i)
  return String.fromCharCode(...codes)
}
