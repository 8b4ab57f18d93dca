import { createTokenDigester } from '../cache/token-digest.js'
import type { Clock } from '../clock.js'
import { RateLimitedError, StoreUnavailableError } from '../errors.js'
import { errorFields, type Logger } from '../logger.js'
import type { RateLimitInfo } from './headers.js'
import type { Admission, Attempt, Charge, MaybePromise, Quota, QuotaDecision, RateLimitPolicy, WindowLimit } from './limiter.js'
import { clientCounters, type ClientCounters } from './client-network.js'
import { NegativeCache, type KnownBadToken } from './negative-cache.js'
import type { ResolvedRateLimitOptions } from './options.js'
import { ProofPacer } from './proof-pacer.js'

/** An admitted attempt whose charge awaits the verdict. */
export interface Ticket {
  charge: Charge
  digest: string | undefined
  /** Set when the attempt holds a paced proof of its key id. */
  paced?: { keyId: string; network: string | undefined }
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

/** An attempt riding on another with the same token: nothing checked, nothing charged. */
const RIDE: Gate = Object.freeze({ ok: true, ticket: null, known: undefined })
/** Admitted with nothing charged and nothing known against the token (a proven token's usual gate). */
const PASS: Gate = RIDE

/** Client IPs whose counter names are remembered; past it the memo starts afresh (bounded whatever the traffic). */
const MAX_REMEMBERED_CLIENTS = 4_096

function limiterUnavailable(error: unknown, keyId: string | undefined): never {
  throw new StoreUnavailableError('The rate limiter is unavailable.', { cause: error, ...(keyId ? { keyId } : {}) })
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
 * is not mistaken for guessing. A token counts as in flight from the moment
 * its first attempt asks the limiter (not when the limiter answers), so this
 * holds with a limiter that answers asynchronously too: the others wait for
 * that first admission and ride on it, or, if it was refused, ask for their
 * own. Without a verification cache there is no such sharing, and every
 * attempt is checked and charged.
 *
 * Proofs of unproven tokens are paced per key id ({@link ProofPacer}), so a
 * flood on one key id neither costs more than `proofsPerKey` Argon2 runs on
 * this replica nor locks the key's legitimate client out when the shared
 * `failuresPerKey` budget is spent.
 */
export class AttemptGuard {
  readonly #config: ResolvedRateLimitOptions
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #negative: NegativeCache | null
  /** Tokens (by digest) with an attempt in flight: `true` once admitted, the pending admission before. */
  readonly #inFlight = new Map<string, true | Promise<Gate>>()
  readonly #pacer: ProofPacer | null
  readonly #refused: Record<RateLimitPolicy, number> = { 'ip-block': 0, 'ip-failures': 0, 'network-failures': 0, 'key-failures': 0, 'per-key': 0 }
  #digest: ((token: string) => string) | undefined
  /** Counter names by client IP: parsing and masking an address costs more than the rest of a proven token's admission. */
  readonly #clients = new Map<string, ClientCounters>()

  readonly #sharesInFlight: boolean

  /** @param sharesInFlight concurrent verifies of one token share one store read and one Argon2 run (the keyring has a verification cache). */
  constructor(config: ResolvedRateLimitOptions, clock: Clock, logger: Logger, sharesInFlight: boolean) {
    this.#config = config
    this.#sharesInFlight = sharesInFlight
    this.#clock = clock
    this.#logger = logger
    this.#negative =
      config.negativeCacheTtlMs === 0 ? null : new NegativeCache({ ttlMs: config.negativeCacheTtlMs, maxEntries: config.negativeCacheMaxEntries, clock })
    this.#pacer = sharesInFlight && config.proofsPerKey ? new ProofPacer(config.proofsPerKey, config.failures.failuresPerKey?.windowMs ?? 60_000) : null
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
   * @param input.unpaced the proof is cheap (a signed request's HMAC), not an Argon2 run: no paced proof is needed.
   */
  admit(input: { ip: string | undefined; keyId: string | undefined; digest: string | undefined; proven: boolean; unpaced?: boolean }, now: number): MaybePromise<Gate> {
    // A proven token is charged nothing and meets only the IP limits: with no client on record, nothing can refuse it (riding would pass it too).
    if (input.proven && this.#config.limiter.clientsClean?.(now, this.#config.failures) === true) return PASS
    const leader = this.#sharesInFlight && input.digest !== undefined ? this.#inFlight.get(input.digest) : undefined
    if (leader === true) return RIDE
    // The first attempt with this token is still being admitted: ride on it, or ask for ourselves if it was refused.
    if (leader !== undefined) return leader.then((gate) => (gate.ok ? RIDE : this.admit(input, now)))
    const { failures, prefixes } = this.#config
    const counters = input.ip !== undefined && input.ip !== '' ? this.#countersOf(input.ip, prefixes) : undefined
    const ipLimited = failures.failuresPerIp !== null || failures.ipBlock !== null || prefixes.network !== null
    const ip = ipLimited ? counters?.ip : undefined
    const known = input.digest === undefined || input.proven ? undefined : this.#negative?.get(input.digest)
    const keyId = input.proven || failures.failuresPerKey === null ? undefined : input.keyId
    const attempt: Attempt = {
      ip,
      keyId,
      network: ip === undefined ? undefined : counters?.network,
      chargeIp: ip !== undefined && !input.proven,
      // A known-bad token reaches neither the store nor Argon2: it spends nothing of the key's budget.
      chargeKey: keyId !== undefined && known === undefined,
    }
    // An unproven token heading for a store read and an Argon2 run needs one of its key id's paced proofs: refused here, a flood costs no limiter call.
    let paced: Ticket['paced']
    if (this.#pacer && input.keyId !== undefined && input.digest !== undefined && !input.proven && !input.unpaced && known === undefined) {
      paced = { keyId: input.keyId, network: counters?.network ?? counters?.ip }
      const pace = this.#pacer.check(paced.keyId, paced.network, now)
      if (!pace.ok) return this.#paceRefusal(pace.retryAfterMs, input)
    }
    if (attempt.ip === undefined && attempt.keyId === undefined) {
      if (!paced || input.digest === undefined) return { ok: true, ticket: null, known }
      return this.#gate(attempt, input, known, paced, now)
    }
    const gate = this.#ask(attempt, input, known, paced, now)
    if (!isPromise(gate) || input.digest === undefined || !this.#sharesInFlight) return gate
    const digest = input.digest
    const pending = gate.then(
      (decided) => {
        if (this.#inFlight.get(digest) === pending && !(decided.ok && decided.ticket?.digest === digest)) this.#inFlight.delete(digest)
        return decided
      },
      (error: unknown) => {
        if (this.#inFlight.get(digest) === pending) this.#inFlight.delete(digest)
        throw error
      },
    )
    this.#inFlight.set(digest, pending)
    return pending
  }

  #countersOf(ip: string, prefixes: ResolvedRateLimitOptions['prefixes']): ClientCounters {
    let counters = this.#clients.get(ip)
    if (counters === undefined) {
      counters = clientCounters(ip, prefixes.ip, prefixes.network)
      if (this.#clients.size >= MAX_REMEMBERED_CLIENTS) this.#clients.clear()
      this.#clients.set(ip, counters)
    }
    return counters
  }

  /** Asks the limiter; when only the key id's failure budget refuses, a paced proof still goes ahead (charged to the IP). */
  #ask(attempt: Attempt, input: { keyId: string | undefined; digest: string | undefined }, known: KnownBadToken | undefined, paced: Ticket['paced'], now: number): MaybePromise<Gate> {
    let admission: MaybePromise<Admission>
    try {
      admission = this.#config.limiter.admit(attempt, this.#config.failures, now)
    } catch (error) {
      return limiterUnavailable(error, input.keyId)
    }
    // No closures on the synchronous path: a proven token's admission runs on every request.
    if (!isPromise(admission)) return this.#decide(admission, attempt, input, known, paced, now)
    return admission.then(
      (decided) => this.#decide(decided, attempt, input, known, paced, now),
      (error: unknown) => limiterUnavailable(error, input.keyId),
    )
  }

  #decide(admission: Admission, attempt: Attempt, input: { keyId: string | undefined; digest: string | undefined }, known: KnownBadToken | undefined, paced: Ticket['paced'], now: number): MaybePromise<Gate> {
    if (admission.allowed) return this.#gate(attempt, input, known, paced, now)
    if (paced && admission.policy === 'key-failures') {
      const pacer = this.#pacer as ProofPacer
      pacer.pressure(paced.keyId, now)
      if (attempt.ip === undefined) return this.#gate({ ...attempt, keyId: undefined, chargeKey: false }, input, known, paced, now)
      return this.#ask({ ...attempt, keyId: undefined, chargeKey: false }, input, known, paced, now)
    }
    return this.#refusal(admission, input)
  }

  #refusal(admission: Admission & { allowed: false }, input: { keyId: string | undefined }): Gate {
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

  #paceRefusal(retryAfterMs: number, input: { keyId: string | undefined }): Gate {
    return this.#refusal({ allowed: false, policy: 'key-failures', ...(this.#config.proofsPerKey as WindowLimit), retryAfterMs }, input)
  }

  #gate(attempt: Attempt, input: { keyId: string | undefined; digest: string | undefined }, known: KnownBadToken | undefined, paced: Ticket['paced'], now: number): Gate {
    // Another attempt took the last proof while the limiter was asked: refund this one's charges, refuse it.
    if (paced && !(this.#pacer as ProofPacer).reserve(paced.keyId, now)) {
      const refund = { ip: attempt.chargeIp ? attempt.ip : undefined, keyId: attempt.chargeKey ? attempt.keyId : undefined, network: attempt.chargeIp ? attempt.network : undefined, chargedAt: now }
      void this.settle({ charge: refund, digest: undefined }, false)
      return this.#paceRefusal(this.#config.proofsPerKey?.windowMs ?? 1000, input)
    }
    // Nothing charged, or a charge that stands at once (a malformed or known-bad token: no verdict to wait for).
    if ((!attempt.chargeIp && !attempt.chargeKey && !paced) || known !== undefined || input.digest === undefined) return known === undefined ? PASS : { ok: true, ticket: null, known }
    const charge: Charge = {
      ip: attempt.chargeIp ? attempt.ip : undefined,
      keyId: attempt.chargeKey ? attempt.keyId : undefined,
      ...(attempt.chargeIp && attempt.network !== undefined ? { network: attempt.network } : {}),
      chargedAt: now,
    }
    if (!this.#sharesInFlight) return { ok: true, ticket: { charge, digest: undefined }, known }
    return { ok: true, ticket: this.#hold({ charge, digest: input.digest, ...(paced ? { paced } : {}) }), known }
  }

  /** Marks the ticket's token as admitted and in flight until {@link settle}. */
  #hold(ticket: Ticket): Ticket {
    if (ticket.digest !== undefined) this.#inFlight.set(ticket.digest, true)
    return ticket
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
    if (ticket.paced) this.#pacer?.done(ticket.paced.keyId, ticket.paced.network, failed, this.#clock.now())
    if (failed) return
    if (ticket.charge.ip === undefined && ticket.charge.keyId === undefined) return
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
    let decision: MaybePromise<QuotaDecision>
    try {
      decision = this.#config.limiter.consume(keyId, quota, now)
    } catch (error) {
      return limiterUnavailable(error, keyId)
    }
    if (!isPromise(decision)) return this.#quotaOutcome(keyId, decision)
    return decision.then(
      (decided) => this.#quotaOutcome(keyId, decided),
      (error: unknown) => limiterUnavailable(error, keyId),
    )
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
