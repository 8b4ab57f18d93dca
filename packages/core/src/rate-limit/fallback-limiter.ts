import type { Clock } from '../clock.js'
import { Circuit } from '../store/circuit.js'
import type { Admission, Attempt, Charge, FailureLimits, MaybePromise, Quota, QuotaDecision, RateLimiter } from './limiter.js'
import { MemoryRateLimiter } from './memory-limiter.js'

function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

/** Limits that check and charge nothing: a release with them is a round trip that writes nothing (the probe). */
const NO_LIMITS: FailureLimits = Object.freeze({ failuresPerIp: null, ipBlock: null, failuresPerKey: null })

export interface FallbackRateLimiterOptions {
  clock: Clock
  /** Called once when the shared limiter stops answering. */
  onFallback?: (at: number) => void
  /** Called once when it answers again, with how long limits were local. */
  onRecover?: (downtimeMs: number, at: number) => void
  /** Least time between two probes of the shared limiter (ms). Default 250. */
  probeIntervalMs?: number
}

/**
 * A shared limiter (`RedisRateLimiter`) with this process's own counters
 * behind it. When the shared limiter cannot answer (it throws or rejects),
 * the decision is taken by a `MemoryRateLimiter` with the same policies
 * instead of refusing the request with 503: a replica keeps enforcing its
 * share of every limit through a Redis outage. While it is down a circuit
 * sends every call to the local counters at once (no call waits the
 * limiter's timeout) and a background probe notices its return.
 *
 * What this costs: during an outage each replica counts alone, so an
 * attacker spread over N replicas gets up to N times the failures, as with
 * `MemoryRateLimiter` everywhere. Counts taken locally are not copied to the
 * shared limiter afterwards.
 */
export class FallbackRateLimiter implements RateLimiter {
  readonly shared: RateLimiter
  readonly local = new MemoryRateLimiter()
  readonly #circuit: Circuit
  #fallbacks = 0

  constructor(shared: RateLimiter, options: FallbackRateLimiterOptions) {
    this.shared = shared
    const { clock } = options
    this.#circuit = new Circuit({
      clock,
      probeIntervalMs: options.probeIntervalMs,
      isOutage: () => true,
      probe: async () => {
        const released = shared.release({ ip: undefined, keyId: undefined, chargedAt: clock.now() }, NO_LIMITS, clock.now())
        if (isPromise(released)) await released
      },
      onOpen: (_error, at) => options.onFallback?.(at),
      onClose: (downtimeMs, at) => options.onRecover?.(downtimeMs, at),
    })
  }

  /** Decisions taken by the local counters since start. */
  get fallbacks(): number {
    return this.#fallbacks
  }

  /**
   * Moves limits to the local counters now, without waiting for a call to the
   * shared limiter to time out: the keyring calls it when the key store goes
   * down, since the limiter usually lives on the same Redis. If the limiter
   * is in fact fine, the next probe (within 250 ms) moves them back.
   */
  trip(): void {
    this.#circuit.fail(new Error('the key store is down'))
  }

  /** Whether limits are local right now. */
  get fallingBack(): boolean {
    return this.#circuit.open
  }

  admit(attempt: Attempt, limits: FailureLimits, now: number): MaybePromise<Admission> {
    return this.#decide(
      () => this.shared.admit(attempt, limits, now),
      () => this.local.admit(attempt, limits, now),
    )
  }

  release(charge: Charge, limits: FailureLimits, now: number): MaybePromise<void> {
    // A refund is not a decision: it is not counted as a fallback.
    return this.#decide(
      () => this.shared.release(charge, limits, now),
      () => this.local.release(charge, limits, now),
      false,
    )
  }

  consume(keyId: string, quota: Quota, now: number): MaybePromise<QuotaDecision> {
    return this.#decide(
      () => this.shared.consume(keyId, quota, now),
      () => this.local.consume(keyId, quota, now),
    )
  }

  #decide<T>(shared: () => MaybePromise<T>, local: () => T, counted = true): MaybePromise<T> {
    const fallback = (error: unknown): T => {
      this.#circuit.fail(error)
      if (counted) this.#fallbacks++
      return local()
    }
    if (this.#circuit.open) return fallback(undefined)
    let answer: MaybePromise<T>
    try {
      answer = shared()
    } catch (error) {
      return fallback(error)
    }
    return isPromise(answer) ? answer.catch(fallback) : answer
  }

  async close(): Promise<void> {
    this.#circuit.close()
    await this.local.close()
    await this.shared.close?.()
  }
}
