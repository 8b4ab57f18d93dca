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
 * kept: merged back into the pending counts and written with the next
 * flush, one interval later, until Redis answers again. While writes fail
 * at most `maxPendingKeys` distinct keys are kept (uses of keys beyond that
 * are dropped and logged with their number) and reaching the bound does not
 * trigger extra flushes. The cost: a batch that Redis applied but did not
 * acknowledge in time (a timeout, not a refused connection) is written again
 * and counted twice; usage counts are for reporting, never for a decision.
 */
export class UsageBatcher {
  readonly #options: UsageBatcherOptions
  #pending = new Map<string, UsageDelta>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()
  #closed = false
  /** The last write failed: keep counts, flush on the timer only. */
  #failing = false
  /** Uses dropped since the last report, because the bound was reached while writes failed. */
  #dropped = 0

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
      if (this.#failing && this.#pending.size >= this.#options.maxPendingKeys) {
        this.#dropped++
        return
      }
      delta = { keyId, count: 0, lastUsedAt: at, lastUsedInGraceAt: null }
      this.#pending.set(keyId, delta)
    }
    delta.count += 1
    if (at > delta.lastUsedAt) delta.lastUsedAt = at
    if (inGrace && (delta.lastUsedInGraceAt === null || at > delta.lastUsedInGraceAt)) delta.lastUsedInGraceAt = at
    if (rotation) (delta.rotation ??= new RotationTally()).add(at, inGrace, rotation)
    if (this.#pending.size >= this.#options.maxPendingKeys && !this.#failing) {
      void this.flush()
    } else {
      this.#schedule()
    }
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return
    this.#timer = setTimeout(() => void this.flush(), this.#options.flushIntervalMs)
    this.#timer.unref()
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
        if (this.#failing) {
          this.#failing = false
          this.#options.logger.info({ event: 'usage.flush_recovered', keys: batch.length }, 'keyrot wrote the usage counts it kept')
        }
      } catch (error) {
        const kept = this.#keep(batch)
        const uses = batch.reduce((sum, delta) => sum + delta.count, 0)
        const dropped = uses - kept + this.#dropped
        this.#dropped = 0
        if (!this.#failing || dropped > 0) {
          this.#options.logger.warn(
            { event: 'usage.flush_failed', keys: batch.length, uses, dropped, err: { message: (error as Error)?.message } },
            this.#closed ? 'keyrot could not write usage counts before closing; they are lost' : 'keyrot could not write usage counts; they are kept and written again',
          )
        }
        this.#failing = true
        this.#schedule()
      }
    })()
    return this.#flushing
  }

  /** Merges a batch that was not written back into the pending counts, within the bound. Returns the uses kept. */
  #keep(batch: UsageDelta[]): number {
    if (this.#closed) return 0
    let kept = 0
    for (const delta of batch) {
      const pending = this.#pending.get(delta.keyId)
      if (pending === undefined) {
        if (this.#pending.size >= this.#options.maxPendingKeys) continue
        this.#pending.set(delta.keyId, { ...delta })
      } else {
        pending.count += delta.count
        pending.lastUsedAt = Math.max(pending.lastUsedAt, delta.lastUsedAt)
        if (delta.lastUsedInGraceAt !== null) pending.lastUsedInGraceAt = Math.max(pending.lastUsedInGraceAt ?? 0, delta.lastUsedInGraceAt)
      }
      kept += delta.count
    }
    return kept
  }

  /** Flushes what is pending and stops counting. */
  async close(): Promise<void> {
    if (this.#closed) return this.#flushing
    // Closed first: a last batch that fails is reported lost, not kept for a timer that would outlive the store.
    this.#closed = true
    await this.flush()
  }
}
