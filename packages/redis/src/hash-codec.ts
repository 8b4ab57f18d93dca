/**
 * A token hash as Redis stores it in record format 2: two fields instead of
 * one ~97-character PHC string.
 *
 * - `hv`, the parameter version: a known parameter set's number (one
 *   character, {@link PARAMETER_SETS}); else the PHC head itself (the text
 *   before the salt, e.g. `$argon2id$v=19$m=4096,t=3,p=2$`); `0` for a hash
 *   kept whole as text.
 * - `h`: the 16-byte salt and the digest, concatenated, in base64
 *   (64 characters for a 32-byte digest); with `hv` = `0`, the whole hash.
 *
 * Text (not raw bytes) so that every Redis client, `redis-cli` and
 * ioredis-mock read it unchanged; 64 characters so that the record stays in
 * Redis's compact listpack encoding (`hash-max-listpack-value`, default 64).
 * Core still sees the PHC string: {@link decodeHash} rebuilds it, and
 * {@link encodeHash} keeps a hash whole unless it rebuilds exactly.
 */

interface ParameterSet {
  version: string
  /** Everything before the salt, exactly as the hasher writes it. */
  head: string
  /** The PHC alphabet of the salt and digest (both unpadded). */
  alphabet: 'base64' | 'base64url'
}

/**
 * Known parameter sets. Add a row (with a new version, never reusing one)
 * when a hasher's default parameters change.
 */
const PARAMETER_SETS: readonly ParameterSet[] = [
  // Argon2Hasher's OWASP defaults, PHC parameter order.
  { version: '1', head: '$argon2id$v=19$m=19456,t=2,p=1$', alphabet: 'base64' },
  // The same in the `argon2` package's own order (hashes stored before keyrot reordered them).
  { version: '2', head: '$argon2id$v=19$m=19456,p=1,t=2$', alphabet: 'base64' },
  // FastTestHasher (tests and benchmarks).
  { version: '3', head: '$keyrot-test-sha256$', alphabet: 'base64url' },
]

const WHOLE = '0'
const SALT_BYTES = 16

/** The stored form of a hash. */
export interface StoredHash {
  /** Field `hv`. */
  version: string
  /** Field `h`. */
  value: string
}

function unpadded(bytes: Buffer, alphabet: 'base64' | 'base64url'): string {
  return bytes.toString(alphabet).replace(/=+$/, '')
}

/** The head (up to the salt) and alphabet of a PHC-like `$...$salt$digest` string. */
function split(hash: string): { head: string; salt: string; digest: string } | null {
  const digestAt = hash.lastIndexOf('$')
  const saltAt = hash.lastIndexOf('$', digestAt - 1)
  if (saltAt <= 0) return null
  return { head: hash.slice(0, saltAt + 1), salt: hash.slice(saltAt + 1, digestAt), digest: hash.slice(digestAt + 1) }
}

function compact(hash: string): StoredHash | null {
  const parts = split(hash)
  if (parts === null) return null
  const set = PARAMETER_SETS.find((candidate) => candidate.head === parts.head)
  // Any other Argon2 parameters: the head is the version (PHC's standard base64).
  if (!set && !/^\$argon2(id|i|d)\$v=\d+\$m=\d+,[tp]=\d+,[tp]=\d+\$$/.test(parts.head)) return null
  const alphabet = set?.alphabet ?? 'base64'
  const salt = Buffer.from(parts.salt, alphabet)
  const digest = Buffer.from(parts.digest, alphabet)
  if (salt.length !== SALT_BYTES || digest.length === 0) return null
  return { version: set?.version ?? parts.head, value: Buffer.concat([salt, digest]).toString('base64') }
}

/** How a PHC hash is stored: compact when {@link decodeHash} gives back exactly `hash`, whole otherwise. */
export function encodeHash(hash: string): StoredHash {
  const stored = compact(hash)
  if (stored !== null && decodeHash(stored.version, stored.value) === hash) return stored
  return { version: WHOLE, value: hash }
}

/** The PHC string stored as `version` and `value`, or `null` when they are not a hash this codec wrote. */
export function decodeHash(version: string, value: string): string | null {
  if (version === WHOLE) return value
  const set = PARAMETER_SETS.find((candidate) => candidate.version === version)
  if (!set && !version.startsWith('$argon2')) return null
  const bytes = Buffer.from(value, 'base64')
  if (bytes.length <= SALT_BYTES || bytes.toString('base64') !== value) return null
  const alphabet = set?.alphabet ?? 'base64'
  return `${set?.head ?? version}${unpadded(bytes.subarray(0, SALT_BYTES), alphabet)}$${unpadded(bytes.subarray(SALT_BYTES), alphabet)}`
}
