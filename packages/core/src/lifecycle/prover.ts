import type { VerificationCache } from '../cache/verification-cache.js'
import { OverloadedError } from '../errors.js'
import { Argon2Queue } from '../hash/argon2-queue.js'
import { errorFields } from '../logger.js'
import type { ResolvedKeyringOptions } from '../options.js'
import { noteProofsOff, SharedProofs, type SharedProofResult } from '../proof/shared-proofs.js'
import type { KeyRecord } from '../types.js'
import { checkHash, isLegacyHash } from './imported-keys.js'

/**
 * Proves a token against its key's stored hash, for the verifier: the
 * fleet's shared proof when one matches, else Argon2 through a bounded
 * queue, one run per token at a time. Also upgrades hashes after a proof
 * (current Argon2 parameters; an imported key's unsalted SHA-256 to
 * Argon2id). Apart from verifier.ts so the verify path reads in one sitting.
 */
export class Prover {
  readonly #options: ResolvedKeyringOptions
  readonly #cache: VerificationCache | null
  readonly #proving = new Map<string, Promise<boolean | OverloadedError>>()
  readonly #proofs: SharedProofs | null
  readonly #argon2: Argon2Queue

  constructor(options: ResolvedKeyringOptions, cache: VerificationCache | null) {
    this.#options = options
    this.#cache = cache
    this.#argon2 = new Argon2Queue(options.argon2)
    this.#proofs = options.proofKey ? new SharedProofs(options.proofKey) : null
    if (!this.#proofs) noteProofsOff(options.logger)
  }

  /**
   * One proof per token at a time, shared by concurrent verifies of it: the
   * fleet's shared proof on the record (one HMAC) when it matches, else Argon2
   * through the bounded queue, whose proof is then shared. Returns (not throws)
   * `OverloadedError` when the queue cannot start the run in time. Says only
   * which key the token belongs to: the caller checks the record's state.
   */
  async prove(digest: string, token: string, record: KeyRecord): Promise<boolean | OverloadedError> {
    const cache = this.#cache
    const hasher = this.#options.hasher
    if (!cache) {
      const proving = this.#argon2.run(() => checkHash(hasher, record.hash, token))
      return proving.then((ok) => (ok && isLegacyHash(record.hash) && this.maybeRehash(record, token), ok)).catch(overloadedOnly)
    }
    let pending = this.#proving.get(digest)
    if (!pending) {
      pending = (async () => {
        try {
          const proofs = this.#proofs
          if (proofs?.check(record, token) === 'hit') {
            cache.rememberProof(digest, record.id)
            // A legacy hash still stored means the replica that shared this proof did not upgrade it: try here (it lands once).
            if (isLegacyHash(record.hash)) this.maybeRehash(record, token)
            return true
          }
          const ok = await this.#argon2.run(() => checkHash(hasher, record.hash, token))
          if (ok) {
            cache.rememberProof(digest, record.id)
            this.maybeRehash(record, token)
            proofs?.share(this.#options.store, record, token, this.#options.logger)
          }
          return ok
        } catch (error) {
          return overloadedOnly(error)
        } finally {
          this.#proving.delete(digest)
        }
      })()
      this.#proving.set(digest, pending)
    }
    return pending
  }

  /** The Argon2 queue and the shared proofs' outcomes since start, for metrics (`sharedProofs` is `null` when no proof key is set). */
  stats(): { argon2QueueLength: number; argon2Running: number; argon2Refused: number; sharedProofs: Record<SharedProofResult, number> | null } {
    return {
      argon2QueueLength: this.#argon2.length,
      argon2Running: this.#argon2.running,
      argon2Refused: this.#argon2.refused,
      sharedProofs: this.#proofs?.stats() ?? null,
    }
  }

  /** Re-hashes a proven key's token when its hash is legacy or has old parameters; in the background, once. */
  maybeRehash(record: KeyRecord, token: string): void {
    const hasher = this.#options.hasher
    // A legacy unsalted hash (an imported key) is replaced by Argon2id on its first successful verify.
    if (!isLegacyHash(record.hash) && !hasher.needsRehash?.(record.hash)) return
    // A legacy hash is replaced only while it is still stored: concurrent first verifies (here or on other replicas) upgrade it once.
    const replacing = isLegacyHash(record.hash) ? record.hash : undefined
    void (async () => {
      try {
        const landed = await this.#options.store.updateHash(record.id, await hasher.hash(token), replacing)
        this.#cache?.invalidate(record.id)
        if (landed === false) return
        this.#options.logger.info({ event: 'key.rehashed', keyId: record.id }, 'keyrot re-hashed a key with the current parameters')
      } catch (error) {
        this.#options.logger.warn({ event: 'key.rehash_failed', keyId: record.id, ...errorFields(error) }, 'keyrot could not re-hash a key')
      }
    })()
  }
}

function overloadedOnly(error: unknown): OverloadedError {
  if (error instanceof OverloadedError) return error
  throw error
}
