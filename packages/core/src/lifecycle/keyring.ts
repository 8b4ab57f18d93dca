import type { HistoryEntry, HistoryVerification } from '../audit/history.js'
import { HistoryRecorder } from '../audit/history-recorder.js'
import type { Duration } from '../duration.js'
import { InvalidInputError, KeyNotFoundError, KeyrotError } from '../errors.js'
import { TypedEmitter, type KeyringEventName, type KeyringListener, type RequestContext } from '../events.js'
import { errorFields } from '../logger.js'
import { resolveKeyringOptions, type KeyringOptions, type ResolvedKeyringOptions } from '../options.js'
import type { AttemptGuard, RateLimitStats } from '../rate-limit/guard.js'
import type { CreateSigningSecretInput, IssuedSigningSecret } from '../signing/secret.js'
import type { InvalidationEvent, KeyStore } from '../store/store.js'
import { stateOf, toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { readKeyCredits, type KeyCredits } from './credits.js'
import { InFlight } from './in-flight.js'
import type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'
import { StoreResetGuard } from './store-reset.js'
import { checkDuration, checkGrace, checkTenantId } from './validate.js'
import { Verifier } from './verifier.js'
import { readTenantPolicy, type TenantPolicyView } from '../policy/tenant-policy.js'
import type { TenantPolicy } from '../policy/policy-options.js'
import { importKey, type ImportedKeyResult, type ImportKeyInput } from './imported-keys.js'
import type { KeyringContext } from './keyring-context.js'
import { emergencyRotateKey, issueKey, issueSigningSecret, rotateKey } from './key-issuance.js'
import { addKeyCredits, revokeKey, setKeyAllowedIps, setKeyCredits, setKeyExpiry, setTenantPolicyOverride } from './key-admin.js'
import { familyHistory, keysExpiringWithin, keysUnusedSince, listKeys, verifyAdminHistory } from './key-queries.js'

export type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'

/**
 * The key lifecycle: create, rotate with grace, revoke, emergency rotation,
 * expiry. `verify()` runs in the `Verifier` (verifier.ts); the keyring is
 * the only one that tells it a key changed (cache invalidation has one owner).
 * The operations that mint a token are in key-issuance.ts, the admin writes
 * in key-admin.ts, the listing queries in key-queries.ts: they reach the
 * keyring's own parts through the `KeyringContext` it hands them.
 */
export class Keyring {
  readonly options: ResolvedKeyringOptions
  readonly store: KeyStore
  readonly #events: TypedEmitter
  /** The verify path (cache, abuse guard, proofs, outages); the keyring tells it what changed. */
  readonly #verifier: Verifier
  readonly #unsubscribe: (() => void) | undefined
  readonly #history: HistoryRecorder | null
  readonly #reset: StoreResetGuard
  readonly #inFlight = new InFlight()
  /** What the operations in key-issuance.ts and key-admin.ts use of this keyring. */
  readonly #context: KeyringContext
  #closed = false

  constructor(options: KeyringOptions = {}) {
    this.options = resolveKeyringOptions(options)
    this.store = this.options.store
    this.#events = new TypedEmitter((event, error) =>
      this.options.logger.error({ event, ...errorFields(error) }, 'keyrot event listener threw'),
    )
    this.#reset = new StoreResetGuard({ store: this.store, clock: this.options.clock, logger: this.options.logger, emit: (event, payload) => this.#events.emit(event, payload) })
    this.#verifier = new Verifier({ options: this.options, events: this.#events, read: (keyId) => this.#reset.read(keyId) })
    this.#context = {
      options: this.options,
      store: this.store,
      clock: this.options.clock,
      events: this.#events,
      reset: this.#reset,
      assertOpen: () => this.#assertOpen(),
      mustGet: (keyId) => this.#mustGet(keyId),
      invalidate: (keyId) => this.#verifier.invalidate(keyId),
      noteTenantPolicy: (tenantId, override) => this.#verifier.rotationPolicy?.noteTenantPolicy(tenantId, override),
      audit: (event, fields) => this.#audit(event, fields),
      historySettled: () => this.#history?.settled(),
    }
    // close() lets admin writes already started land before it releases the store.
    this.#inFlight.trackMethods(this as Keyring, ['create', 'createSigningSecret', 'rotate', 'emergencyRotate', 'revoke', 'setExpiry', 'setCredits', 'addCredits', 'setAllowedIps', 'import'])
    this.#unsubscribe = this.store.subscribe?.((event) => this.#onInvalidation(event))
    // Recorded from the keyring's own admin events; admin methods only wait for the append to settle.
    this.#history = this.options.history ? new HistoryRecorder(this, this.options.history, this.options.logger) : null
  }

  get clock() {
    return this.options.clock
  }

  /** Subscribes to a lifecycle event. Returns a function that unsubscribes. */
  on<E extends KeyringEventName>(event: E, listener: KeyringListener<E>): () => void {
    return this.#events.on(event, listener)
  }

  off<E extends KeyringEventName>(event: E, listener: KeyringListener<E>): void {
    this.#events.off(event, listener)
  }

  /** Whether anyone listens to `event` (adapters use it to skip work). */
  listens(event: KeyringEventName): boolean {
    return this.#events.has(event)
  }

  /** Emits an event on this keyring's emitter (used by adapters and rate limiters). */
  emit<E extends KeyringEventName>(event: E, payload: Parameters<KeyringListener<E>>[0]): void {
    this.#events.emit(event, payload)
  }

  // ---------------------------------------------------------------- create

  /** Creates a key. The returned `token` is the only copy of the secret. */
  create(input: CreateKeyInput): Promise<IssuedKey> {
    return issueKey(this.#context, input, false)
  }

  /**
   * Creates a signing secret for HMAC webhooks and signed requests. The
   * returned `secret` (`whsec_...`) is the only plaintext copy: the store keeps
   * it encrypted under the newest master key (`signing.masterKeys`).
   * `rotate`, `revoke`, `emergencyRotate` and the grace period work on it as
   * on an API key; `rotate` returns the new secret as `token`.
   *
   * @example
   * const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
   * // give `secret` to the receiver once; sign with signWebhook(keyring, { secretId: key.id, ... })
   */
  createSigningSecret(input: CreateSigningSecretInput): Promise<IssuedSigningSecret> {
    return issueSigningSecret(this.#context, input)
  }

  // ---------------------------------------------------------------- verify

  /**
   * Checks a token. Cheapest checks first: format and checksum (no I/O), the
   * abuse checks (IP block, failures per IP and per key id, the negative
   * cache of wrong tokens: see docs/rate-limits.md), the cached proof and
   * state, a store read, status and expiry, Argon2 (only for a token not
   * proven before), scopes, and the key's request quota last.
   *
   * Returns `{ ok: false, error }` for any credential problem and for a rate
   * limit (`RateLimitedError`). A key is reported expired or revoked only
   * when the token's secret was proven right; otherwise the error is
   * `KEYROT_INVALID_SECRET`. Throws only `StoreUnavailableError`, when the
   * store or the rate limiter cannot answer.
   */
  verify(token: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    return this.#verifier.verify(token, options)
  }

  /**
   * `verify()`, answered synchronously when nothing needs to wait (a cache
   * hit with the in-process rate limiter), else a promise. For adapters on
   * the hot path: a cache hit then costs no promise and no microtask.
   *
   * @example
   * const result = keyring.verifyNow(token)
   * const settled = result instanceof Promise ? await result : result
   */
  verifyNow(token: string, options: VerifyOptions = {}): VerifyResult | Promise<VerifyResult> {
    return this.#verifier.verifyNow(token, options)
  }

  /**
   * Reports a request refused before `verify` (no key, malformed header) to
   * listeners, so metrics and audit logs see every attempt.
   */
  noteRequestFailure(error: KeyrotError, context: RequestContext = {}): void {
    this.#verifier.noteRequestFailure(error, context)
  }

  /** The Argon2 queue and the shared proofs' outcomes since start, for metrics (`sharedProofs` is `null` when no proof key is set). */
  proofStats(): ReturnType<Verifier['proofStats']> {
    return this.#verifier.proofStats()
  }

  // ---------------------------------------------------------------- rotate

  /**
   * Issues a successor that works at once and ends the old key at
   * `now + gracePeriod` (never later than an expiry it already had). Atomic:
   * of concurrent rotations of one key exactly one succeeds, the others throw
   * `AlreadyRotatedError`.
   */
  rotate(keyId: string, options: RotateOptions = {}): Promise<IssuedKey & { previous: ApiKey }> {
    return rotateKey(this.#context, keyId, options)
  }

  /**
   * Revokes a leaked key now and issues its successor in one atomic step:
   * no grace period. Returns the new key; `revoked` is the old one.
   */
  emergencyRotate(
    keyId: string,
    options: { incidentId: string; reason?: string } & Omit<RotateOptions, 'gracePeriod'>,
  ): Promise<IssuedKey & { revoked: ApiKey }> {
    return emergencyRotateKey(this.#context, keyId, options)
  }

  // ---------------------------------------------------------------- revoke & expiry

  /** Revokes a key at once, on every replica. Idempotent: a second call keeps the first reason. */
  revoke(keyId: string, options: { reason?: string; incidentId?: string } = {}): Promise<ApiKey> {
    return revokeKey(this.#context, keyId, options)
  }

  /**
   * Sets when a key stops working: end a grace period early (`now`) or extend
   * it. `null` removes the expiry. Takes effect on every replica like revoke.
   */
  setExpiry(keyId: string, expiresAt: number | Date | string | null): Promise<ApiKey> {
    return setKeyExpiry(this.#context, keyId, expiresAt)
  }

  /**
   * Sets the client IP ranges a key may be used from (`null`: any IP), on
   * every replica like revoke. Rotation keeps the list. See docs/policies.md#ip-allowlists.
   *
   * @example
   * await keyring.setAllowedIps(key.id, ['203.0.113.0/24', '2001:db8::/32'])
   */
  setAllowedIps(keyId: string, allowedIps: readonly string[] | null): Promise<ApiKey> {
    return setKeyAllowedIps(this.#context, keyId, allowedIps)
  }

  /**
   * Brings in a key from another system, verifying in its existing format:
   * from its plaintext `token`, or from a `legacy` unsalted SHA-256 (upgraded
   * to Argon2id on its first successful verify). Idempotent per token.
   * Rotating it issues a keyrot token. Needs `importedPrefixes` and an import
   * key (see docs/policies.md#importing-keys).
   *
   * @example
   * await keyring.import({ tenantId: 'acme', name: 'ci', legacy: { sha256: '9f86d0...', tokenPrefix: 'old_' } })
   */
  async import(input: ImportKeyInput): Promise<ImportedKeyResult> {
    this.#assertOpen()
    const now = this.clock.now()
    const result = await importKey({ store: this.store, hasher: this.options.hasher, imports: this.options.imports, now }, input)
    if (!result.created) return result
    this.#reset.noteKnown(result.key.id)
    this.#events.emit('key.created', { key: result.key, at: now })
    this.#audit('key.imported', { keyId: result.key.id, tenantId: result.key.tenantId, legacy: input.legacy !== undefined })
    await this.#history?.settled()
    return result
  }

  /** Ends a key's grace period now. */
  endGrace(keyId: string): Promise<ApiKey> {
    return this.setExpiry(keyId, this.clock.now())
  }

  /** Moves a key's deadline `by` later (from its current deadline, or from now if it has passed). */
  async extendGrace(keyId: string, by: Duration): Promise<ApiKey> {
    const ms = checkGrace(by, 'by', 'extendGrace(keyId, by) takes the time to add: ')
    const old = await this.#mustGet(keyId)
    const base = Math.max(old.expiresAt ?? this.clock.now(), this.clock.now())
    return this.setExpiry(keyId, base + ms)
  }

  // ---------------------------------------------------------------- credits

  /**
   * The credits left to `keyId`'s family (shared by every key rotated from
   * one another) and when the next refill lands; `null` for a key without
   * credits (unlimited).
   */
  async credits(keyId: string): Promise<KeyCredits | null> {
    return readKeyCredits(this.store, await this.#mustGet(keyId), this.clock.now())
  }

  /** Sets the credits of `keyId`'s family to `remaining`. Throws `InvalidInputError` for a key without credits. */
  setCredits(keyId: string, remaining: number): Promise<KeyCredits> {
    return setKeyCredits(this.#context, keyId, remaining)
  }

  /** Adds `amount` credits (negative takes away, never below 0) to `keyId`'s family. */
  addCredits(keyId: string, amount: number): Promise<KeyCredits> {
    return addKeyCredits(this.#context, keyId, amount)
  }

  // ---------------------------------------------------------------- read

  async get(keyId: string): Promise<ApiKey | null> {
    if (typeof keyId !== 'string' || keyId.length > 64) return null
    const record = await this.store.get(keyId)
    return record ? toApiKey(record, this.clock.now()) : null
  }

  /** Keys of a tenant (or all), newest first, optionally of one state. */
  list(query: { tenantId?: string; state?: ApiKey['state']; limit?: number } = {}): Promise<ApiKey[]> {
    return listKeys(this, query)
  }

  /** Keys still working that stop within `window` (grace periods and planned expiries). */
  expiringWithin(window: Duration, query: { tenantId?: string } = {}): Promise<ApiKey[]> {
    return keysExpiringWithin(this, window, query)
  }

  /** Working keys not used since `since` (never-used keys count when created before it). */
  unusedSince(since: number | Date | string, query: { tenantId?: string } = {}): Promise<ApiKey[]> {
    return keysUnusedSince(this, since, query)
  }

  /** State of the verification cache, for metrics. */
  cacheStats(): { proofs: number; states: number; hits: number; misses: number } {
    return this.#verifier.cacheStats()
  }

  /** Refusals by rate-limit policy and negative-cache hits since start, for metrics and alerts; `null` when `rateLimit: false`. */
  rateLimitStats(): RateLimitStats | null {
    return this.#verifier.rateLimitStats()
  }

  /** The abuse guard of `verify()`, shared by other credentials checked against this keyring (signed requests); `null` when `rateLimit: false`. */
  get abuseGuard(): AttemptGuard | null {
    return this.#verifier.abuseGuard
  }

  /**
   * The shared admin history of `keyId`'s family (the key, the key it was
   * rotated from and every key rotated from it), newest last, at most
   * `limit` entries (default 1,000: the newest). Waits for this keyring's
   * pending appends first. Needs the `history` option.
   *
   * @example
   * const entries = await keyring.history(key.id)
   * // [{ action: 'key.created', ... }, { action: 'key.rotated', newKeyId, gracePeriodMs, ... }]
   */
  history(keyId: string, options: { limit?: number } = {}): Promise<HistoryEntry[]> {
    return familyHistory(this.#history, keyId, options)
  }

  /** Checks every hash and link of the shared admin history (see `HistoryLog.verify`). Needs the `history` option. */
  verifyHistory(): Promise<HistoryVerification> {
    return verifyAdminHistory(this.#history)
  }

  /**
   * A tenant's rotation policy: its stored override (`null`: none) and the
   * policy in force, the override over `createKeyring({ policy })`
   * (docs/policies.md#rotation-policy).
   */
  tenantPolicy(tenantId: string): Promise<TenantPolicyView> {
    return readTenantPolicy(this.options, checkTenantId(tenantId))
  }

  /**
   * Sets (or with `null`, removes) a tenant's rotation policy override. In
   * force on this replica at once, on others within `policy.tenantRefresh`.
   */
  setTenantPolicy(tenantId: string, override: TenantPolicy | null): Promise<TenantPolicyView> {
    return setTenantPolicyOverride(this.#context, tenantId, override)
  }

  /**
   * The operator's step after a store reset (`keyrot store accept-reset`):
   * the store accepts admin writes again, on every process sharing it, and
   * unknown keys answer "not found" again. Revocations this replica knows
   * were written back already and stay enforced.
   */
  async acceptStoreReset(): Promise<void> {
    await this.store.acceptReset?.()
  }

  /**
   * Stops listening for invalidations, flushes usage counts and closes the store, the rate limiter and the history log (after its pending appends). Idempotent.
   * Admin writes already started (`revoke()` not awaited, say) and a store
   * reset recovery land first, waiting at most `timeout` (default 10 s; `0`
   * does not wait).
   */
  async close(options: { timeout?: Duration } = {}): Promise<void> {
    const timeoutMs = options.timeout === undefined ? 10_000 : checkDuration(options.timeout, 'timeout')
    if (this.#closed) return
    this.#closed = true
    void this.#inFlight.track(this.#reset.settled())
    const left = await this.#inFlight.drain(timeoutMs)
    if (left > 0) this.options.logger.warn({ event: 'keyring.close_timeout', pending: left, timeoutMs }, 'keyrot closed with admin writes still in flight')
    this.#unsubscribe?.()
    this.#events.clear()
    await this.#history?.close()
    await this.#verifier.close()
    await this.store.close()
  }

  /**
   * Store and rate-limiter outages since start, for metrics: whether key
   * reads work now, outages seen, verifications answered from a stale
   * state, and rate-limit decisions taken by this replica's own counters.
   */
  outageStats(): ReturnType<Verifier['outageStats']> {
    return this.#verifier.outageStats()
  }

  // ---------------------------------------------------------------- internals

  #onInvalidation(event: InvalidationEvent): void {
    // Cached states stay: they are this replica's latest truth, newer than a rolled-back store's.
    if (event.type === 'store-reset') return this.#reset.onStoreReset(event)
    if (event.type === 'key') {
      this.#verifier.invalidate(event.keyId)
      this.#reset.refresh(event.keyId)
      if (this.#events.has('invalidation.received')) {
        const at = this.clock.now()
        const lagMs = typeof event.sentAt === 'number' && Number.isFinite(event.sentAt) ? Math.max(0, at - event.sentAt) : undefined
        this.#events.emit('invalidation.received', { keyId: event.keyId, lagMs, at })
      }
    } else {
      this.#verifier.invalidateAll()
      this.options.logger.warn({ event: 'cache.reset', reason: event.reason }, 'keyrot dropped cached key states')
      this.#events.emit('cache.reset', { reason: event.reason, at: this.clock.now() })
    }
  }

  async #mustGet(keyId: string): Promise<KeyRecord> {
    if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > 64) throw new InvalidInputError('keyId', 'must be a key id string')
    const record = await this.store.get(keyId)
    if (!record) throw new KeyNotFoundError(keyId)
    return record
  }

  #assertOpen(): void {
    if (this.#closed) throw new TypeError('this keyring is closed')
  }

  #audit(event: string, fields: Record<string, unknown>): void {
    this.options.logger.info({ event, ...fields }, `keyrot ${event}`)
  }
}

/**
 * Creates a keyring.
 *
 * @example
 * const keyring = createKeyring({ store: new MemoryStore(), gracePeriod: '24h' })
 * const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
 */
export function createKeyring(options: KeyringOptions = {}): Keyring {
  return new Keyring(options)
}

export { stateOf }
