import { InvalidInputError } from '../errors.js'
import { parseDuration, type Duration } from '../duration.js'

/**
 * Credits: a balance of uses per key family. Every key rotated from one
 * another shares the family (the first 10 characters of its id), so old and
 * new key draw from one balance during a grace period and a rotation carries
 * the balance over without copying it.
 *
 * The record holds only the configuration ({@link CreditsConfig}); the
 * balance lives beside it in the store ({@link CreditBalance}) and is spent
 * by {@link decideSpend}, which the memory store runs as is and the Redis
 * store runs line for line in Lua. Refills are lazy: computed from the
 * intervals elapsed at spend time, so no timer runs anywhere.
 */

/** A refill: the balance is topped up to `amount` every `intervalMs`, counted from the key's creation. */
export interface CreditsRefill {
  /** Credits the balance is raised to at each refill (a balance above it is kept). */
  amount: number
  /** Milliseconds between refills (at least {@link MIN_REFILL_INTERVAL_MS}). */
  intervalMs: number
}

/** On a key record: the key spends credits. Absent: the key is unlimited. */
export interface CreditsConfig {
  refill: CreditsRefill | null
}

/** The stored balance of a family: `remaining` credits, last refilled at `refilledAt` (epoch ms). */
export interface CreditBalance {
  remaining: number
  refilledAt: number
}

/** A family's credits as a caller sees them: what is left and when the next refill lands (`null`: no refill). */
export interface CreditsState {
  remaining: number
  nextRefillAt: number | null
}

/** What `create({ credits })` takes. */
export interface CreditsInput {
  /** Credits the key starts with. A non-negative integer; `0` means "no uses until a refill", not unlimited. */
  remaining: number
  /** Tops the balance up to `amount` every `interval` (ms or a string such as `'1d'`). Default: no refill. */
  refill?: { amount: number; interval: Duration } | null
}

/** The shortest refill interval: a refill is a quota, a burst limit belongs to `rateLimit`. */
export const MIN_REFILL_INTERVAL_MS = 60_000
/** The longest refill interval (100 years): the next refill stays a printable date. */
export const MAX_REFILL_INTERVAL_MS = 100 * 365.25 * 86_400_000
/** The largest balance: far below 2^53, so Lua's doubles hold it exactly. */
export const MAX_CREDITS = 1e15

export function isCreditCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_CREDITS
}

/**
 * Checks `create()`'s `credits` input. `undefined`/`null`: no credits (unlimited).
 * Throws `InvalidInputError` naming the field for a negative or fractional
 * count, a refill without a positive amount, or an interval under a minute.
 */
export function checkCredits(value: unknown): { config: CreditsConfig; remaining: number } | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError('credits', 'must be { remaining, refill? }')
  const { remaining, refill } = value as { remaining?: unknown; refill?: unknown }
  if (!isCreditCount(remaining)) {
    throw new InvalidInputError('credits.remaining', `must be an integer from 0 to ${MAX_CREDITS}; got ${String(remaining)}`)
  }
  return { config: { refill: checkRefill(refill) }, remaining }
}

function checkRefill(value: unknown): CreditsRefill | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError('credits.refill', 'must be { amount, interval }')
  const { amount, interval } = value as { amount?: unknown; interval?: unknown }
  if (!isCreditCount(amount) || amount < 1) {
    throw new InvalidInputError('credits.refill.amount', `must be an integer from 1 to ${MAX_CREDITS}; got ${String(amount)}`)
  }
  let intervalMs: number
  try {
    intervalMs = parseDuration(interval as Duration, 'credits.refill.interval')
  } catch (error) {
    throw new InvalidInputError('credits.refill.interval', (error as Error).message.replace('credits.refill.interval ', ''))
  }
  if (intervalMs < MIN_REFILL_INTERVAL_MS) {
    throw new InvalidInputError('credits.refill.interval', `must be at least 1m; got ${String(interval)}`)
  }
  if (intervalMs > MAX_REFILL_INTERVAL_MS) {
    throw new InvalidInputError('credits.refill.interval', `must be at most 100 years; got ${String(interval)}`)
  }
  return { amount, intervalMs }
}

/** Checks the cost of one request (`verify({ cost })`, the middleware's `cost`): a non-negative integer. */
export function checkCost(value: unknown, name = 'cost'): number {
  if (!isCreditCount(value)) throw new TypeError(`${name} must be an integer from 0 to ${MAX_CREDITS}; got ${String(value)}`)
  return value
}

/** The balance after the refills due by `now`. A missing balance counts as empty since `now`. */
export function refilled(balance: CreditBalance | null, refill: CreditsRefill | null, now: number): CreditBalance {
  const current = balance ?? { remaining: 0, refilledAt: now }
  if (!refill || now < current.refilledAt + refill.intervalMs) return current
  const periods = Math.floor((now - current.refilledAt) / refill.intervalMs)
  return { remaining: Math.max(current.remaining, refill.amount), refilledAt: current.refilledAt + periods * refill.intervalMs }
}

export function stateOfBalance(balance: CreditBalance, refill: CreditsRefill | null): CreditsState {
  return { remaining: balance.remaining, nextRefillAt: refill ? balance.refilledAt + refill.intervalMs : null }
}

export type SpendDecision =
  | { ok: true; balance: CreditBalance; state: CreditsState }
  /** Refused: the balance (refilled, maybe) is below the cost; nothing was spent. */
  | { ok: false; balance: CreditBalance; state: CreditsState }

/**
 * Spends `cost` credits from `balance` at `now`, after the refills due.
 * Refuses when fewer than `max(cost, 1)` are left: a key with an empty
 * balance is refused even a free (`cost: 0`) request. The store writes the
 * returned balance in the same atomic step it read `balance` in.
 */
export function decideSpend(balance: CreditBalance | null, refill: CreditsRefill | null, cost: number, now: number): SpendDecision {
  const current = refilled(balance, refill, now)
  if (current.remaining < Math.max(cost, 1)) return { ok: false, balance: current, state: stateOfBalance(current, refill) }
  const next = { remaining: current.remaining - cost, refilledAt: current.refilledAt }
  return { ok: true, balance: next, state: stateOfBalance(next, refill) }
}

/**
 * An operator's change: `set` the balance, or `add` to it (negative takes
 * away, never below 0), after the refills due. A missing balance starts at
 * `now`, so the refill clock of a family whose balance was lost restarts.
 */
export function decideAdjust(balance: CreditBalance | null, refill: CreditsRefill | null, change: CreditsChange, now: number): CreditBalance {
  const current = refilled(balance, refill, now)
  const remaining = 'set' in change ? change.set : Math.min(MAX_CREDITS, Math.max(0, current.remaining + change.add))
  return { remaining, refilledAt: current.refilledAt }
}

/** `{ set: n }` replaces the balance; `{ add: n }` adds `n` (may be negative). */
export type CreditsChange = { set: number } | { add: number }
