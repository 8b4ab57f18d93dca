import { createHash } from 'node:crypto'
import { createTokenDigester } from '../cache/token-digest.js'
import type { Clock } from '../clock.js'
import { RateLimitedError, StoreUnavailableError } from '../errors.js'
import { errorFields, type Logger } from '../logger.js'
import type { RateLimitInfo } from './headers.js'
import type { Admission, Attempt, Charge, MaybePromise, Quota, QuotaDecision, RateLimitPolicy } from './limiter.js'
import { NegativeCache, type KnownBadToken } from './negative-cache.js'
import type { ResolvedRateLimitOptions } from './options.js'

/** An admitted attempt whose charge awaits the verdict. */
export interface Ticket {
  charge: Charge
  digest: string | undefined
}

export type Gate =
  | {
      ok: true
      /** Set when counters were charged: settle it once the verdict is known. */
      ticket: Ticket | null
      /** The token failed moments ago: refuse it without a store read or hashing. */
      known: KnownBadToken | undefined
    }
  | { ok: false; error: RateLimitedError }

export type QuotaOutcome = { ok: true; rateLimit: RateLimitInfo | undefined } | { ok: false; error: RateLimitedError }

/** Longest client IP used as is in a counter's name (an IPv6 address with a zone id fits). */
const MAX_IP_LENGTH = 64

/** A client IP as a bounded counter name: a `clientIp()` option may return anything. */
function counterName(ip: string): string {
  return ip.length <= MAX_IP_LENGTH ? ip : `sha256:${createHash('sha256').update(ip).digest('base64url')}`
}

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

export interface RateLimitStats {
  /** Requests refused, by policy, since the keyring started. */
  refused: Record<RateLimitPolicy, number>
  /** Wrong tokens refused from the negative cache (no store read, no hashing). */
  negativeCacheHits: number
  negativeCacheSize: number
}

/**
 * Runs the abuse checks of `Keyring.verify`: the admission before any work,
 * the negative cache, the refund of a charge that was no guess, and the
 * per-key quota last. Counting lives in the {@link RateLimiter}; this class
 * decides what to ask it.
 *
 * Charges are made per distinct token: while one attempt with a token is in
 * flight, concurrent attempts with the same token ride on it (they share its
 * store read and Argon2 run, so they add no work) and are neither checked nor
 * charged: a client's burst of parallel requests with a fresh, valid token
 * is not mistaken for guessing. Without a verification cache there is no
 * such sharing, and every attempt is checked and charged.
 */
export class AttemptGuard {
  readonly #config: ResolvedRateLimitOptions
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #negative: NegativeCache | null
  readonly #inFlight = new Set<string>()
  readonly #refused: Record<RateLimitPolicy, number> = { 'ip-block': 0, 'ip-failures': 0, 'key-failures': 0, 'per-key': 0 }
  #digest: ((token: string) => string) | undefined

  readonly #sharesInFlight: boolean

  /** @param sharesInFlight concurrent verifies of one token share one store read and one Argon2 run (the keyring has a verification cache). */
  constructor(config: ResolvedRateLimitOptions, clock: Clock, logger: Logger, sharesInFlight: boolean) {
    this.#config = config
    this.#sharesInFlight = sharesInFlight
    this.#clock = clock
    this.#logger = logger
    this.#negative =
      config.negativeCacheTtlMs === 0 ? null : new NegativeCache({ ttlMs: config.negativeCacheTtlMs, maxEntries: config.negativeCacheMaxEntries, clock })
  }

  /** A salted digest of a token, for keyrings without a verification cache (which has its own). */
  digest(token: string): string {
    this.#digest ??= createTokenDigester()
    return this.#digest(token)
  }

