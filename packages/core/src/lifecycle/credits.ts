import { checkCost, isCreditCount, MAX_CREDITS, type CreditsChange, type CreditsRefill, type CreditsState } from '../credits/credits.js'
import { CreditsExhaustedError, InvalidInputError, StoreUnavailableError } from '../errors.js'
import type { KeyStore } from '../store/store.js'
import type { KeyFields, KeyRecord } from '../types.js'

export type CreditsOutcome = { ok: true; credits: CreditsState } | { ok: false; error: CreditsExhaustedError }

/**
 * The verify path's spend, called once every other check passed (secret
 * proven, not revoked or expired, scopes, rate limit), only for a record
 * with `credits`: keys without credits never get here, so they pay nothing.
 *
 * It always goes to the store, even on a cache hit: the balance is shared by
 * every replica and a local copy could overspend it. One round trip (one Lua
 * script on Redis). A store that cannot answer throws
 * `StoreUnavailableError` (503): credits fail closed, with no stale answer.
 */
export async function spendCredits(store: KeyStore, record: KeyFields & { credits: NonNullable<KeyRecord['credits']> }, cost: number | undefined, now: number): Promise<CreditsOutcome> {
  const units = cost === undefined ? 1 : checkCost(cost)
  if (!store.spendCredits) throw new StoreUnavailableError('The key store cannot keep credits.', { keyId: record.id })
  const spent = await store.spendCredits({ familyId: record.familyId, cost: units, refill: record.credits.refill, now })
  if (spent.ok) return { ok: true, credits: spent.state }
  return { ok: false, error: new CreditsExhaustedError(record.id, { remaining: spent.state.remaining, nextRefillAt: spent.state.nextRefillAt, now }) }
}

/** What the keyring's credit methods report: the family's balance and its refill, or `null` for a key without credits. */
export interface KeyCredits extends CreditsState {
  keyId: string
  familyId: string
  refill: CreditsRefill | null
}

/** Reads the balance of `record`'s family (after the refills due); `null` when the key has no credits. */
export async function readKeyCredits(store: KeyStore, record: KeyRecord, now: number): Promise<KeyCredits | null> {
  if (!record.credits) return null
  const refill = record.credits.refill
  const state = store.readCredits ? await store.readCredits(record.familyId, refill, now) : { remaining: 0, nextRefillAt: null }
  return { keyId: record.id, familyId: record.familyId, refill, ...state }
}

/**
 * Sets or adds to the balance of `record`'s family. Throws
 * `InvalidInputError` for a key created without credits (there is no
 * balance to change: unlimited stays unlimited) or a bad amount.
 */
export async function adjustKeyCredits(store: KeyStore, record: KeyRecord, change: CreditsChange, now: number): Promise<KeyCredits> {
  if (!record.credits) throw new InvalidInputError('credits', `key ${record.id} was created without credits; it is unlimited`)
  const amount = 'set' in change ? change.set : change.add
  if ('set' in change ? !isCreditCount(amount) : !Number.isSafeInteger(amount) || Math.abs(amount) > MAX_CREDITS) {
    throw new InvalidInputError('credits', `${'set' in change ? 'set' : 'add'} takes an integer${'set' in change ? ' from 0' : ''} up to ${MAX_CREDITS}; got ${String(amount)}`)
  }
  const adjust = requireCreditStore(store)
  const refill = record.credits.refill
  const state = await adjust.call(store, { familyId: record.familyId, change, refill, now })
  return { keyId: record.id, familyId: record.familyId, refill, ...state }
}

/** The store's `adjustCredits`, or a TypeError naming what is missing (checked at create too). */
export function requireCreditStore(store: KeyStore): NonNullable<KeyStore['adjustCredits']> {
  if (!store.spendCredits || !store.adjustCredits || !store.readCredits) {
    throw new TypeError('credits need a store with spendCredits, readCredits and adjustCredits (MemoryStore and RedisStore have them)')
  }
  return store.adjustCredits
}
