import { LRUCache } from 'lru-cache'
import type { KeyrotError, RateLimitedError } from '../errors.js'
import type { RequestContext, TypedEmitter } from '../events.js'
import type { KeyFields } from '../types.js'
import type { VerifyOptions, VerifyResult } from './keyring-types.js'

/** When a watched `verify()` started (`performance.now()`), carried on its copied options. */
const STARTED_AT = Symbol('keyrot.verifyStartedAt')

export function elapsedMs(context: RequestContext): number | undefined {
  const started = (context as { [STARTED_AT]?: number })[STARTED_AT]
  return started === undefined ? undefined : performance.now() - started
}

/**
 * Starts the clock of a verify when someone listens to its outcome events:
 * the start travels with the options to every emit. A child object (the
 * caller's options as its prototype) costs a tenth of a spread.
 */
export function timed(options: VerifyOptions): VerifyOptions {
  const child = Object.create(options) as VerifyOptions & { [STARTED_AT]?: number }
  child[STARTED_AT] = performance.now()
  return child
}

/**
 * How the verify path reports what it decided: failures (`verification.failed`),
 * rate-limit refusals (`ratelimit.blocked`) and uses in grace
 * (`key.used_in_grace`, at most once per key per interval). Apart from
 * verifier.ts so the verify path reads in one sitting.
 */
export class VerifyReporter {
  readonly #events: TypedEmitter
  readonly #graceIntervalMs: number
  readonly #graceEventAt = new LRUCache<string, number>({ max: 10_000 })

  constructor(events: TypedEmitter, graceUsageEventIntervalMs: number) {
    this.#events = events
    this.#graceIntervalMs = graceUsageEventIntervalMs
  }

  noteGraceUse(record: KeyFields, context: RequestContext, now: number): void {
    if (!this.#events.has('key.used_in_grace')) return
    const last = this.#graceEventAt.get(record.id)
    if (last !== undefined && now - last < this.#graceIntervalMs) return
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

  fail(error: KeyrotError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult {
    this.emitFailure(error, keyId, tenantId, context, now)
    return { ok: false, error, keyId }
  }

  emitFailure(error: KeyrotError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): void {
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

  /** A refusal by a rate limit: `ratelimit.blocked` for alerting, then the usual failure report. */
  refuse(error: RateLimitedError, keyId: string | undefined, tenantId: string | undefined, context: RequestContext, now: number): VerifyResult {
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
    return this.fail(error, keyId, tenantId, context, now)
  }
}
