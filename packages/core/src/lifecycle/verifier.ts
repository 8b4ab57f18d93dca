import { VerificationCache } from '../cache/verification-cache.js'
import {
  InsufficientScopeError,
  InvalidSecretError,
  IpNotAllowedError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyrotError,
  KeyRevokedError,
  MalformedTokenError,
  OverloadedError,
  StoreUnavailableError,
} from '../errors.js'
import type { RequestContext, TypedEmitter } from '../events.js'
import type { ResolvedKeyringOptions } from '../options.js'
import type { FallbackRateLimiter } from '../rate-limit/fallback-limiter.js'
import { AttemptGuard, isPromise, type Gate, type QuotaOutcome, type RateLimitStats, type Ticket } from '../rate-limit/guard.js'
import type { RateLimitInfo } from '../rate-limit/headers.js'
import { MemoryRateLimiter } from '../rate-limit/memory-limiter.js'
import type { CreditsConfig, CreditsState } from '../credits/credits.js'
import type { Circuit } from '../store/circuit.js'
import { rotationUseOf } from '../store/rotation-usage.js'
import type { KeyStore } from '../store/store.js'
import { hasValidChecksum, KEY_ID_LENGTH, keyIdOffset, parseToken, tokenLayout } from '../token/format.js'
import type { ApiKey, KeyRecord } from '../types.js'
import type { RotationDue } from '../policy/policy-options.js'
import type { VerifyOptions, VerifyResult } from './keyring-types.js'
import { spendCredits } from './credits.js'
import { fallbackLimiter, openStoreCircuit } from './outage.js'
import { RotationPolicyCheck } from './rotation-policy.js'
import { ipAllowed } from './allowed-ips.js'
import { ImportedTokens } from './imported-keys.js'
import { KeyReads, storeFeedLive } from './key-reads.js'
import { Prover } from './prover.js'
import { elapsedMs, timed, VerifyReporter } from './verify-reporter.js'

export interface VerifierOptions {
  options: ResolvedKeyringOptions
  /** The keyring's emitter: verification, outage and rate-limit events. */
  events: TypedEmitter
  /** Reads a key's state from the store as this replica may trust it (tightened by the store-reset guard). */
  read: (keyId: string) => Promise<KeyRecord | null>
}

/**
 * The verify path of a keyring: format, abuse guard, cached proof and state,
 * store read (through the store circuit, stale-if-error on an outage),
 * status and expiry, proof (shared proof or bounded Argon2), scopes, quota.
 * It reads the store and never writes key state (usage, shared proofs and
 * re-hashes aside). The `Keyring` owns the lifecycle and is the only caller
 * of `invalidate`/`invalidateAll`: the arrows point from keyring.ts to here.
 */
export class Verifier {
  readonly options: ResolvedKeyringOptions
  readonly store: KeyStore
  readonly #events: TypedEmitter
  readonly #cache: VerificationCache | null
  readonly #prover: Prover
  readonly #report: VerifyReporter
  readonly #guard: AttemptGuard | null
  /** Opens when key reads fail with an outage: verifies then answer from the cache at once. */
  readonly #storeCircuit: Circuit
  /** The shared rate limiter with local counters behind it; `null` for an in-process limiter. */
  readonly #limiter: FallbackRateLimiter | null
  /** Key reads through the circuit and the cache, stale-if-error (key-reads.ts). */
  readonly #reads: KeyReads
  /** The rotation policy (rotation-policy.ts); `null` without `policy`: no cost on verify. */
  readonly rotationPolicy: RotationPolicyCheck | null
  /** Tokens of imported keys (not in keyrot format); `null` when no `importedPrefixes` are set. */
  readonly #imported: ImportedTokens | null

  constructor({ options, events, read }: VerifierOptions) {
    this.options = options
    this.store = options.store
    this.#events = events
    this.#cache =
      options.cacheMaxEntries === 0
        ? null
        : new VerificationCache({
            maxEntries: options.cacheMaxEntries,
            stateTtlMs: options.stateTtlMs,
            clock: options.clock,
            staleIfErrorMs: options.staleIfErrorMs,
            feedLive: () => storeFeedLive(this.store),
          })
    this.#report = new VerifyReporter(events, options.graceUsageEventIntervalMs)
    // The limiter usually shares the store's Redis: once the store is down, its requests need not each wait a timeout to find out.
    this.#storeCircuit = openStoreCircuit(options, events, () => this.#limiter?.trip())
    this.#reads = new KeyReads({ store: this.store, read, circuit: this.#storeCircuit, cache: this.#cache, report: this.#report })
    this.#prover = new Prover(options, this.#cache)
    const rateLimit = options.rateLimit
    this.#limiter = rateLimit && !(rateLimit.limiter instanceof MemoryRateLimiter) ? fallbackLimiter(rateLimit.limiter, options, events) : null
    const guarded = rateLimit && this.#limiter ? { ...rateLimit, limiter: this.#limiter } : rateLimit
    this.#guard = guarded ? new AttemptGuard(guarded, options.clock, options.logger, this.#cache !== null) : null
    this.rotationPolicy = options.policy
      ? new RotationPolicyCheck({ options: options.policy, store: this.store, events, logger: options.logger, now: () => options.clock.now() })
      : null
    this.#imported = options.imports.prefixes.length === 0 ? null : this.#importedTokens()
  }

