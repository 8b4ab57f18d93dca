import type { Clock } from '../clock.js'

/** How often an open circuit tests its dependency. */
export const DEFAULT_PROBE_INTERVAL_MS = 250

export interface CircuitOptions {
  /**
   * Tests the dependency while the circuit is open: resolves if it answers.
   * Bounded by the dependency's own timeout (the store's, the limiter's).
   */
  probe: () => Promise<unknown>
  /** Whether a failure means the dependency cannot answer (opens the circuit), rather than a refusal it gave. */
  isOutage: (error: unknown) => boolean
  /** Least time between two probes (ms). Default 250. */
  probeIntervalMs?: number
  clock: Clock
  /** Called once when the circuit opens (the outage starts), with the failure that opened it. */
  onOpen?: (error: unknown, at: number) => void
  /** Called once when a probe succeeds and the circuit closes, with how long it was open. */
  onClose?: (downtimeMs: number, at: number) => void
}

/**
 * A circuit breaker for one dependency (the key store, a shared rate
 * limiter). While it is closed, calls go through. The first call that fails
 * with an outage opens it; from then on calls fail at once (`run` throws the
 * caller's fast error without calling the dependency), so requests during an
 * outage do not each wait the dependency's timeout: only the calls already in
 * flight when it went down do. A background probe (one at a time, every
 * `probeIntervalMs`, on an unref'd timer) closes it again as soon as the
 * dependency answers, so recovery takes at most one interval plus one round
 * trip after the dependency is back.
 *
 * It knows nothing about what it guards: the keyring gives it the store's
 * read, the fallback limiter gives it the shared limiter.
 */
export class Circuit {
  readonly #options: CircuitOptions
  readonly #probeIntervalMs: number
  #openedAt: number | null = null
  #timer: NodeJS.Timeout | undefined
  #probing = false
  #closed = false
  #outages = 0

  constructor(options: CircuitOptions) {
    this.#options = options
    this.#probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS
    if (!Number.isFinite(this.#probeIntervalMs) || this.#probeIntervalMs <= 0) {
      throw new TypeError(`probeIntervalMs must be longer than 0; got ${String(options.probeIntervalMs)}`)
    }
  }

  /** Whether the dependency is known to be down. */
  get open(): boolean {
    return this.#openedAt !== null
  }

  /** Outages seen since start (times the circuit opened). */
  get outages(): number {
    return this.#outages
  }

  /**
   * Runs `work` unless the circuit is open, in which case it throws
   * `fastError()` at once. A failure of `work` that `isOutage` accepts opens
   * the circuit; the failure is rethrown either way.
   */
  async run<T>(work: () => Promise<T>, fastError: () => Error): Promise<T> {
    if (this.#openedAt !== null) throw fastError()
    try {
      return await work()
    } catch (error) {
      this.fail(error)
      throw error
    }
  }

  /** Reports a failure seen outside `run` (a synchronous caller); opens the circuit if it is an outage. */
  fail(error: unknown): void {
    if (this.#openedAt !== null || this.#closed || !this.#options.isOutage(error)) return
    const at = this.#options.clock.now()
    this.#openedAt = at
    this.#outages++
    this.#options.onOpen?.(error, at)
    this.#timer = setInterval(() => this.#probe(), this.#probeIntervalMs)
    this.#timer.unref()
  }

  #probe(): void {
    if (this.#probing || this.#openedAt === null) return
    this.#probing = true
    this.#options.probe().then(
      () => {
        this.#probing = false
        this.#recover()
      },
      () => {
        this.#probing = false
      },
    )
  }

  #recover(): void {
    const openedAt = this.#openedAt
    if (openedAt === null || this.#closed) return
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#openedAt = null
    const at = this.#options.clock.now()
    this.#options.onClose?.(Math.max(0, at - openedAt), at)
  }

  /** Stops probing for good; the circuit lets calls through again. Idempotent. */
  close(): void {
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#openedAt = null
  }
}
