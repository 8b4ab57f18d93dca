import { LRUCache } from 'lru-cache'
import { charged, countIn, type WindowCount } from './decisions.js'
import type { WindowLimit } from './limiter.js'

/** Most networks one key id keeps barred; past it the oldest bar is dropped. */
const MAX_BARRED_PER_KEY = 1_000

interface Lane {
  /** Proofs started while under attack, in the current window. */
  proofs: WindowCount | undefined
  /** Proofs running now. */
  running: number
  /** Until when proofs are paced (a proof failed); `0`: calm. */
  engagedUntil: number
  /** Until when the key id counts as contested (unproven tokens had to wait, or its failure budget is spent): failed networks are barred. */
  contestedUntil: number
  /** Network → epoch ms its bar ends. */
  /** Created at the first bar: most keys never have one. */
  barred: Map<string, number> | undefined
}

export type Pace = { ok: true } | { ok: false; retryAfterMs: number }

/**
 * Paces the Argon2 proofs of tokens not yet proven in this process, per key
 * id. A key id has one right token, proven once and then cached, so a
 * legitimate client needs one proof per replica; anything more is someone
 * guessing. While a key id is calm, one proof runs at a time (a client that
 * sent a wrong secret and then the right one is not slowed). Once a proof of
 * it failed, or two unproven tokens met, its proofs start at most `limit`
 * per `windowMs`, for `barMs`.
 *
 * This is what keeps a flood on one key id from costing more than about a
 * proof a second on a replica, and what keeps the key usable meanwhile:
 * once its shared failure budget is spent, the abuse guard still lets a
 * token through to a paced proof instead of refusing every unproven token
 * until the window ends.
 *
 * Fairness under a flood: while the key id is contested (unproven tokens
 * had to wait for a proof, or its shared failure budget is spent), a
 * network whose proof failed is barred from the key's proofs for `barMs`. A flood from
 * one network then spends one proof, and the next goes to someone else: the
 * key's legitimate client, from another network, is proven within about one
 * window. A flood spread over many networks competes with it (see
 * docs/security.md).
 *
 * Memory is bounded: `maxKeys` key ids, each with at most 1,000 bars. State
 * is per process on purpose: the bound it gives is per replica.
 */
export class ProofPacer {
  readonly #limit: WindowLimit
  readonly #barMs: number
  readonly #lanes: LRUCache<string, Lane>

  constructor(limit: WindowLimit, barMs: number, maxKeys = 100_000) {
    this.#limit = limit
    this.#barMs = barMs
    this.#lanes = new LRUCache({ max: maxKeys })
  }

  #lane(keyId: string): Lane {
    let lane = this.#lanes.get(keyId)
    if (!lane) {
      lane = { proofs: undefined, running: 0, engagedUntil: 0, contestedUntil: 0, barred: undefined }
      this.#lanes.set(keyId, lane)
    }
    return lane
  }

  /** `undefined` when a proof may start now, else how long to wait. Having to wait makes the key id contested. */
  #wait(lane: Lane, now: number): number | undefined {
    const { limit, windowMs } = this.#limit
    let wait: number | undefined
    if (lane.engagedUntil > now) {
      if (countIn(lane.proofs, windowMs, now) >= limit) wait = Math.max(1, (lane.proofs as WindowCount).start + windowMs - now)
    } else if (lane.running > 0) {
      this.#engage(lane, now)
      wait = windowMs
    }
    if (wait !== undefined) lane.contestedUntil = now + this.#barMs
    return wait
  }

  #engage(lane: Lane, now: number): void {
    if (lane.engagedUntil <= now) lane.proofs = undefined
    lane.engagedUntil = now + this.#barMs
  }

  /**
   * Whether an unproven token of `keyId` from `network` (`undefined`: no
   * client IP) may have a proof now, without taking it: the caller asks
   * the limiter next, and takes the proof with {@link reserve} only once
   * admitted, so a refused attempt never holds a proof it cannot use.
   */
  check(keyId: string, network: string | undefined, now: number): Pace {
    const lane = this.#lane(keyId)
    if (network !== undefined && lane.barred !== undefined) {
      const until = lane.barred.get(network)
      if (until !== undefined) {
        if (until > now) return { ok: false, retryAfterMs: until - now }
        lane.barred.delete(network)
      }
    }
    const wait = this.#wait(lane, now)
    return wait === undefined ? { ok: true } : { ok: false, retryAfterMs: wait }
  }

  /** Takes a proof, if one is left (another attempt may have taken it since {@link check}); pair it with {@link done}. */
  reserve(keyId: string, now: number): boolean {
    const lane = this.#lane(keyId)
    if (this.#wait(lane, now) !== undefined) return false
    lane.running++
    if (lane.engagedUntil > now) lane.proofs = charged(lane.proofs, this.#limit.windowMs, now)
    return true
  }

  /** The key id's shared failure budget is spent: it is contested. */
  pressure(keyId: string, now: number): void {
    const lane = this.#lane(keyId)
    this.#engage(lane, now)
    lane.contestedUntil = now + this.#barMs
  }

  /** A reserved proof ended. A failure paces the key id's proofs; one while it is contested bars its network. */
  done(keyId: string, network: string | undefined, failed: boolean, now: number): void {
    const lane = this.#lanes.get(keyId)
    if (!lane) return
    lane.running = Math.max(0, lane.running - 1)
    if (!failed) {
      // A quiet lane is the same as no lane: forget it, so a proven key keeps nothing here.
      if (lane.running === 0 && lane.engagedUntil <= now && lane.contestedUntil <= now && (lane.barred === undefined || lane.barred.size === 0)) this.#lanes.delete(keyId)
      return
    }
    if (lane.contestedUntil > now && network !== undefined) {
      lane.barred ??= new Map()
      lane.barred.delete(network)
      lane.barred.set(network, now + this.#barMs)
      if (lane.barred.size > MAX_BARRED_PER_KEY) lane.barred.delete(lane.barred.keys().next().value as string)
    }
    this.#engage(lane, now)
  }
}
