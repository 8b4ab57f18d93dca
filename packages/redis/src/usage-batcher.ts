import { RotationTally, type Logger, type RotationUse } from '@keyrot/core'

export interface UsageDelta {
  keyId: string
  count: number
  lastUsedAt: number
  /** Latest use while the key was in its grace period, or `null`. */
  lastUsedInGraceAt: number | null
  /** Rotation uses (per minute, clients in grace) since the last flush; only for keys in a rotation. */
  rotation?: RotationTally
}

export interface UsageBatcherOptions {
  flushIntervalMs: number
  maxPendingKeys: number
  /** Writes one batch (one delta per key). Rejects if the batch was not written. */
  write(batch: UsageDelta[]): Promise<void>
  logger: Logger
}

/**
 * Counts key uses in memory and writes them in one pipelined batch every
 * `flushIntervalMs` and on `close()`, instead of one write per request.
 *
 * Loss bound: a crash loses the counts gathered since the last flush (at
 * most one interval). A batch that fails to write (Redis unreachable) is
 * dropped and logged with its size, not retried: a batch that timed out may
 * have been applied, and writing it again would count twice.
 */
export class UsageBatcher {
  readonly #options: UsageBatcherOptions
  #pending = new Map<string, UsageDelta>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()
  #closed = false

  constructor(options: UsageBatcherOptions) {
    this.#options = options
  }

  /** Pending distinct keys (for tests and metrics). */
  get pendingKeys(): number {
    return this.#pending.size
  }

  record(keyId: string, at: number, inGrace: boolean, rotation?: RotationUse): void {
    if (this.#closed) return
    let delta = this.#pending.get(keyId)
    if (delta === undefined) {
      delta = { keyId, count: 0, lastUsedAt: at, lastUsedInGraceAt: null }
      this.#pending.set(keyId, delta)
    }
    delta.count += 1
    if (at > delta.lastUsedAt) delta.lastUsedAt = at
    if (inGrace && (delta.lastUsedInGraceAt === null || at > delta.lastUsedInGraceAt)) delta.lastUsedInGraceAt = at
    if (rotation) (delta.rotation ??= new RotationTally()).add(at, inGrace, rotation)
    if (this.#pending.size >= this.#options.maxPendingKeys) {
      void this.flush()
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), this.#options.flushIntervalMs)
      this.#timer.unref()
    }
  }

  /** Writes what is pending now. Never rejects. */
  flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#pending.size === 0) return this.#flushing
    const batch = [...this.#pending.values()]
    this.#pending = new Map()
    const previous = this.#flushing
    this.#flushing = (async () => {
      await previous
      try {
        await this.#options.write(batch)
      } catch (error) {
        const lost = batch.reduce((sum, delta) => sum + delta.count, 0)
        this.#options.logger.warn(
          { event: 'usage.flush_failed', keys: batch.length, uses: lost, err: { message: (error as Error)?.message } },
          'keyrot could not write usage counts; they are dropped',
        )
      }
    })()
    return this.#flushing
  }

  /** Flushes what is pending and stops counting. */
  async close(): Promise<void> {
    if (this.#closed) return this.#flushing
    await this.flush()
    this.#closed = true
  }
}
