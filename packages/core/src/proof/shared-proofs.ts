import { createHmac, timingSafeEqual } from 'node:crypto'
import { errorFields, type Logger } from '../logger.js'
import type { KeyStore } from '../store/store.js'
import type { KeyRecord } from '../types.js'

/**
 * What a shared proof said about one token, counted by
 * `keyrot_shared_proofs_total{result}`:
 * - `hit`: the record's proof matched: accepted with one HMAC, no Argon2;
 * - `absent`: the record had no proof (never proven, or dropped by a rotation
 *   or revocation): Argon2 ran;
 * - `stale`: the proof was made under another proof key: Argon2 ran;
 * - `mismatch`: the proof was made under this proof key for another token (a
 *   wrong secret): Argon2 ran, as without proofs;
 * - `shared`: after Argon2 accepted a token, its proof was written;
 * - `refused`: the store would not keep it (key gone, revoked or rotated);
 * - `failed`: the write failed (the next first use on a replica proves again).
 */
export type SharedProofResult = 'hit' | 'absent' | 'stale' | 'mismatch' | 'shared' | 'refused' | 'failed'

export const SHARED_PROOF_RESULTS: readonly SharedProofResult[] = Object.freeze(['hit', 'absent', 'stale', 'mismatch', 'shared', 'refused', 'failed'])

const FINGERPRINT_LABEL = 'keyrot proof key fingerprint v1'
const PROOF_LABEL = 'keyrot shared proof v1'
/**
 * Base64url characters of the fingerprint (3 bytes): enough to tell proof keys
 * apart (two colliding would read as `mismatch` rather than `stale`: Argon2
 * either way), too little to identify one.
 */
const FINGERPRINT_CHARS = 4
/** HMAC-SHA256 truncated to 128 bits (RFC 4868's length): no guess can be tested without the proof key, and 16 bytes less per key. */
const MAC_BYTES = 16
const MAC_CHARS = 22

/**
 * The fleet-wide proof cache. When Argon2 proves a token on one replica, the
 * replica stores `<fingerprint>.<HMAC-SHA256-128(proofKey, keyId, token)>` on the
 * key's record; every replica reads the record anyway, so the next first use
 * of that token anywhere costs one HMAC instead of Argon2.
 *
 * Why this is safe:
 * - The proof key never reaches the store. A dump of Redis holds Argon2
 *   hashes and HMACs under a key it does not have: nothing to test a guess
 *   against faster than Argon2.
 * - A proof only says which key a token belongs to. The keyring checks
 *   revocation, expiry, grace, scopes and quotas on the record exactly as it
 *   does after Argon2.
 * - A proof is only ever a reason to accept: a missing, stale or mismatching
 *   one sends the token to Argon2, as before shared proofs existed. A changed
 *   proof key changes the fingerprint, so old proofs read as `stale` and the
 *   fleet re-proves (and re-shares) with Argon2 without failing a request.
 * - Comparison is constant-time over the whole proof.
 */
export class SharedProofs {
  /** Identifies the proof key in every proof it makes (a keyed hash of a fixed label: reveals nothing of the key). */
  readonly fingerprint: string
  readonly #key: Buffer
  readonly #counts = new Map<SharedProofResult, number>(SHARED_PROOF_RESULTS.map((result) => [result, 0]))

  constructor(proofKey: Buffer) {
    this.#key = Buffer.from(proofKey)
    this.fingerprint = createHmac('sha256', this.#key).update(FINGERPRINT_LABEL).digest('base64url').slice(0, FINGERPRINT_CHARS)
  }

  /** The proof of `token` for key `keyId` (27 ASCII characters). */
  make(keyId: string, token: string): string {
    const mac = createHmac('sha256', this.#key).update(PROOF_LABEL).update('\0').update(keyId).update('\0').update(token).digest()
    return `${this.fingerprint}.${mac.subarray(0, MAC_BYTES).toString('base64url')}`
  }

  /** Checks the proof stored on `record` against `token`, and counts the outcome. */
  check(record: KeyRecord, token: string): 'hit' | 'absent' | 'stale' | 'mismatch' {
    const result = this.#check(record.sharedProof, record.id, token)
    this.#count(result)
    return result
  }

  #check(stored: string | null | undefined, keyId: string, token: string): 'hit' | 'absent' | 'stale' | 'mismatch' {
    if (typeof stored !== 'string' || stored.length === 0) return 'absent'
    if (stored.length !== FINGERPRINT_CHARS + 1 + MAC_CHARS || !stored.startsWith(`${this.fingerprint}.`)) return 'stale'
    const expected = Buffer.from(this.make(keyId, token))
    const actual = Buffer.from(stored)
    return actual.length === expected.length && timingSafeEqual(actual, expected) ? 'hit' : 'mismatch'
  }

  /**
   * Writes the proof of a token Argon2 just accepted, in the background: a
   * verify never waits for it, and a failed write only means another replica
   * proves the token with Argon2 too. Skipped for a store without `putProof`,
   * and for a key that is revoked or rotated (the store refuses those anyway:
   * rotation and revocation drop a key's proof for good).
   */
  share(store: KeyStore, record: KeyRecord, token: string, logger: Logger): void {
    if (typeof store.putProof !== 'function' || record.revokedAt !== null || record.rotatedTo !== null) return
    const proof = this.make(record.id, token)
    if (record.sharedProof === proof) return
    void store.putProof(record.id, proof).then(
      (kept) => this.#count(kept ? 'shared' : 'refused'),
      (error: unknown) => {
        this.#count('failed')
        logger.warn({ event: 'proof.share_failed', keyId: record.id, ...errorFields(error) }, 'keyrot could not share a proof')
      },
    )
  }

  /** Outcomes since start, for `keyrot_shared_proofs_total{result}`. */
  stats(): Record<SharedProofResult, number> {
    return Object.fromEntries(this.#counts) as Record<SharedProofResult, number>
  }

  #count(result: SharedProofResult): void {
    this.#counts.set(result, (this.#counts.get(result) ?? 0) + 1)
  }
}

let warnedOff = false

/**
 * Logs once per process that shared proofs are off: each replica then proves
 * every key with Argon2 on its first use, which makes a new replica slow to
 * warm up (see docs/redis.md#shared-proofs).
 */
export function noteProofsOff(logger: Logger): void {
  if (warnedOff) return
  warnedOff = true
  logger.info(
    { event: 'proofs.off' },
    'keyrot shares no proofs (no proofKey option, no KEYROT_PROOF_KEY): each replica will re-prove every key with Argon2 on its first use',
  )
}
