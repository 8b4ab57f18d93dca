import { keyView } from '../cache/key-view.js'
import type { LoadedKey, VerificationCache } from '../cache/verification-cache.js'
import { StoreUnavailableError } from '../errors.js'
import type { Circuit } from '../store/circuit.js'
import type { KeyStore } from '../store/store.js'
import type { ApiKey, KeyRecord } from '../types.js'
import type { VerifyOptions } from './keyring-types.js'
import type { VerifyReporter } from './verify-reporter.js'

/** Whether the store's invalidation feed is live (a store without one counts as live): only then may a read state be kept. */
export function storeFeedLive(store: KeyStore): boolean {
  const live = store.invalidationLive
  return live === undefined || live.call(store) !== false
}

export interface KeyReadsOptions {
  store: KeyStore
  /** Reads a key's state from the store as this replica may trust it (tightened by the store-reset guard). */
  read: (keyId: string) => Promise<KeyRecord | null>
  /** Opens when key reads fail with an outage: reads then fail at once. */
  circuit: Circuit
  cache: VerificationCache | null
  report: VerifyReporter
}

/**
 * The store side of the verify path: a key's state read through the store
 * circuit (through the verification cache when there is one), and
 * stale-if-error when the store cannot answer. The verifier decides what
 * the state means; this only says what it is.
 */
export class KeyReads {
  /** Verifications answered from a stale state since start, for metrics. */
  staleVerifications = 0
  readonly #options: KeyReadsOptions

  constructor(options: KeyReadsOptions) {
    this.#options = options
  }

  /** The key's record and view (the cache's, shared by concurrent readers); `null` when the store has no such key. */
  load(keyId: string): Promise<LoadedKey | null> {
    const { cache, store } = this.#options
    // With the invalidation feed down, a change published now would not reach us: a state read now is used once and not kept.
    if (cache !== null) return cache.load(keyId, this.#readKey, storeFeedLive(store))
    return this.#uncached(keyId)
  }

  /** A key read through the store circuit: fails at once while the store is known to be down. */
  readonly #readKey = (keyId: string): Promise<KeyRecord | null> =>
    this.#options.circuit.run(
      () => this.#options.read(keyId),
      () => new StoreUnavailableError('The key store is unavailable (it is being probed in the background).', { keyId }),
    )

  /** A key read without a cache: the record and a fresh view of it. */
  async #uncached(keyId: string): Promise<LoadedKey | null> {
    const record = await this.#readKey(keyId)
    return record === null ? null : { record, key: keyView(record) }
  }

  /**
   * Stale-if-error: while the store cannot answer (any `StoreUnavailableError`),
   * the last state this replica confirmed for the key answers, if the token
   * was proven here and the state is younger than `cache.staleIfError`. The
   * usual checks follow (revoked, `expiresAt`, scopes). Otherwise reports and
   * throws `failure` (503 with Retry-After).
   */
  staleOrThrow(failure: StoreUnavailableError, keyId: string, digest: string, options: VerifyOptions, now: number): ApiKey {
    const cache = this.#options.cache
    const stale = cache !== null && cache.proven(keyId, digest) ? cache.staleState(keyId) : undefined
    if (stale === undefined) {
      this.#options.report.emitFailure(failure, keyId, undefined, options, now)
      throw failure
    }
    this.staleVerifications++
    return stale
  }
}