  /**
   * Before any store read or hashing: is this client or key locked out? An
   * admitted attempt with an unproven token is charged as a failure now and
   * refunded by {@link settle} if it turns out not to be one. Answers
   * synchronously when the limiter does.
   *
   * @param input.keyId `undefined` for a malformed token.
   * @param input.proven the token was proven by Argon2 in this process: only the IP limits apply, nothing is charged.
   */
  admit(input: { ip: string | undefined; keyId: string | undefined; digest: string | undefined; proven: boolean }, now: number): MaybePromise<Gate> {
    const { failures } = this.#config
    const ip = input.ip !== undefined && input.ip !== '' && (failures.failuresPerIp !== null || failures.ipBlock !== null) ? counterName(input.ip) : undefined
    if (this.#sharesInFlight && input.digest !== undefined && this.#inFlight.has(input.digest)) return { ok: true, ticket: null, known: undefined }
    const known = input.digest === undefined || input.proven ? undefined : this.#negative?.get(input.digest)
    const keyId = input.proven || failures.failuresPerKey === null ? undefined : input.keyId
    const attempt: Attempt = {
      ip,
      keyId,
      chargeIp: ip !== undefined && !input.proven,
      // A known-bad token reaches neither the store nor Argon2: it spends nothing of the key's budget.
      chargeKey: keyId !== undefined && known === undefined,
    }
    if (attempt.ip === undefined && attempt.keyId === undefined) return { ok: true, ticket: null, known }
    const gate = (admission: Admission): Gate => this.#gate(admission, attempt, input, known, now)
    const unavailable = (error: unknown): never => {
      throw new StoreUnavailableError('The rate limiter is unavailable.', { cause: error, ...(input.keyId ? { keyId: input.keyId } : {}) })
    }
    let admission: MaybePromise<Admission>
    try {
      admission = this.#config.limiter.admit(attempt, failures, now)
    } catch (error) {
      return unavailable(error)
    }
    return isPromise(admission) ? admission.then(gate, unavailable) : gate(admission)
  }

  #gate(admission: Admission, attempt: Attempt, input: { keyId: string | undefined; digest: string | undefined }, known: KnownBadToken | undefined, now: number): Gate {
    if (!admission.allowed) {
      this.#refused[admission.policy]++
      const scope = admission.policy === 'key-failures' ? 'key' : 'ip'
      const error = new RateLimitedError(admission.policy === 'ip-block' ? 'KEYROT_IP_BLOCKED' : 'KEYROT_RATE_LIMITED', {
        policy: admission.policy,
        scope,
        limit: admission.limit,
        windowMs: admission.windowMs,
        remaining: 0,
        retryAfterMs: admission.retryAfterMs,
        resetMs: admission.retryAfterMs,
        ...(scope === 'key' && input.keyId ? { keyId: input.keyId } : {}),
      })
      return { ok: false, error }
    }
    // Nothing charged, or a charge that stands at once (a malformed or known-bad token: no verdict to wait for).
    if ((!attempt.chargeIp && !attempt.chargeKey) || known !== undefined || input.digest === undefined) return { ok: true, ticket: null, known }
    const charge: Charge = { ip: attempt.chargeIp ? attempt.ip : undefined, keyId: attempt.chargeKey ? attempt.keyId : undefined, chargedAt: now }
    if (!this.#sharesInFlight) return { ok: true, ticket: { charge, digest: undefined }, known }
    this.#inFlight.add(input.digest)
    return { ok: true, ticket: { charge, digest: input.digest }, known }
  }

  /** Remembers a token that failed (unknown key id, wrong secret). */
  rememberFailure(digest: string, entry: KnownBadToken): void {
    this.#negative?.remember(digest, entry)
  }

  /**
   * Closes an admitted attempt: a failure keeps its charge, anything else
   * (success, expired or revoked key with the right secret, missing scope,
   * store outage) is refunded. A refund that fails is logged, never thrown:
   * the caller's verdict stands.
   */
  settle(ticket: Ticket, failed: boolean): MaybePromise<void> {
    if (ticket.digest !== undefined) this.#inFlight.delete(ticket.digest)
    if (failed) return
    const warn = (error: unknown): void => {
      this.#logger.warn({ event: 'ratelimit.release_failed', ...errorFields(error) }, 'keyrot could not refund a rate-limit charge')
    }
    try {
      const released = this.#config.limiter.release(ticket.charge, this.#config.failures, this.#clock.now())
      if (isPromise(released)) return released.then(undefined, warn)
    } catch (error) {
      warn(error)
    }
  }

  /**
   * Takes one request from the key's quota: its own `rateLimit`, or the
   * keyring's `perKey` default. `rateLimit` is `undefined` when neither
   * applies.
   */
  consume(keyId: string, own: Quota | null, now: number): MaybePromise<QuotaOutcome> {
    const quota = own ?? this.#config.perKey
    if (quota === null) return { ok: true, rateLimit: undefined }
    const unavailable = (error: unknown): never => {
      throw new StoreUnavailableError('The rate limiter is unavailable.', { cause: error, keyId })
    }
    let decision: MaybePromise<QuotaDecision>
    try {
      decision = this.#config.limiter.consume(keyId, quota, now)
    } catch (error) {
      return unavailable(error)
    }
    const outcome = (decided: QuotaDecision) => this.#quotaOutcome(keyId, decided)
    return isPromise(decision) ? decision.then(outcome, unavailable) : outcome(decision)
  }

  #quotaOutcome(keyId: string, decision: QuotaDecision): QuotaOutcome {
    if (decision.allowed) {
      const { limit, windowMs, remaining, resetMs } = decision
      return { ok: true, rateLimit: { policy: 'per-key', limit, windowMs, remaining, resetMs } }
    }
    this.#refused['per-key']++
    return {
      ok: false,
      error: new RateLimitedError('KEYROT_RATE_LIMITED', {
        policy: 'per-key',
        scope: 'key',
        keyId,
        limit: decision.limit,
        windowMs: decision.windowMs,
        remaining: 0,
        retryAfterMs: decision.retryAfterMs,
        resetMs: decision.resetMs,
      }),
    }
  }

  stats(): RateLimitStats {
    const negative = this.#negative?.stats() ?? { size: 0, hits: 0 }
    return { refused: { ...this.#refused }, negativeCacheHits: negative.hits, negativeCacheSize: negative.size }
  }

  async close(): Promise<void> {
    await this.#config.limiter.close?.()
  }
}