  #importedTokens(): ImportedTokens {
    const port = {
      cache: this.#cache,
      guard: this.#guard,
      admit: this.#admit.bind(this),
      refuse: this.#report.refuse.bind(this.#report),
      fail: this.#report.fail.bind(this.#report),
      verifyKeyId: this.#verifyParsed.bind(this),
    }
    return new ImportedTokens({ ...this.options.imports, store: this.store, port, maxEntries: Math.max(1_000, this.options.cacheMaxEntries) })
  }

  /** Drops a key's cached state (never its proofs) and poisons a load of it in flight. */
  invalidate(keyId: string): void {
    this.#cache?.invalidate(keyId)
  }

  /** Drops every cached state (the feed may have lost messages). */
  invalidateAll(): void {
    this.#cache?.invalidateAll()
  }

  /** Stops the store circuit's probe and closes the rate limiter. */
  async close(): Promise<void> {
    this.#storeCircuit.close()
    await this.#guard?.close()
  }

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
    try {
      const result = this.verifyNow(token, options)
      return isPromise(result) ? result : Promise.resolve(result)
    } catch (error) {
      // An outage found synchronously rejects, as it always has: verify() never throws.
      return Promise.reject(error)
    }
  }

  /**
   * {@link verify}, answered synchronously when nothing needs to wait: a
   * cache hit (proof and state cached) with the in-process rate limiter.
   * Otherwise a promise, as `verify()`. The HTTP adapters use it so a cache
   * hit costs no promise and no microtask.
   */
  verifyNow(token: string, options: VerifyOptions = {}): VerifyResult | Promise<VerifyResult> {
    const now = this.options.clock.now()
    // Timed only when someone listens; the start travels with the options to every emit below.
    // A child object (the caller's options as its prototype) costs a tenth of a spread.
    if (this.#events.has('verification.succeeded') || this.#events.has('verification.failed')) {
      options = timed(options)
    }
    // A token of an imported key (not in keyrot format, with an imported prefix): `null` when no importedPrefixes are set.
    if (this.#imported?.claims(token)) return this.#imported.verify(token, options, now)
    const cache = this.#cache
    let digest: string | undefined
    // The cache hit scans nothing: a token whose digest matches the one proven for the key id at its place is that very token.
    const at = cache !== null && typeof token === 'string' ? keyIdOffset(token) : -1
    if (cache !== null && at !== -1) {
      digest = cache.digest(token)
      // The slice only looks the id up; what goes on is the cache's own string (see ownString in token/format.ts).
      const id = cache.provenId(token.slice(at, at + KEY_ID_LENGTH), digest)
      if (id !== undefined) return this.#parsed(token, id, token.slice(0, at - 1), digest, true, options, now)
    }
    let keyId: string
    let prefix: string
    let checksummed = false
    const layout = tokenLayout(token)
    if (layout !== null) {
      keyId = layout.keyId
      prefix = layout.prefix
    } else {
      try {
        const parsed = parseToken(token)
        keyId = parsed.keyId
        prefix = parsed.prefix
        checksummed = true
      } catch (error) {
        // Not keyrot's format: a check for tokens in other formats would go here, before the refusal.
        return this.#malformed(error as KeyrotError, options, now)
      }
    }
    // Not proven here (a well-formed token's key id is where the hit path looked): it needs its CRC32.
    if (!checksummed && !hasValidChecksum(token)) return this.#malformed(new MalformedTokenError('checksum mismatch'), options, now)
    digest ??= cache ? cache.digest(token) : this.#guard ? this.#guard.digest(token) : ''
    return this.#parsed(token, keyId, prefix, digest, false, options, now)
  }

  /** A well-formed token (`proven`: here before): the abuse checks, then its key's state. */
  #parsed(token: string, keyId: string, prefix: string, digest: string, proven: boolean, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    const guard = this.#guard
    if (!guard) return this.#checkParsed(token, keyId, prefix, digest, proven, options, now)
    // The memory limiter answers synchronously: no tick is spent before the store read.
    const gate = this.#admit(guard, { ip: options.clientIp, keyId, digest, proven }, options, now)
    if (isPromise(gate)) {
      const cache = this.#cache
      // The cache may have changed while the limiter answered: look at the proof again, and judge at the time the answer came.
      return gate.then((decided) => this.#gated(guard, decided, token, keyId, prefix, digest, cache !== null && cache.proven(keyId, digest), options, this.#later(now)))
    }
    return this.#gated(guard, gate, token, keyId, prefix, digest, proven, options, now)
  }

  /** A malformed token: no I/O, but a failed attempt of its client (and a blocked client hears 429, not 401). */
  async #malformed(error: KeyrotError, options: VerifyOptions, now: number): Promise<VerifyResult> {
    const guard = this.#guard
    if (guard) {
      let gate = this.#admit(guard, { ip: options.clientIp, keyId: undefined, digest: undefined, proven: false }, options, now)
      if (isPromise(gate)) gate = await gate
      if (!gate.ok) return this.#report.refuse(gate.error, undefined, undefined, options, now)
    }
    return this.#report.fail(error, undefined, undefined, options, now)
  }

  /** After admission: refused, known bad, or on to the checks (settling the charge, if any, once the verdict is known). */
  #gated(guard: AttemptGuard, gate: Gate, token: string, keyId: string, prefix: string, digest: string, proven: boolean, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (!gate.ok) return this.#report.refuse(gate.error, keyId, undefined, options, now)
    if (gate.known) {
      const error = gate.known.code === 'KEYROT_KEY_NOT_FOUND' ? new KeyNotFoundError(keyId) : new InvalidSecretError(keyId)
      return this.#report.fail(error, keyId, gate.known.tenantId, options, now)
    }
    const ticket: Ticket | null = gate.ticket
    if (!ticket) return this.#checkParsed(token, keyId, prefix, digest, proven, options, now)
    return this.#settled(guard, ticket, token, keyId, prefix, digest, options, now)
  }

  async #settled(guard: AttemptGuard, ticket: Ticket, token: string, keyId: string, prefix: string, digest: string, options: VerifyOptions, now: number): Promise<VerifyResult> {
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

  /** The cache hit answers at once (no promise); anything else takes the store path. */
  #checkParsed(token: string, keyId: string, prefix: string, digest: string, proven: boolean, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (proven) {
      // Trusted for at most cache.stateTtl, even while the feed is down.
      const hit = (this.#cache as VerificationCache).cachedState(keyId, now)
      if (hit !== undefined) return this.#accept(hit, keyId, true, options, now)
      return this.#verifyParsed(token, keyId, prefix, digest, options, now, true)
    }
    return this.#verifyParsed(token, keyId, prefix, digest, options, now)
  }

  /**
   * The store path: the key's state (cached, read, or stale on an outage),
   * then the proof. A token not proven here needs the record's hash, which
   * the cache does not keep: its first verify always reads the store.
   * `missed`: the cache was just asked for the state, and had none.
   */
  async #verifyParsed(token: string, keyId: string, prefix: string, digest: string, options: VerifyOptions, now: number, missed = false): Promise<VerifyResult> {
    const cache = this.#cache
    let key: ApiKey
    let record: KeyRecord | null = null
    let cached = false
    try {
      const known = cache !== null && cache.proven(keyId, digest)
      const hit = known && !missed ? cache.cachedState(keyId) : undefined
      if (hit !== undefined) {
        // Trusted for at most cache.stateTtl, even while the feed is down.
        key = hit
        cached = true
      } else {
        const loaded = await this.#reads.load(keyId)
        if (loaded === null) {
          this.#guard?.rememberFailure(digest, { code: 'KEYROT_KEY_NOT_FOUND', tenantId: undefined })
          return this.#report.fail(new KeyNotFoundError(keyId), keyId, undefined, options, now)
        }
        key = loaded.key
        record = loaded.record
      }
    } catch (error) {
      const failure = error instanceof StoreUnavailableError ? error : new StoreUnavailableError(undefined, { cause: error, keyId })
      // A stale state is judged at the time the read gave up, not when it began.
      now = this.#later(now)
      key = this.#reads.staleOrThrow(failure, keyId, digest, options, now)
      cached = true
    }

    if (record !== null && !(cache !== null && cache.proven(keyId, digest))) {
      // An imported key's legacy prefix is the operator's word (a shorter listed prefix may start the token): the hash proves the rest.
      const prefixOk = record.prefix === prefix || (record.importIndex !== undefined && token.startsWith(record.prefix))
      const proven = prefixOk && (await this.#prover.prove(digest, token, record))
      if (proven instanceof OverloadedError) return this.#report.fail(proven, keyId, record.tenantId, options, now)
      if (!proven) {
        this.#guard?.rememberFailure(digest, { code: 'KEYROT_INVALID_SECRET', tenantId: record.tenantId })
        return this.#report.fail(new InvalidSecretError(keyId), keyId, record.tenantId, options, now)
      }
    }
    // Judged when the answers arrived (store, proof): a deadline passed meanwhile (or a store's "expired just now") counts.
    return this.#accept(key, keyId, cached, options, this.#later(now))
  }

  /**
   * Everything after the secret is proven, for the cache hit and the store
   * path alike: status and expiry, scopes, then (the one place for checks
   * that need a proven secret, such as per-key IP allowlists or credits) the
   * quota last, usage and the success event. A check that only some keys
   * use tests its record field first, so other keys pay one comparison; one
   * that waits returns a promise, as the quota does with a shared limiter.
   */
  #accept(record: ApiKey, keyId: string, cached: boolean, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (record.revokedAt !== null) {
      return this.#report.fail(new KeyRevokedError(keyId, record.revokedAt, record.revokedReason), keyId, record.tenantId, options, now)
    }
    const lapsed = this.#lapsed(record, keyId, options, now)
    if (lapsed !== undefined) return lapsed
    // After the proof: only a caller holding the secret learns that the key is bound to networks.
    if (record.allowedIps !== undefined && !ipAllowed(record.allowedIps, options.clientIp)) {
      return this.#report.fail(new IpNotAllowedError(keyId), keyId, record.tenantId, options, now)
    }
    const policy = this.rotationPolicy
    if (policy === null) return this.#checkScopes(record, keyId, cached, undefined, options, now)
    const due = policy.check(record, now)
    if (isPromise(due)) {
      return due.then((settled) => {
        const later = this.#later(now)
        return this.#lapsed(record, keyId, options, later) ?? this.#checkScopes(record, keyId, cached, settled, options, later)
      })
    }
    return this.#checkScopes(record, keyId, cached, due, options, now)
  }

  /**
   * The key's expiry or grace deadline has passed at `now`: fails it as expired. Asked again after each wait in the
   * checks (a tenant's policy read, a shared quota); not after credits, spent atomically after every check by a
   * request valid when it spent.
   */
  #lapsed(record: ApiKey, keyId: string, options: VerifyOptions, now: number): VerifyResult | undefined {
    const expiredAt = record.expiresAt
    if (expiredAt === null || expiredAt > now) return undefined
    if (this.#events.has('key.expired')) this.#events.emit('key.expired', { keyId, tenantId: record.tenantId, expiredAt, at: now })
    return this.#report.fail(new KeyExpiredError(keyId, expiredAt), keyId, record.tenantId, options, now)
  }

  /** The time after a wait: never earlier than the verify's own. */
  #later(now: number): number {
    return Math.max(now, this.options.clock.now())
  }

  /** After the rotation policy (`rotation`: the key is due; enforced and overdue, it fails as expired): scopes, then the quota. */
  #checkScopes(record: ApiKey, keyId: string, cached: boolean, rotation: RotationDue | undefined, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (rotation !== undefined && rotation.overdue && rotation.enforced) {
      return this.#report.fail(new KeyExpiredError(keyId, rotation.dueAt), keyId, record.tenantId, options, now)
    }
    const required = options.scopes
    if (required !== undefined && required.length > 0) {
      const missing = required.filter((scope) => !record.scopes.includes(scope))
      if (missing.length > 0) {
        return this.#report.fail(new InsufficientScopeError(keyId, required, missing), keyId, record.tenantId, options, now)
      }
    }

    // The quota is spent last, by requests that passed every other check.
    const guard = this.#guard
    if (guard === null) {
      if (record.credits) return this.#spendCredits(record, keyId, cached, undefined, rotation, options, now)
      return this.#succeed(record, keyId, cached, undefined, rotation, undefined, options, now)
    }
    let quota: QuotaOutcome | Promise<QuotaOutcome>
    try {
      quota = guard.consume(record.id, record.rateLimit, now)
    } catch (error) {
      this.#report.emitFailure(error as KeyrotError, keyId, record.tenantId, options, now)
      throw error
    }
    if (!isPromise(quota)) return this.#spent(quota, record, keyId, cached, rotation, options, now)
    return quota.then(
      (spent) => {
        const later = this.#later(now)
        return this.#lapsed(record, keyId, options, later) ?? this.#spent(spent, record, keyId, cached, rotation, options, later)
      },
      (error: unknown) => {
        this.#report.emitFailure(error as KeyrotError, keyId, record.tenantId, options, now)
        throw error
      },
    )
  }

  #spent(quota: QuotaOutcome, record: ApiKey, keyId: string, cached: boolean, rotation: RotationDue | undefined, options: VerifyOptions, now: number): VerifyResult | Promise<VerifyResult> {
    if (!quota.ok) return this.#report.refuse(quota.error, keyId, record.tenantId, options, now)
    if (record.credits) return this.#spendCredits(record, keyId, cached, quota.rateLimit, rotation, options, now)
    return this.#succeed(record, keyId, cached, quota.rateLimit, rotation, undefined, options, now)
  }

  /** Credits after everything else: a refused request spends none. Keys without credits never come here. */
  async #spendCredits(record: ApiKey, keyId: string, cached: boolean, rateLimit: RateLimitInfo | undefined, rotation: RotationDue | undefined, options: VerifyOptions, now: number): Promise<VerifyResult> {
    const spent = await spendCredits(this.store, record as ApiKey & { credits: CreditsConfig }, options.cost, now).catch((error: unknown) => {
      // A store outage is reported like a failed read; a bad `cost` is the caller's TypeError.
      if (error instanceof KeyrotError) this.#report.emitFailure(error, keyId, record.tenantId, options, now)
      throw error
    })
    if (!spent.ok) return this.#report.fail(spent.error, keyId, record.tenantId, options, now)
    return this.#succeed(record, keyId, cached, rateLimit, rotation, spent.credits, options, now)
  }

  /** Counts the use, reports it, and answers with the key's public view. */
  #succeed(record: ApiKey, keyId: string, cached: boolean, rateLimit: RateLimitInfo | undefined, rotation: RotationDue | undefined, credits: CreditsState | undefined, options: VerifyOptions, now: number): VerifyResult {
    const inGrace = record.rotatedTo !== null
    const rotationUse = rotationUseOf(record, now, options.clientIp, options.userAgent)
    if (rotationUse) this.store.recordUsage(record.id, now, inGrace, rotationUse)
    else this.store.recordUsage(record.id, now, inGrace)
    if (inGrace) this.#report.noteGraceUse(record, options, now)
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
    const result: Extract<VerifyResult, { ok: true }> = rateLimit ? { ok: true, key: record, cached, rateLimit } : { ok: true, key: record, cached }
    if (credits) result.credits = credits
    if (rotation) result.rotation = rotation
    return result
  }

  /** The abuse checks before any store read; a limiter outage is reported like a store outage. */
  #admit(guard: AttemptGuard, input: Parameters<AttemptGuard['admit']>[0], context: RequestContext, now: number): Gate | Promise<Gate> {
    let gate: Gate | Promise<Gate>
    try {
      gate = guard.admit(input, now)
    } catch (error) {
      return this.#limiterOutage(error, input.keyId, context, now)
    }
    return isPromise(gate) ? gate.catch((error: unknown) => this.#limiterOutage(error, input.keyId, context, now)) : gate
  }

  #limiterOutage(error: unknown, keyId: string | undefined, context: RequestContext, now: number): never {
    this.#report.emitFailure(error as KeyrotError, keyId, undefined, context, now)
    throw error
  }

  /** The Argon2 queue and the shared proofs' outcomes since start, for metrics (`sharedProofs` is `null` when no proof key is set). */
  proofStats(): ReturnType<Prover['stats']> {
    return this.#prover.stats()
  }

  /**
   * Reports a request refused before `verify` (no key, malformed header) to
   * listeners, so metrics and audit logs see every attempt.
   */
  noteRequestFailure(error: KeyrotError, context: RequestContext = {}): void {
    this.#report.emitFailure(error, undefined, undefined, context, this.options.clock.now())
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
   * Store and rate-limiter outages since start, for metrics: whether key
   * reads work now, outages seen, verifications answered from a stale
   * state, and rate-limit decisions taken by this replica's own counters.
   */
  outageStats(): { storeUp: boolean; storeOutages: number; staleVerifications: number; rateLimitFallbacks: number } {
    return {
      storeUp: !this.#storeCircuit.open,
      storeOutages: this.#storeCircuit.outages,
      staleVerifications: this.#reads.staleVerifications,
      rateLimitFallbacks: this.#limiter?.fallbacks ?? 0,
    }
  }
}
