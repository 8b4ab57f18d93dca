import { availableParallelism } from 'node:os'
import { OverloadedError } from '../errors.js'

export interface Argon2QueueOptions {
  /** Argon2 runs at once. Default: the machine's cores (`os.availableParallelism()`). */
  concurrency: number
  /**
   * Longest a run waits for a free slot before the verify is refused with
   * `KEYROT_OVERLOADED` (503 + `Retry-After`), in ms. `0`: never refuse (wait
   * as long as it takes, the behaviour before this bound existed).
   */
  maxWaitMs: number
}

export const DEFAULT_ARGON2_MAX_WAIT_MS = 1_000

interface Waiter {
  start(): void
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * The Argon2 runs that `verify()` needs, at most `concurrency` at once, first
 * come first served. A run that cannot start within `maxWaitMs` is refused
 * with `OverloadedError`, so that a replica flooded with new tokens (a cold
 * start without shared proofs, an attack) answers 503 in bounded time instead
 * of queueing requests for seconds. Tokens proven before (the verification
 * cache, a shared proof) never enter the queue.
 */
export class Argon2Queue {
  readonly options: Argon2QueueOptions
  #running = 0
  readonly #waiting: Waiter[] = []
  /** Moving average of one run's duration (ms), for `Retry-After`. */
  #averageRunMs = 25
  #refused = 0

  constructor(options: Partial<Argon2QueueOptions> = {}) {
    const concurrency = options.concurrency ?? Math.max(1, availableParallelism())
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`argon2.concurrency must be a positive integer; got ${String(concurrency)}`)
    const maxWaitMs = options.maxWaitMs ?? DEFAULT_ARGON2_MAX_WAIT_MS
    if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) throw new TypeError(`argon2.maxWait must be a non-negative duration; got ${String(maxWaitMs)}`)
    this.options = { concurrency, maxWaitMs }
  }

  /** Runs waiting for a slot (not counting those running), for `keyrot_argon2_queue_length`. */
  get length(): number {
    return this.#waiting.length
  }

  get running(): number {
    return this.#running
  }

  /** Runs refused since start. */
  get refused(): number {
    return this.#refused
  }

  /** Runs `task` when a slot is free; rejects with `OverloadedError` if none frees up within `maxWaitMs`. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    // Timed only under contention, where Retry-After needs the estimate: an idle queue reads no clock.
    const contended = this.#running >= this.options.concurrency
    if (contended) await this.#slot()
    else this.#running++
    const started = contended ? performance.now() : 0
    try {
      return await task()
    } finally {
      if (contended) this.#averageRunMs = this.#averageRunMs * 0.9 + (performance.now() - started) * 0.1
      this.#release()
    }
  }

  #slot(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { start: resolve, timer: undefined }
      if (this.options.maxWaitMs > 0) {
        waiter.timer = setTimeout(() => {
          const index = this.#waiting.indexOf(waiter)
          if (index === -1) return
          this.#waiting.splice(index, 1)
          this.#refused++
          reject(new OverloadedError(this.#retryAfterMs()))
        }, this.options.maxWaitMs)
        waiter.timer.unref?.()
      }
      this.#waiting.push(waiter)
    })
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (!next) {
      this.#running--
      return
    }
    // The slot passes straight to the next waiter: #running is unchanged.
    if (next.timer) clearTimeout(next.timer)
    next.start()
  }

  /** How long the runs queued now should take to drain: the client's `Retry-After`. */
  #retryAfterMs(): number {
    return Math.ceil(((this.#waiting.length + this.#running) * this.#averageRunMs) / this.options.concurrency)
  }
}
