import type { Argon2Options, Hasher } from '@keyrot/core'
import { hash, parseOptions, verify } from '@node-rs/argon2'

/**
 * Argon2id through `@node-rs/argon2` (Rust, N-API) behind keyrot's `Hasher`
 * interface: the alternative to the default `argon2` package that the
 * benchmark compares. Parameters as in `Argon2Hasher`.
 */
export class NodeRsArgon2Hasher implements Hasher {
  readonly options: Required<Argon2Options>

  constructor(options: Required<Argon2Options>) {
    this.options = { ...options }
  }

  hash(token: string): Promise<string> {
    // Argon2id is the package's default algorithm.
    return hash(token, { ...this.options })
  }

  async verify(stored: string, token: string): Promise<boolean> {
    try {
      return await verify(stored, token)
    } catch {
      return false
    }
  }

  needsRehash(stored: string): boolean {
    try {
      const used = parseOptions(stored)
      return used.memoryCost !== this.options.memoryCost || used.timeCost !== this.options.timeCost || used.parallelism !== this.options.parallelism
    } catch {
      return false
    }
  }
}
