import { createHash, timingSafeEqual, randomBytes } from 'node:crypto'
import argon2 from 'argon2'

/**
 * Turns a token into a storable hash and checks a token against one. Plug
 * another implementation (e.g. `@node-rs/argon2`) through this interface.
 */
export interface Hasher {
  /** A self-describing hash (PHC string) with its own salt. */
  hash(token: string): Promise<string>
  /** Whether `token` matches `hash`, compared in constant time. */
  verify(hash: string, token: string): Promise<boolean>
  /** Whether `hash` was made with other parameters than the current ones and should be replaced. */
  needsRehash?(hash: string): boolean
}

export interface Argon2Options {
  /** Memory cost in KiB. Default 19456 (19 MiB, OWASP). */
  memoryCost?: number
  /** Iterations. Default 2 (OWASP). */
  timeCost?: number
  /** Lanes. Default 1 (OWASP). */
  parallelism?: number
}

export const OWASP_ARGON2: Required<Argon2Options> = { memoryCost: 19_456, timeCost: 2, parallelism: 1 }

/** Argon2id with a per-hash random salt (the `argon2` package), OWASP parameters by default. */
export class Argon2Hasher implements Hasher {
  readonly options: Required<Argon2Options>

  constructor(options: Argon2Options = {}) {
    const resolved = { ...OWASP_ARGON2 }
    for (const name of ['memoryCost', 'timeCost', 'parallelism'] as const) {
      const value = options[name]
      if (value === undefined) continue
      if (!Number.isInteger(value) || value < 1) throw new TypeError(`argon2 ${name} must be a positive integer; got ${String(value)}`)
      resolved[name] = value
    }
    if (resolved.memoryCost < 8 * resolved.parallelism) throw new TypeError('argon2 memoryCost must be at least 8 KiB per lane')
    this.options = resolved
  }

  async hash(token: string): Promise<string> {
    return toPhcOrder(await argon2.hash(token, { type: argon2.argon2id, ...this.options }))
  }

  async verify(hash: string, token: string): Promise<boolean> {
    try {
      return await argon2.verify(hash, token)
    } catch {
      // A hash that is not a PHC string argon2 understands matches nothing.
      return false
    }
  }

  needsRehash(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, this.options)
    } catch {
      return false
    }
  }
}

/**
 * The `argon2` package writes parameters as `m=,p=,t=`; the PHC string format
 * requires `m=,t=,p=` and strict decoders (libargon2, most other languages)
 * refuse any other order. Reordering keeps stored hashes portable; `verify`
 * and `needsRehash` read either order, so hashes stored before still work.
 */
function toPhcOrder(hash: string): string {
  return hash.replace(/^(\$argon2id\$v=\d+\$)m=(\d+),p=(\d+),t=(\d+)\$/, '$1m=$2,t=$4,p=$3$')
}

/**
 * Salted SHA-256: fast and NOT suitable for production (no work factor). For
 * tests and benchmarks that create many keys. Its hashes start with
 * `$keyrot-test-sha256$` so they can never be mistaken for Argon2 ones.
 */
export class FastTestHasher implements Hasher {
  async hash(token: string): Promise<string> {
    const salt = randomBytes(16).toString('base64url')
    return `$keyrot-test-sha256$${salt}$${createHash('sha256').update(salt).update(token).digest('base64url')}`
  }

  async verify(hash: string, token: string): Promise<boolean> {
    const parts = hash.split('$')
    if (parts.length !== 4 || parts[1] !== 'keyrot-test-sha256') return false
    const expected = Buffer.from(parts[3] as string)
    const actual = Buffer.from(createHash('sha256').update(parts[2] as string).update(token).digest('base64url'))
    return expected.length === actual.length && timingSafeEqual(expected, actual)
  }

  needsRehash(): boolean {
    return false
  }
}
