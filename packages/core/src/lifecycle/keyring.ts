import { LRUCache } from 'lru-cache'
import type { HistoryEntry, HistoryVerification } from '../audit/history.js'
import { HistoryRecorder } from '../audit/history-recorder.js'
import { VerificationCache } from '../cache/verification-cache.js'
import type { Duration } from '../duration.js'
import {
  InsufficientScopeError,
  InvalidInputError,
  InvalidSecretError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyrotError,
  KeyRevokedError,
  OverloadedError,
  RateLimitedError,
  StoreUnavailableError,
} from '../errors.js'
import { TypedEmitter, type KeyringEventName, type KeyringListener, type RequestContext } from '../events.js'
import { errorFields } from '../logger.js'
import { Argon2Queue } from '../hash/argon2-queue.js'
import { noteProofsOff, SharedProofs, type SharedProofResult } from '../proof/shared-proofs.js'
import { resolveKeyringOptions, type KeyringOptions, type ResolvedKeyringOptions } from '../options.js'
import { FallbackRateLimiter } from '../rate-limit/fallback-limiter.js'
import { MemoryRateLimiter } from '../rate-limit/memory-limiter.js'
import { Circuit } from '../store/circuit.js'
import { AttemptGuard, isPromise, type Gate, type QuotaOutcome, type RateLimitStats, type Ticket } from '../rate-limit/guard.js'
import type { RateLimitInfo } from '../rate-limit/headers.js'
import type { RateLimiter } from '../rate-limit/limiter.js'
import { generateSigningSecret, SIGNING_PREFIX, type CreateSigningSecretInput, type IssuedSigningSecret } from '../signing/secret.js'
import type { SecretSealer } from '../signing/sealer.js'
import type { InvalidationEvent, KeyStore } from '../store/store.js'
import { assertValidPrefix, generateToken, newKeyId, parseToken, familyOf, isKeyId } from '../token/format.js'
import { stateOf, toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { InFlight } from './in-flight.js'
import { StoreResetGuard } from './store-reset.js'
import { assertRotatable, restamp, successorDraft } from './succession.js'
import {
  checkDuration,
  checkGrace,
  checkMetadata,
  checkName,
  checkRateLimit,
  checkScopes,
  checkTenantId,
  checkTimestamp,
} from './validate.js'

import type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'
import { rotationUseOf } from '../store/rotation-usage.js'
export type { CreateKeyInput, IssuedKey, RotateOptions, VerifyOptions, VerifyResult } from './keyring-types.js'

const EMPTY: readonly string[] = Object.freeze([])

/** When a watched `verify()` started (`performance.now()`), carried on its copied options. */
const STARTED_AT = Symbol('keyrot.verifyStartedAt')

function elapsedMs(context: RequestContext): number | undefined {
  const started = (context as { [STARTED_AT]?: number })[STARTED_AT]
  return started === undefined ? undefined : performance.now() - started
}

/**
 * The key lifecycle: create, verify, rotate with grace, revoke, emergency
 * rotation. The only owner of the verification cache's invalidation.
 */
export class Keyring {
  readonly options: ResolvedKeyringOptions
  readonly store: KeyStore
  readonly #cache: VerificationCache | null
  readonly #events: TypedEmitter
  readonly #proving = new Map<string, Promise<boolean | OverloadedError>>()
  readonly #proofs: SharedProofs | null
  readonly #argon2: Argon2Queue
  readonly #views = new WeakMap<KeyRecord, ApiKey>()
  readonly #graceEventAt: LRUCache<string, number>
  readonly #unsubscribe: (() => void) | undefined
  readonly #guard: AttemptGuard | null
  readonly #history: HistoryRecorder | null
  /** Opens when key reads fail with an outage: verifies then answer from the cache at once. */
  readonly #storeCircuit: Circuit
  /** The shared rate limiter with local counters behind it; `null` for an in-process limiter. */
  readonly #limiter: FallbackRateLimiter | null
  #staleVerifications = 0
  readonly #reset: StoreResetGuard
  readonly #inFlight = new InFlight()
  #closed = false

  constructor(options: KeyringOptions = {}) {
    this.options = resolveKeyringOptions(options)
    this.store = this.options.store
    this.#cache =
      this.options.cacheMaxEntries === 0
        ? null
        : new VerificationCache({
            maxProofs: this.options.cacheMaxEntries,
            maxStates: this.options.cacheMaxEntries,
            stateTtlMs: this.options.stateTtlMs,
            clock: this.options.clock,
            staleIfErrorMs: this.options.staleIfErrorMs,
            feedLive: () => this.#liveFeed(),
          })
    this.#events = new TypedEmitter((event, error) =>
      this.options.logger.error({ event, ...errorFields(error) }, 'keyrot event listener threw'),
    )
    this.#graceEventAt = new LRUCache({ max: 10_000 })
    this.#storeCircuit = this.#openStoreCircuit()
    this.#argon2 = new Argon2Queue(this.options.argon2)
    this.#proofs = this.options.proofKey ? new SharedProofs(this.options.proofKey) : null
    if (!this.#proofs) noteProofsOff(this.options.logger)
    const rateLimit = this.options.rateLimit
    this.#limiter = rateLimit && !(rateLimit.limiter instanceof MemoryRateLimiter) ? this.#fallbackLimiter(rateLimit.limiter) : null
    const guarded = rateLimit && this.#limiter ? { ...rateLimit, limiter: this.#limiter } : rateLimit
    this.#guard = guarded ? new AttemptGuard(guarded, this.options.clock, this.options.logger, this.#cache !== null) : null
    this.#reset = new StoreResetGuard({ store: this.store, clock: this.options.clock, logger: this.options.logger, emit: (event, payload) => this.#events.emit(event, payload) })
    // close() lets admin writes already started land before it releases the store.
    this.#inFlight.trackMethods(this as Keyring, ['create', 'createSigningSecret', 'rotate', 'emergencyRotate', 'revoke', 'setExpiry'])
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
    const expiresAt = checkTimestamp(input.expiresAt, 'expiresAt')
    if (expiresAt !== null && expiresAt <= now) throw new InvalidInputError('expiresAt', 'must be in the future')
    const draft = {
      tenantId: checkTenantId(input.tenantId),
      name: checkName(input.name),
      scopes: checkScopes(input.scopes),
      metadata: checkMetadata(input.metadata),
      rateLimit: checkRateLimit(input.rateLimit),
      prefix,
      expiresAt,
    }
    for (let attempt = 0; ; attempt++) {
      const { token, record } = await this.#mint(draft, newKeyId(), null, now)
      try {
        await this.store.insert(record)
        this.#reset.noteKnown(record.id)
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
    draft: Pick<KeyRecord, 'tenantId' | 'name' | 'scopes' | 'metadata' | 'rateLimit' | 'prefix' | 'expiresAt'>,
    id: string,
    rotatedFrom: string | null,
    now: number,
  ): Promise<{ token: string; record: KeyRecord }> {
    // A signing secret is kept encrypted, not hashed: HMAC needs the secret itself.
    const signing = draft.prefix === SIGNING_PREFIX
    const token = signing ? generateSigningSecret() : generateToken(draft.prefix, id)
    const hash = signing ? this.#sealer().seal(token, id) : await this.options.hasher.hash(token)
    const record: KeyRecord = {
      id,
      familyId: familyOf(id),
      tenantId: draft.tenantId,
      name: draft.name,
      prefix: draft.prefix,
      scopes: [...draft.scopes],
      metadata: draft.metadata,
      createdAt: now,
      expiresAt: draft.expiresAt,
      revokedAt: null,
      revokedReason: null,
      incidentId: null,
      rotatedFrom,
      rotatedTo: null,
      rotatedAt: null,
      rateLimit: draft.rateLimit,
      usageCount: 0,
      lastUsedAt: null,
      lastUsedInGraceAt: null,
      hash,
    }
    return { token, record }
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
  async verify(token: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const now = this.clock.now()
    // Timed only when someone listens; the start travels with the options to every emit below.
    // A child object (the caller's options as its prototype) costs a tenth of a spread.
    if (this.#events.has('verification.succeeded') || this.#events.has('verification.failed')) {
      const timed = Object.create(options) as VerifyOptions & { [STARTED_AT]?: number }
      timed[STARTED_AT] = performance.now()
      options = timed
    }
    const guard = this.#guard
    let keyId: string
    let prefix: string
    try {
      const parsed = parseToken(token)
      keyId = parsed.keyId
      prefix = parsed.prefix
    } catch (error) {
      // No I/O for a malformed token, but it is a failed attempt of its client (and a blocked client hears 429, not 401).
      if (guard) {
        let gate = this.#admit(guard, { ip: options.clientIp, keyId: undefined, digest: undefined, proven: false }, options, now)
        if (isPromise(gate)) gate = await gate
        if (!gate.ok) return this.#refuse(gate.error, undefined, undefined, options, now)
      }
      return this.#fail(error as KeyrotError, undefined, undefined, options, now)
    }

    const cache = this.#cache
    const digest = cache ? cache.digest(token) : guard ? guard.digest(token) : ''
    if (!guard) return this.#verifyParsed(token, keyId, prefix, digest, options, now)
    // The memory limiter answers synchronously: no tick is spent before the store read.
    let gate = this.#admit(guard, { ip: options.clientIp, keyId, digest, proven: cache?.proofOf(digest) === keyId }, options, now)
    if (isPromise(gate)) gate = await gate
    if (!gate.ok) return this.#refuse(gate.error, keyId, undefined, options, now)
    if (gate.known) {
      const error = gate.known.code === 'KEYROT_KEY_NOT_FOUND' ? new KeyNotFoundError(keyId) : new InvalidSecretError(keyId)
      return this.#fail(error, keyId, gate.known.tenantId, options, now)
    }
    const ticket: Ticket | null = gate.ticket
    if (!ticket) return this.#verifyParsed(token, keyId, prefix, digest, options, now)
    let guessed = false
    try {
      const result = await this.#verifyParsed(token, keyId, prefix, digest, options, now)
      // Only an unknown key id or a wrong secret is a guess; the right secret of an expired key, a missing scope or an outage is not.
      guessed = !result.ok && (result.error.code === 'KEYROT_KEY_NOT_FOUND' || result.error.code === 'KEYROT_INVALID_SECRET')
      return result
    } finally {
      const settled = guard.settle(ticket, guessed)
      if (isPromise(settled)) await settled
    }
  }

  async #verifyParsed(token: string, keyId: string, prefix: string, digest: string, options: VerifyOptions, now: number): Promise<VerifyResult> {
    const cache = this.#cache
    let record: KeyRecord | null
    let cached = false
    try {
      if (cache) {
        const hit = cache.cachedState(keyId)
        if (hit !== undefined) {
          // Trusted for at most cache.stateTtl, even while the feed is down.
          record = hit
          cached = true
        } else if (this.#liveFeed()) {
          record = await cache.state(keyId, (id) => this.#readKey(id))
        } else {
          // The invalidation feed is down (subscriber reconnecting, heartbeats
          // missed): a change published now would not reach us, so a state
          // read now is used once and not cached.
          record = await cache.state(keyId, (id) => this.#readKey(id), false)
        }
      } else {
        record = await this.#readKey(keyId)
      }
    } catch (error) {
      const failure = error instanceof StoreUnavailableError ? error : new StoreUnavailableError(undefined, { cause: error, keyId })
      record = this.#staleOrThrow(failure, keyId, digest, options, now)
      cached = true
    }
    if (record === null) {
      this.#guard?.rememberFailure(digest, { code: 'KEYROT_KEY_NOT_FOUND', tenantId: undefined })
      return this.#fail(new KeyNotFoundError(keyId), keyId, undefined, options, now)
    }

    if (!cache || cache.proofOf(digest) !== keyId) {
      cached = false
      const proven = record.prefix === prefix && (await this.#prove(digest, token, record))
      if (proven instanceof OverloadedError) return this.#fail(proven, keyId, record.tenantId, options, now)
      if (!proven) {
        this.#guard?.rememberFailure(digest, { code: 'KEYROT_INVALID_SECRET', tenantId: record.tenantId })
        return this.#fail(new InvalidSecretError(keyId), keyId, record.tenantId, options, now)
      }
    }

    if (record.revokedAt !== null) {
      return this.#fail(new KeyRevokedError(keyId, record.revokedAt, record.revokedReason), keyId, record.tenantId, options, now)
    }
    if (record.expiresAt !== null && record.expiresAt <= now) {
      if (this.#events.has('key.expired')) {
        this.#events.emit('key.expired', { keyId, tenantId: record.tenantId, expiredAt: record.expiresAt, at: now })
      }
      return this.#fail(new KeyExpiredError(keyId, record.expiresAt), keyId, record.tenantId, options, now)
    }
    const required = options.scopes ?? EMPTY
    if (required.length > 0) {
      const missing = required.filter((scope) => !record.scopes.includes(scope))
      if (missing.length > 0) {
        return this.#fail(new InsufficientScopeError(keyId, required, missing), keyId, record.tenantId, options, now)
      }
    }

    // The quota is spent last, by requests that passed every other check.
    let rateLimit: RateLimitInfo | undefined
    if (this.#guard) {
      let quota: QuotaOutcome
      try {
        const consumed = this.#guard.consume(keyId, record.rateLimit, now)
        quota = isPromise(consumed) ? await consumed : consumed
      } catch (error) {
        this.#emitFailure(error as KeyrotError, keyId, record.tenantId, options, now)
        throw error
      }
      if (!quota.ok) return this.#refuse(quota.error, keyId, record.tenantId, options, now)
      rateLimit = quota.rateLimit
    }

    const inGrace = record.rotatedTo !== null
    const rotationUse = rotationUseOf(record, now, options.clientIp, options.userAgent)
    if (rotationUse) this.store.recordUsage(keyId, now, inGrace, rotationUse)
    else this.store.recordUsage(keyId, now, inGrace)
    if (inGrace) this.#noteGraceUse(record, options, now)
    if (this.#events.has('verification.succeeded')) {
      this.#events.emit('verification.succeeded', {
        keyId,
        tenantId: record.tenantId,
        state: inGrace ? 'grace' : 'active',
        cached,
        clientIp: options.clientIp,
        userAgent: options.userAgent,
        durationMs: elapsedMs(options) ?? 0,
        at: now,
      })
    }
    return rateLimit ? { ok: true, key: this.#view(record), cached, rateLimit } : { ok: true, key: this.#view(record), cached }
  }

  /** The abuse checks before any store read; a limiter outage is reported like a store outage. */
  #admit(guard: AttemptGuard, input: Parameters<AttemptGuard['admit']>[0], context: RequestContext, now: number): Gate | Promise<Gate> {
    const outage = (error: unknown): never => {
      this.#emitFailure(error as KeyrotError, input.keyId, undefined, context, now)
      throw error
    }
    try {
      const gate = guard.admit(input, now)
      return isPromise(gate) ? gate.catch(outage) : gate
    } catch (error) {
      return outage(error)
    }
  }

  /** A refusal by a rate limit: `ratelimit.blocked` for alerting, then the usual failure report. */
  #refuse(error: RateLimitedError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult {
    if (this.#events.has('ratelimit.blocked')) {
      this.#events.emit('ratelimit.blocked', {
        code: error.code as 'KEYROT_RATE_LIMITED' | 'KEYROT_IP_BLOCKED',
        policy: error.policy,
        scope: error.scope,
        keyId,
        clientIp: context.clientIp,
        retryAfterMs: error.retryAfterMs,
        at: now,
      })
    }
    return this.#fail(error, keyId, tenantId, context, now)
  }

  /** A frozen public view of a record, built once per cached state. */
  #view(record: KeyRecord): ApiKey {
    let view = this.#views.get(record)
    if (!view) {
      view = Object.freeze(toApiKey(record, Number.NEGATIVE_INFINITY)) as ApiKey
      this.#views.set(record, view)
    }
    return view
  }

  /**
   * One proof per token at a time, shared by concurrent verifies of it: the
   * fleet's shared proof on the record (one HMAC) when it matches, else Argon2
   * through the bounded queue, whose proof is then shared. Returns (not throws)
   * `OverloadedError` when the queue cannot start the run in time. Says only
   * which key the token belongs to: the caller checks the record's state.
   */
  async #prove(digest: string, token: string, record: KeyRecord): Promise<boolean | OverloadedError> {
    const cache = this.#cache
    const hasher = this.options.hasher
    if (!cache) return this.#argon2.run(() => hasher.verify(record.hash, token)).catch(overloadedOnly)
    let pending = this.#proving.get(digest)
    if (!pending) {
      pending = (async () => {
        try {
          const proofs = this.#proofs
          if (proofs?.check(record, token) === 'hit') {
            cache.rememberProof(digest, record.id)
            return true
          }
          const ok = await this.#argon2.run(() => hasher.verify(record.hash, token))
          if (ok) {
            cache.rememberProof(digest, record.id)
            this.#maybeRehash(record, token)
            proofs?.share(this.store, record, token, this.options.logger)
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
  proofStats(): { argon2QueueLength: number; argon2Running: number; argon2Refused: number; sharedProofs: Record<SharedProofResult, number> | null } {
    return {
      argon2QueueLength: this.#argon2.length,
      argon2Running: this.#argon2.running,
      argon2Refused: this.#argon2.refused,
      sharedProofs: this.#proofs?.stats() ?? null,
    }
  }

  #maybeRehash(record: KeyRecord, token: string): void {
    const hasher = this.options.hasher
    if (!hasher.needsRehash?.(record.hash)) return
    void (async () => {
      try {
        await this.store.updateHash(record.id, await hasher.hash(token))
        this.#cache?.invalidate(record.id)
        this.options.logger.info({ event: 'key.rehashed', keyId: record.id }, 'keyrot re-hashed a key with the current parameters')
      } catch (error) {
        this.options.logger.warn({ event: 'key.rehash_failed', keyId: record.id, ...errorFields(error) }, 'keyrot could not re-hash a key')
      }
    })()
  }

  #noteGraceUse(record: KeyRecord, context: RequestContext, now: number): void {
    if (!this.#events.has('key.used_in_grace')) return
    const last = this.#graceEventAt.get(record.id)
    if (last !== undefined && now - last < this.options.graceUsageEventIntervalMs) return
    this.#graceEventAt.set(record.id, now)
    this.#events.emit('key.used_in_grace', {
      keyId: record.id,
      tenantId: record.tenantId,
      rotatedTo: record.rotatedTo,
      expiresAt: record.expiresAt as number,
      clientIp: context.clientIp,
      userAgent: context.userAgent,
      at: now,
    })
  }

  #fail(error: KeyrotError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult {
    this.#emitFailure(error, keyId, tenantId, context, now)
    return { ok: false, error, keyId }
  }

  #emitFailure(error: KeyrotError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): void {
    if (!this.#events.has('verification.failed')) return
    this.#events.emit('verification.failed', {
      code: error.code,
      keyId,
      tenantId,
      clientIp: context.clientIp,
      userAgent: context.userAgent,
      durationMs: elapsedMs(context),
      at: now,
    })
  }

  /**
   * Reports a request refused before `verify` (no key, malformed header) to
   * listeners, so metrics and audit logs see every attempt.
   */
  noteRequestFailure(error: KeyrotError, context: RequestContext = {}): void {
    this.#emitFailure(error, undefined, undefined, context, this.clock.now())
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
    const { token, record } = await this.#mint(successorDraft(old, options, now), newKeyId(old.familyId), old.id, now)
    // The grace period starts when the rotation is written, not before the
    // (slow, Argon2) hashing of the new token: clients get all of it.
    const at = Math.max(now, this.clock.now())
    restamp(record, now, at, options.expiresAt === undefined)
    const { previous, next } = await this.store.rotate({ oldKeyId: old.id, newKey: record, graceDeadline: at + gracePeriodMs, now: at })
    this.#reset.observe(previous, true)
    this.#reset.noteKnown(next.id)
    this.#cache?.invalidate(old.id)
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
    const { token, record } = await this.#mint(successorDraft(old, options, now), newKeyId(old.familyId), old.id, now)
    const at = Math.max(now, this.clock.now())
    restamp(record, now, at, options.expiresAt === undefined)
    const { revoked, next } = await this.store.emergencyRotate({ oldKeyId: old.id, newKey: record, at, reason, incidentId })
    this.#reset.observe(revoked, true)
    this.#reset.noteKnown(next.id)
    this.#cache?.invalidate(old.id)
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
    this.#cache?.invalidate(keyId)
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
    this.#cache?.invalidate(keyId)
    const key = toApiKey(record, now)
    this.#events.emit('key.expiry_changed', { key, previousExpiresAt: old.expiresAt, at: now })
    this.#audit('key.expiry_changed', { keyId, tenantId: key.tenantId, expiresAt: at, previousExpiresAt: old.expiresAt })
    await this.#history?.settled()
    return key
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
    return this.#cache?.stats() ?? { proofs: 0, states: 0, hits: 0, misses: 0 }
  }

  /** Refusals by rate-limit policy and negative-cache hits since start, for metrics and alerts; `null` when `rateLimit: false`. */
  rateLimitStats(): RateLimitStats | null {
    return this.#guard?.stats() ?? null
  }

  /** The abuse guard of `verify()`, shared by other credentials checked against this keyring (signed requests); `null` when `rateLimit: false`. */
  get abuseGuard(): AttemptGuard | null {
    return this.#guard
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
    this.#storeCircuit.close()
    await this.#history?.close()
    await this.#guard?.close()
    await this.store.close()
  }

  /**
   * Store and rate-limiter outages since start, for metrics: whether key
   * reads work now, outages seen, verifications answered from a stale
   * state, and rate-limit decisions taken by this replica's own counters.
   */
  outageStats(): { storeUp: boolean; storeOutages: number; staleVerifications: number; rateLimitFallbacks: number } {
    return {
      storeUp: !this.#storeCircuit.open,
      storeOutages: this.#storeCircuit.outages,
      staleVerifications: this.#staleVerifications,
      rateLimitFallbacks: this.#limiter?.fallbacks ?? 0,
    }
  }

  // ---------------------------------------------------------------- internals

  /** A key read through the store circuit: fails at once while the store is known to be down. */
  #readKey(keyId: string): Promise<KeyRecord | null> {
    return this.#storeCircuit.run(
      () => this.#reset.read(keyId),
      () => new StoreUnavailableError('The key store is unavailable (it is being probed in the background).', { keyId }),
    )
  }

  /**
   * Stale-if-error: while the store cannot answer (any `StoreUnavailableError`),
   * the last state this replica confirmed for the key answers, if the token
   * was proven here and the state is younger than `cache.staleIfError`. The
   * usual checks follow (revoked, `expiresAt`, scopes). Otherwise reports and
   * throws `failure` (503 with Retry-After).
   */
  #staleOrThrow(failure: StoreUnavailableError, keyId: string, digest: string, options: VerifyOptions, now: number): KeyRecord {
    const cache = this.#cache
    const stale = cache !== null && cache.proofOf(digest) === keyId ? cache.staleState(keyId) : undefined
    if (stale === undefined) {
      this.#emitFailure(failure, keyId, undefined, options, now)
      throw failure
    }
    this.#staleVerifications++
    return stale
  }

  #openStoreCircuit(): Circuit {
    const probeId = newKeyId()
    return new Circuit({
      clock: this.options.clock,
      // A refusal the store gave (a reset it detected, bad input) is an answer, not an outage.
      isOutage: (error) => !(error instanceof KeyrotError) || error.code === 'KEYROT_STORE_UNAVAILABLE',
      probe: () => this.store.get(probeId),
      onOpen: (error, at) => {
        const code = error instanceof KeyrotError ? error.code : 'KEYROT_STORE_UNAVAILABLE'
        this.options.logger.error({ event: 'store.down', code, ...errorFields(error) }, 'keyrot lost the key store; answering from confirmed states')
        this.#events.emit('store.down', { code, at })
        // The limiter usually shares the store's Redis: its requests need not each wait a timeout to find out.
        this.#limiter?.trip()
      },
      onClose: (downtimeMs, at) => {
        this.options.logger.warn({ event: 'store.up', downtimeMs }, 'keyrot reaches the key store again')
        this.#events.emit('store.up', { downtimeMs, at })
      },
    })
  }

  #fallbackLimiter(shared: RateLimiter): FallbackRateLimiter {
    return new FallbackRateLimiter(shared, {
      clock: this.options.clock,
      onFallback: (at) => {
        this.options.logger.error({ event: 'ratelimit.fallback', phase: 'start' }, "keyrot lost the shared rate limiter; limits use this replica's counters")
        this.#events.emit('ratelimit.fallback', { phase: 'start', downtimeMs: undefined, at })
      },
      onRecover: (downtimeMs, at) => {
        this.options.logger.warn({ event: 'ratelimit.fallback', phase: 'end', downtimeMs }, 'keyrot reaches the shared rate limiter again')
        this.#events.emit('ratelimit.fallback', { phase: 'end', downtimeMs, at })
      },
    })
  }

  #liveFeed(): boolean {
    const live = this.store.invalidationLive
    return live === undefined || live.call(this.store) !== false
  }

  #onInvalidation(event: InvalidationEvent): void {
    // Cached states stay: they are this replica's latest truth, newer than a rolled-back store's.
    if (event.type === 'store-reset') return this.#reset.onStoreReset(event)
    if (event.type === 'key') {
      this.#cache?.invalidate(event.keyId)
      this.#reset.refresh(event.keyId)
      if (this.#events.has('invalidation.received')) {
        const at = this.clock.now()
        const lagMs = typeof event.sentAt === 'number' && Number.isFinite(event.sentAt) ? Math.max(0, at - event.sentAt) : undefined
        this.#events.emit('invalidation.received', { keyId: event.keyId, lagMs, at })
      }
    } else {
      this.#cache?.invalidateAll()
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

function overloadedOnly(error: unknown): OverloadedError {
  if (error instanceof OverloadedError) return error
  throw error
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
