import { createPublicKey, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.js'
import { LeakKeysUnavailableError } from '../errors.js'
import { errorFields, type Logger } from '../logger.js'

/**
 * The document a provider publishes its signing keys in (GitHub's
 * `meta/public_keys/secret_scanning`, GitLab's equivalent):
 * `{ public_keys: [{ key_identifier, key, is_current }] }`, `key` a PEM.
 */
export interface PublicKeysDocument {
  public_keys: Array<{ key_identifier: string; key: string; is_current?: boolean }>
}

/**
 * Where a provider's public keys come from: an `https://` URL, or a function
 * that returns the document (air-gapped deployments ship the keys with the
 * configuration; tests serve their own).
 */
export type PublicKeySource = string | URL | (() => Promise<PublicKeysDocument>)

export interface PublicKeyCacheOptions {
  source: PublicKeySource
  /** Name in logs and errors, e.g. `'github'`. */
  provider: string
  /** Longest one fetch may take, in ms. Default 5000. */
  fetchTimeoutMs: number
  /**
   * Least time between two fetches, in ms: an unknown key id refreshes the
   * keys at most this often, so forged ids cannot make us hammer the
   * provider. Default 60000. `0`: refetch on every unknown id.
   */
  minRefreshIntervalMs: number
  /** Keys older than this are refetched before use, in ms (the old ones stay usable if the refetch fails). Default 3600000. */
  maxAgeMs: number
  clock: Clock
  logger: Logger
  /** The HTTP client. Default `globalThis.fetch`. */
  fetch: typeof fetch
}

/** Largest keys document read, in bytes: a handful of PEMs is a few KiB. */
const MAX_DOCUMENT_BYTES = 256 * 1024

/**
 * A provider's public keys, fetched on first use and cached. A key id not in
 * the cache triggers one refresh, at most once per `minRefreshIntervalMs`
 * (concurrent lookups share it). A failed fetch throws
 * {@link LeakKeysUnavailableError}: it never counts as a valid signature,
 * and the caller answers 503 so that the provider retries.
 */
export class PublicKeyCache {
  readonly #options: PublicKeyCacheOptions
  #keys = new Map<string, KeyObject>()
  #loadedAt: number | null = null
  #lastAttemptAt = Number.NEGATIVE_INFINITY
  #lastFailure: LeakKeysUnavailableError | null = null
  #inflight: Promise<void> | null = null

  constructor(options: PublicKeyCacheOptions) {
    this.#options = options
  }

  /** The key for `keyId`; `null` if the provider does not publish it. Throws `LeakKeysUnavailableError` when the keys cannot be fetched. */
  async lookup(keyId: string): Promise<KeyObject | null> {
    const now = this.#options.clock.now()
    const stale = this.#loadedAt === null || now - this.#loadedAt >= this.#options.maxAgeMs
    const known = this.#keys.get(keyId)
    if (known && !stale) return known
    if (now - this.#lastAttemptAt < this.#options.minRefreshIntervalMs && !this.#inflight) {
      // Refreshed recently: answer from what we have, or repeat the last failure if we have nothing.
      if (known) return known
      if (this.#loadedAt === null && this.#lastFailure) throw this.#lastFailure
      return null
    }
    try {
      await (this.#inflight ??= this.#refresh().finally(() => (this.#inflight = null)))
    } catch (error) {
      // Stale keys are still the provider's keys: a known one stays usable while the provider is unreachable.
      if (known) return known
      throw error
    }
    return this.#keys.get(keyId) ?? null
  }

  async #refresh(): Promise<void> {
    const { provider, logger } = this.#options
    this.#lastAttemptAt = this.#options.clock.now()
    try {
      const document = await this.#fetchDocument()
      const keys = parseKeysDocument(document)
      this.#keys = keys
      this.#loadedAt = this.#options.clock.now()
      this.#lastFailure = null
      logger.info({ event: 'leak.keys_fetched', provider, keys: keys.size }, `keyrot fetched ${provider}'s leak report keys`)
    } catch (error) {
      const retryAfterMs = Math.max(1_000, this.#options.minRefreshIntervalMs)
      const failure =
        error instanceof LeakKeysUnavailableError
          ? error
          : new LeakKeysUnavailableError(`${provider}'s public keys cannot be fetched: ${(error as Error)?.message ?? String(error)}`, retryAfterMs, { cause: error })
      this.#lastFailure = failure
      logger.error({ event: 'leak.keys_fetch_failed', provider, ...errorFields(error) }, `keyrot could not fetch ${provider}'s leak report keys`)
      throw failure
    }
  }

  async #fetchDocument(): Promise<unknown> {
    const { source, fetchTimeoutMs } = this.#options
    if (typeof source === 'function') return withTimeout(source(), fetchTimeoutMs)
    const signal = AbortSignal.timeout(fetchTimeoutMs)
    const response = await this.#options.fetch(source, { headers: { accept: 'application/json' }, redirect: 'error', signal })
    if (!response.ok) {
      await response.body?.cancel()
      throw new Error(`HTTP ${response.status}`)
    }
    const length = Number(response.headers.get('content-length') ?? 0)
    if (length > MAX_DOCUMENT_BYTES) throw new Error(`keys document larger than ${MAX_DOCUMENT_BYTES} bytes`)
    const text = await response.text()
    if (text.length > MAX_DOCUMENT_BYTES) throw new Error(`keys document larger than ${MAX_DOCUMENT_BYTES} bytes`)
    return JSON.parse(text) as unknown
  }
}

/** Reads `{ public_keys: [...] }` into key objects; throws on anything else (an empty list included: a provider without keys is an outage). */
export function parseKeysDocument(document: unknown): Map<string, KeyObject> {
  const list = (document as { public_keys?: unknown } | null)?.public_keys
  if (!Array.isArray(list) || list.length === 0) throw new Error('the keys document has no public_keys list')
  const keys = new Map<string, KeyObject>()
  for (const entry of list as unknown[]) {
    const { key_identifier: id, key: pem } = (entry ?? {}) as { key_identifier?: unknown; key?: unknown }
    if (typeof id !== 'string' || id.length === 0 || id.length > 256 || typeof pem !== 'string') {
      throw new Error('a public_keys entry lacks a string key_identifier or key')
    }
    const key = createPublicKey(pem)
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`public key ${id} is not an ECDSA P-256 key`)
    }
    keys.set(id, key)
  }
  return keys
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}
