/**
 * A token hash as Redis stores it (record format 2, field `h`): raw bytes
 * after one scheme byte, instead of a ~97-character PHC string. The PHC
 * parameters (`$argon2id$v=19$m=19456,t=2,p=1$`) are the same for nearly
 * every key, so a known parameter set is one byte; the salt and digest are
 * stored decoded. Any hash the codec cannot reproduce byte for byte stays
 * text (scheme 0), so a custom `Hasher` keeps working.
 *
 * Kept small on purpose: a value of at most 64 bytes keeps the record in
 * Redis's compact listpack encoding (`hash-max-listpack-value`, default 64).
 * Core still sees the PHC string: {@link decodeHash} rebuilds it exactly.
 *
 * Layouts (byte 0 is the scheme):
 * - `0`: the hash as UTF-8 text.
 * - a parameter set of {@link PARAMETER_SETS}: `[scheme][salt length][salt][digest]`.
 * - `2`, any other Argon2: `[2][variant + 16 * order][version][m u32][t u32][p u32][salt length][salt][digest]`
 *   (variant 0 argon2d, 1 argon2i, 2 argon2id; order 0 `m,t,p`, 1 `m,p,t`): 64 bytes with a 16-byte salt.
 */

interface ParameterSet {
  scheme: number
  /** Everything before the salt, exactly as the hasher writes it. */
  head: string
  /** The alphabet of the salt and digest (both unpadded). */
  alphabet: 'base64' | 'base64url'
}

/**
 * Known parameter sets, one byte each. Add a row (with a new scheme number,
 * never reusing one) when a hasher's default parameters change.
 */
const PARAMETER_SETS: readonly ParameterSet[] = [
  // Argon2Hasher's OWASP defaults, PHC parameter order.
  { scheme: 1, head: '$argon2id$v=19$m=19456,t=2,p=1$', alphabet: 'base64' },
  // FastTestHasher (tests and benchmarks).
  { scheme: 3, head: '$keyrot-test-sha256$', alphabet: 'base64url' },
  // The same OWASP defaults in the `argon2` package's own order (hashes stored before keyrot reordered them).
  { scheme: 4, head: '$argon2id$v=19$m=19456,p=1,t=2$', alphabet: 'base64' },
]

const TEXT = 0
const ARGON2 = 2
const VARIANTS = ['argon2d', 'argon2i', 'argon2id'] as const
const ARGON2_PHC = /^\$(argon2d|argon2i|argon2id)\$v=(\d+)\$(?:m=(\d+),t=(\d+),p=(\d+)|m=(\d+),p=(\d+),t=(\d+))\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/

function unpadded(bytes: Buffer, alphabet: 'base64' | 'base64url'): string {
  return bytes.toString(alphabet).replace(/=+$/, '')
}

function text(hash: string): Buffer {
  return Buffer.concat([Buffer.of(TEXT), Buffer.from(hash, 'utf8')])
}

function saltAndDigest(body: string, alphabet: 'base64' | 'base64url'): Buffer | null {
  const cut = body.indexOf('$')
  if (cut <= 0 || body.indexOf('$', cut + 1) !== -1) return null
  const salt = Buffer.from(body.slice(0, cut), alphabet)
  const digest = Buffer.from(body.slice(cut + 1), alphabet)
  if (salt.length === 0 || salt.length > 255 || digest.length === 0) return null
  return Buffer.concat([Buffer.of(salt.length), salt, digest])
}

function encodeArgon2(hash: string): Buffer | null {
  const match = ARGON2_PHC.exec(hash)
  if (!match) return null
  const [, variant, version, m1, t1, p1, m2, p2, t2, salt, digest] = match
  const order = m1 === undefined ? 1 : 0
  const numbers = [Number(version), Number(m1 ?? m2), Number(t1 ?? t2), Number(p1 ?? p2)]
  if (numbers.some((n) => !Number.isSafeInteger(n) || n > 0xffffffff) || (numbers[0] as number) > 255) return null
  const head = Buffer.alloc(15)
  head[0] = ARGON2
  head[1] = VARIANTS.indexOf(variant as (typeof VARIANTS)[number]) + 16 * order
  head[2] = numbers[0] as number
  head.writeUInt32BE(numbers[1] as number, 3)
  head.writeUInt32BE(numbers[2] as number, 7)
  head.writeUInt32BE(numbers[3] as number, 11)
  const rest = saltAndDigest(`${salt}$${digest}`, 'base64')
  return rest && Buffer.concat([head, rest])
}

function encodeCompact(hash: string): Buffer | null {
  for (const set of PARAMETER_SETS) {
    if (!hash.startsWith(set.head)) continue
    const rest = saltAndDigest(hash.slice(set.head.length), set.alphabet)
    return rest && Buffer.concat([Buffer.of(set.scheme), rest])
  }
  return encodeArgon2(hash)
}

/** The stored bytes of a PHC hash: compact when {@link decodeHash} gives back exactly `hash`, text otherwise. */
export function encodeHash(hash: string): Buffer {
  const compact = encodeCompact(hash)
  if (compact !== null && decodeHash(compact) === hash) return compact
  return text(hash)
}

function splitSalt(bytes: Buffer, at: number, alphabet: 'base64' | 'base64url'): string | null {
  const length = bytes[at]
  if (length === undefined || bytes.length <= at + 1 + length) return null
  return `${unpadded(bytes.subarray(at + 1, at + 1 + length), alphabet)}$${unpadded(bytes.subarray(at + 1 + length), alphabet)}`
}

/** The PHC string stored as `bytes`, or `null` when the bytes are not a hash this codec wrote. */
export function decodeHash(bytes: Buffer): string | null {
  const scheme = bytes[0]
  if (scheme === undefined) return null
  if (scheme === TEXT) return bytes.subarray(1).toString('utf8')
  if (scheme === ARGON2) {
    if (bytes.length < 17) return null
    const variant = VARIANTS[(bytes[1] as number) % 16]
    const order = (bytes[1] as number) >> 4
    if (variant === undefined || order > 1) return null
    const m = bytes.readUInt32BE(3)
    const t = bytes.readUInt32BE(7)
    const p = bytes.readUInt32BE(11)
    const parameters = order === 0 ? `m=${m},t=${t},p=${p}` : `m=${m},p=${p},t=${t}`
    const rest = splitSalt(bytes, 15, 'base64')
    return rest && `$${variant}$v=${bytes[2]}$${parameters}$${rest}`
  }
  const set = PARAMETER_SETS.find((candidate) => candidate.scheme === scheme)
  if (!set) return null
  const rest = splitSalt(bytes, 1, set.alphabet)
  return rest && set.head + rest
}
