import type { HistoryEntry, HistoryVerification } from '../audit/history.js'
import { HistoryRecorder } from '../audit/history-recorder.js'
import type { Duration } from '../duration.js'
import { InvalidInputError, KeyNotFoundError, KeyrotError, KeyRevokedError } from '../errors.js'
import { TypedEmitter, type KeyringEventName, type KeyringListener, type RequestContext } from '../events.js'
import { errorFields } from '../logger.js'
import { resolveKeyringOptions, type KeyringOptions, type ResolvedKeyringOptions } from '../options.js'
import type { AttemptGuard, RateLimitStats } from '../rate-limit/guard.js'
import { generateSigningSecret, SIGNING_PREFIX, type CreateSigningSecretInput, type IssuedSigningSecret } from '../signing/secret.js'
import type { SecretSealer } from '../signing/sealer.js'
import type { InvalidationEvent, KeyStore } from '../store/store.js'
import { assertValidPrefix, generateToken, newKeyId, familyOf, isKeyId } from '../token/format.js'
import { stateOf, toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { adjustKeyCredits, readKeyCredits, type KeyCredits } from './credits.js'
import { InFlight } from './in-flight.js'
import type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'
import { StoreResetGuard } from './store-reset.js'
import { assertRotatable, newRecord, restamp, successorDraft, type RecordDraft } from './succession.js'
import { checkDuration, checkGrace, checkName, checkTenantId, checkTimestamp } from './validate.js'
import { Verifier } from './verifier.js'
import { readTenantPolicy, writeTenantPolicy, type TenantPolicyView } from '../policy/tenant-policy.js'
import type { TenantPolicy } from '../policy/policy-options.js'
import { checkAllowedIps } from './allowed-ips.js'
import { checkKeyDraft } from './key-draft.js'
import { importKey, type ImportedKeyResult, type ImportKeyInput } from './imported-keys.js'

export type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'

/**
 * The key lifecycle: create, rotate with grace, revoke, emergency rotation,
 * expiry. `verify()` runs in the `Verifier` (verifier.ts); the keyring is
 * the only one that tells it a key changed (cache invalidation has one owner).
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
  #closed = false

  constructor(options: KeyringOptions = {}) {
    this.options = resolveKeyringOptions(options)
    this.store = this.options.store
    this.#events = new TypedEmitter((event, error) =>
      this.options.logger.error({ event, ...errorFields(error) }, 'keyrot event listener threw'),
    )
    this.#reset = new StoreResetGuard({ store: this.store, clock: this.options.clock, logger: this.options.logger, emit: (event, payload) => this.#events.emit(event, payload) })
    this.#verifier = new Verifier({ options: this.options, events: this.#events, read: (keyId) => this.#reset.read(keyId) })
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
    return this.#create(input, false)
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
  async createSigningSecret(input: CreateSigningSecretInput): Promise<IssuedSigningSecret> {
    this.#sealer()
    if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
    const { token, key } = await this.#create(
      { tenantId: input.tenantId, name: input.name, expiresAt: input.expiresAt, metadata: input.metadata, prefix: SIGNING_PREFIX },
      true,
    )
    return { secret: token, key }
  }

  async #create(input: CreateKeyInput, signing: boolean): Promise<IssuedKey> {
    this.#assertOpen()
    if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
    const now = this.clock.now()
    const prefix = input.prefix ?? this.options.prefix
    try {
      assertValidPrefix(prefix)
    } catch (error) {
      throw new InvalidInputError('prefix', (error as Error).message)
    }
    if (!signing && prefix === SIGNING_PREFIX) {
      throw new InvalidInputError('prefix', `'${SIGNING_PREFIX}' is reserved for signing secrets: use createSigningSecret()`)
    }
    const checked = checkKeyDraft(input, this.store, now)
    const credits = checked.credits
    const draft = { ...checked.draft, prefix }
    for (let attempt = 0; ; attempt++) {
      const { token, record } = await this.#mint(draft, newKeyId(), null, now)
      try {
        await this.store.insert(record)
        this.#reset.noteKnown(record.id)
        // The family's balance, before the token leaves: no verify can come first.
        if (credits) await this.store.adjustCredits?.({ familyId: record.familyId, change: { set: credits.remaining }, refill: credits.config.refill, now })
      } catch (error) {
        // A key id collision (2^-59 per pair) is retried with a new id.
        if (error instanceof InvalidInputError && error.field === 'id' && attempt < 3) continue
        throw error
      }
      const key = toApiKey(record, now)
      this.#events.emit('key.created', { key, at: now })
      this.#audit('key.created', { keyId: key.id, tenantId: key.tenantId })
      // Returns once the action is in the shared history (or its failed append was logged): a
      // later action, on any replica, is recorded after it.
      await this.#history?.settled()
      return { token, key }
    }
  }

  async #mint(
    draft: RecordDraft,
    id: string,
    rotatedFrom: string | null,
    now: number,
  ): Promise<{ token: string; record: KeyRecord }> {
    // A signing secret is kept encrypted, not hashed: HMAC needs the secret itself.
    const signing = draft.prefix === SIGNING_PREFIX
    const token = signing ? generateSigningSecret() : generateToken(draft.prefix, id)
    const hash = signing ? this.#sealer().seal(token, id) : await this.options.hasher.hash(token)
    return { token, record: newRecord(draft, id, rotatedFrom, now, hash) }
  }

  #sealer(): SecretSealer {
    const sealer = this.options.signing
    if (!sealer) throw new TypeError('signing secrets need master keys: createKeyring({ signing: { masterKeys: [{ id, key }] } })')
    return sealer
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
  async rotate(keyId: string, options: RotateOptions = {}): Promise<IssuedKey & { previous: ApiKey }> {
    this.#assertOpen()
    const now = this.clock.now()
    const gracePeriodMs = options.gracePeriod === undefined ? this.options.gracePeriodMs : checkGrace(options.gracePeriod, 'gracePeriod')
    const old = await this.#mustGet(keyId)
    assertRotatable(old, now)
    const { token, record } = await this.#mint(successorDraft(old, options, now, this.options.prefix), newKeyId(old.familyId), old.id, now)
    // The grace period starts when the rotation is written, not before the
    // (slow, Argon2) hashing of the new token: clients get all of it.
    const at = Math.max(now, this.clock.now())
    restamp(record, now, at, options.expiresAt === undefined)
    const { previous, next } = await this.store.rotate({ oldKeyId: old.id, newKey: record, graceDeadline: at + gracePeriodMs, now: at })
    this.#reset.observe(previous, true)
    this.#reset.noteKnown(next.id)
    this.#verifier.invalidate(old.id)
    const result = { token, key: toApiKey(next, at), previous: toApiKey(previous, at) }
    this.#events.emit('key.rotated', { previous: result.previous, next: result.key, gracePeriodMs, at })
    this.#audit('key.rotated', { keyId: old.id, newKeyId: next.id, tenantId: old.tenantId, gracePeriodMs, graceEndsAt: previous.expiresAt })
    await this.#history?.settled()
    return result
  }

  /**
   * Revokes a leaked key now and issues its successor in one atomic step:
   * no grace period. Returns the new key; `revoked` is the old one.
   */
  async emergencyRotate(
    keyId: string,
    options: { incidentId: string; reason?: string } & Omit<RotateOptions, 'gracePeriod'>,
  ): Promise<IssuedKey & { revoked: ApiKey }> {
    this.#assertOpen()
    const now = this.clock.now()
    const incidentId = checkName(options?.incidentId, 'incidentId')
    const reason = options.reason === undefined ? `emergency rotation (${incidentId})` : checkName(options.reason, 'reason')
    const old = await this.#mustGet(keyId)
    assertRotatable(old, now, '; to stop a key that is in its grace period, revoke it')
    const { token, record } = await this.#mint(successorDraft(old, options, now, this.options.prefix), newKeyId(old.familyId), old.id, now)
    const at = Math.max(now, this.clock.now())
    restamp(record, now, at, options.expiresAt === undefined)
    const { revoked, next } = await this.store.emergencyRotate({ oldKeyId: old.id, newKey: record, at, reason, incidentId })
    this.#reset.observe(revoked, true)
    this.#reset.noteKnown(next.id)
    this.#verifier.invalidate(old.id)
    const result = { token, key: toApiKey(next, at), revoked: toApiKey(revoked, at) }
    this.#events.emit('key.emergency_rotated', { revoked: result.revoked, next: result.key, incidentId, at })
    this.#audit('key.emergency_rotated', { keyId: old.id, newKeyId: next.id, tenantId: old.tenantId, incidentId, reason })
    await this.#history?.settled()
    return result
  }

  // ---------------------------------------------------------------- revoke & expiry

  /** Revokes a key at once, on every replica. Idempotent: a second call keeps the first reason. */
  async revoke(keyId: string, options: { reason?: string; incidentId?: string } = {}): Promise<ApiKey> {
    this.#assertOpen()
    const now = this.clock.now()
    const reason = options.reason === undefined ? null : checkName(options.reason, 'reason')
    // An incident id ties the revocation to an incident (a leak report: 'leak:github').
    const incidentId = options.incidentId === undefined ? null : checkName(options.incidentId, 'incidentId')
    await this.#mustGet(keyId)
    const record = await this.store.revoke({ keyId, at: now, reason, ...(incidentId === null ? {} : { incidentId }) })
    this.#reset.observe(record, true)
    this.#verifier.invalidate(keyId)
    const key = toApiKey(record, now)
    this.#events.emit('key.revoked', { key, reason: record.revokedReason, at: now })
    this.#audit('key.revoked', { keyId, tenantId: key.tenantId, reason: record.revokedReason })
    await this.#history?.settled()
    return key
  }

  /**
   * Sets when a key stops working: end a grace period early (`now`) or extend
   * it. `null` removes the expiry. Takes effect on every replica like revoke.
   */
  async setExpiry(keyId: string, expiresAt: number | Date | string | null): Promise<ApiKey> {
    this.#assertOpen()
    const now = this.clock.now()
    const at = checkTimestamp(expiresAt, 'expiresAt')
    const old = await this.#mustGet(keyId)
    if (old.revokedAt !== null) throw new KeyRevokedError(keyId, old.revokedAt, old.revokedReason)
    if (at === null && old.rotatedTo !== null) {
      throw new InvalidInputError('expiresAt', `key ${keyId} was rotated; its grace period needs an end`)
    }
    const record = await this.store.setExpiry(keyId, at)
    this.#reset.observe(record, true)
    this.#verifier.invalidate(keyId)
    const key = toApiKey(record, now)
    this.#events.emit('key.expiry_changed', { key, previousExpiresAt: old.expiresAt, at: now })
    this.#audit('key.expiry_changed', { keyId, tenantId: key.tenantId, expiresAt: at, previousExpiresAt: old.expiresAt })
    await this.#history?.settled()
    return key
  }

  /**
   * Sets the client IP ranges a key may be used from (`null`: any IP), on
   * every replica like revoke. Rotation keeps the list. See docs/policies.md#ip-allowlists.
   *
   * @example
   * await keyring.setAllowedIps(key.id, ['203.0.113.0/24', '2001:db8::/32'])
   */
  async setAllowedIps(keyId: string, allowedIps: readonly string[] | null): Promise<ApiKey> {
    this.#assertOpen()
    const ranges = checkAllowedIps(allowedIps)
    if (!this.store.setAllowedIps) throw new TypeError('this store cannot change allowedIps (no setAllowedIps)')
    await this.#mustGet(keyId)
    const record = await this.store.setAllowedIps(keyId, ranges)
    this.#verifier.invalidate(keyId)
    const key = toApiKey(record, this.clock.now())
    this.#audit('key.allowed_ips_changed', { keyId, tenantId: key.tenantId, allowedIps: ranges })
    return key
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
  async setCredits(keyId: string, remaining: number): Promise<KeyCredits> {
    this.#assertOpen()
    const credits = await adjustKeyCredits(this.store, await this.#mustGet(keyId), { set: remaining }, this.clock.now())
    this.#audit('key.credits_set', { keyId, remaining: credits.remaining })
    return credits
  }

  /** Adds `amount` credits (negative takes away, never below 0) to `keyId`'s family. */
  async addCredits(keyId: string, amount: number): Promise<KeyCredits> {
    this.#assertOpen()
    const credits = await adjustKeyCredits(this.store, await this.#mustGet(keyId), { add: amount }, this.clock.now())
    this.#audit('key.credits_added', { keyId, amount, remaining: credits.remaining })
    return credits
  }

  // ---------------------------------------------------------------- read

  async get(keyId: string): Promise<ApiKey | null> {
    if (typeof keyId !== 'string' || keyId.length > 64) return null
    const record = await this.store.get(keyId)
    return record ? toApiKey(record, this.clock.now()) : null
  }

  /** Keys of a tenant (or all), newest first, optionally of one state. */
  async list(query: { tenantId?: string; state?: ApiKey['state']; limit?: number } = {}): Promise<ApiKey[]> {
    if (query.tenantId !== undefined) checkTenantId(query.tenantId)
    if (query.state !== undefined && !['active', 'grace', 'expired', 'revoked'].includes(query.state)) {
      throw new InvalidInputError('state', 'must be one of active, grace, expired, revoked')
    }
    if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 0)) {
      throw new InvalidInputError('limit', 'must be a non-negative integer')
    }
    const now = this.clock.now()
    const records = await this.store.list({ tenantId: query.tenantId })
    const keys = records.map((record) => toApiKey(record, now)).filter((key) => query.state === undefined || key.state === query.state)
    return query.limit === undefined ? keys : keys.slice(0, query.limit)
  }

  /** Keys still working that stop within `window` (grace periods and planned expiries). */
  async expiringWithin(window: Duration, query: { tenantId?: string } = {}): Promise<ApiKey[]> {
    const ms = checkDuration(window, 'window')
    const now = this.clock.now()
    const keys = await this.list(query)
    return keys
      .filter((key) => (key.state === 'active' || key.state === 'grace') && key.expiresAt !== null && key.expiresAt - now <= ms)
      .sort((a, b) => (a.expiresAt as number) - (b.expiresAt as number))
  }

  /** Working keys not used since `since` (never-used keys count when created before it). */
  async unusedSince(since: number | Date | string, query: { tenantId?: string } = {}): Promise<ApiKey[]> {
    const at = checkTimestamp(since, 'since') as number
    const keys = await this.list(query)
    return keys.filter((key) => (key.state === 'active' || key.state === 'grace') && (key.lastUsedAt ?? key.createdAt) < at)
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
  async history(keyId: string, options: { limit?: number } = {}): Promise<HistoryEntry[]> {
    const recorder = this.#historyRecorder()
    if (!isKeyId(keyId)) throw new InvalidInputError('keyId', 'must be a key id string')
    if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 0)) {
      throw new InvalidInputError('limit', 'must be a non-negative integer')
    }
    await recorder.settled()
    return recorder.log.read({ familyId: familyOf(keyId), limit: options.limit })
  }

  /** Checks every hash and link of the shared admin history (see `HistoryLog.verify`). Needs the `history` option. */
  async verifyHistory(): Promise<HistoryVerification> {
    const recorder = this.#historyRecorder()
    await recorder.settled()
    return recorder.log.verify()
  }

  #historyRecorder(): HistoryRecorder {
    if (!this.#history) throw new TypeError('the admin history needs a history log: createKeyring({ history: new MemoryHistoryLog() })')
    return this.#history
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
  async setTenantPolicy(tenantId: string, override: TenantPolicy | null): Promise<TenantPolicyView> {
    this.#assertOpen()
    const view = await writeTenantPolicy(this.options, checkTenantId(tenantId), override)
    this.#verifier.rotationPolicy?.noteTenantPolicy(view.tenantId, view.override)
    this.options.logger.info({ event: 'policy.tenant_changed', tenantId: view.tenantId, override: view.override }, 'keyrot tenant rotation policy changed')
    return view
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
