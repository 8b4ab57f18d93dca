import { refilled, stateOfBalance, type AdjustCreditsInput, type CreditBalance, type CreditsRefill, type CreditsState, type SpendCreditsInput } from '@keyrot/core'
import { runScript } from './connection.js'
import type { RedisClient } from './options.js'
import { CorruptRecordError } from './record-codec.js'
import { defineLuaScript } from './scripts.js'

/**
 * Credit balances on Redis: one hash per key family,
 * `<p>:{<family>}:credits` with `r` (remaining) and `t` (last refill, epoch
 * ms), in the family's slot. The rules are core's `decideSpend` and
 * `decideAdjust`, line for line, so both stores answer alike (the store
 * contract suite holds them to it).
 *
 * Kept apart from the record: a spend touches one small key with one script
 * (one round trip), the record codec never sees the balance, and keys
 * rotated from one another share it because they share the family.
 *
 * Concurrency: each spend is one Lua script, run by Redis alone between two
 * commands. N replicas spending at once on a balance of B get exactly
 * min(N, B) successes (cost 1); there is no read-then-write from Node.
 */

const PRELUDE = `
local function num(value)
  if value == false or value == nil or value == '' then return nil end
  return tonumber(value)
end
local function fmt(n) return string.format('%.0f', n) end
local function refilled(key, now, amount, interval)
  local stored = redis.call('HMGET', key, 'r', 't')
  local remaining = num(stored[1])
  local refilledAt = num(stored[2])
  if not remaining or not refilledAt then
    remaining = 0
    refilledAt = now
  end
  if amount > 0 and now >= refilledAt + interval then
    local periods = math.floor((now - refilledAt) / interval)
    if remaining < amount then remaining = amount end
    refilledAt = refilledAt + periods * interval
  end
  return remaining, refilledAt
end
`

/**
 * KEYS: credits. ARGV: now, cost, refill amount (0: no refill), refill interval.
 * Reply: {ok (1/0), remaining, refilledAt}.
 */
const SPEND = `
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local remaining, refilledAt = refilled(KEYS[1], now, tonumber(ARGV[3]), tonumber(ARGV[4]))
local need = cost
if need < 1 then need = 1 end
local ok = 0
if remaining >= need then
  remaining = remaining - cost
  ok = 1
end
redis.call('HSET', KEYS[1], 'r', fmt(remaining), 't', fmt(refilledAt))
return {ok, fmt(remaining), fmt(refilledAt)}
`

/**
 * KEYS: credits. ARGV: now, refill amount, refill interval, 'set' | 'add', n, max.
 * Reply: {1, remaining, refilledAt}.
 */
const ADJUST = `
local now = tonumber(ARGV[1])
local remaining, refilledAt = refilled(KEYS[1], now, tonumber(ARGV[2]), tonumber(ARGV[3]))
local n = tonumber(ARGV[5])
if ARGV[4] == 'set' then
  remaining = n
else
  remaining = remaining + n
  if remaining < 0 then remaining = 0 end
  if remaining > tonumber(ARGV[6]) then remaining = tonumber(ARGV[6]) end
end
redis.call('HSET', KEYS[1], 'r', fmt(remaining), 't', fmt(refilledAt))
return {1, fmt(remaining), fmt(refilledAt)}
`

export const CREDIT_SCRIPTS = Object.freeze({
  spend: defineLuaScript('spendCredits', PRELUDE + SPEND, 1),
  adjust: defineLuaScript('adjustCredits', PRELUDE + ADJUST, 1),
})

/** The balance's Redis key: in the family's hash slot, like its records. */
export function creditsKey(prefix: string, familyId: string): string {
  return `${prefix}:{${familyId}}:credits`
}

function refillArgs(refill: CreditsRefill | null): [number, number] {
  return refill ? [refill.amount, refill.intervalMs] : [0, 0]
}

function integer(value: unknown, what: string): number {
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(parsed)) throw new CorruptRecordError(`a credits reply has a bad ${what}`)
  return parsed
}

function parseReply(reply: unknown): { ok: boolean; balance: CreditBalance } {
  if (!Array.isArray(reply) || reply.length !== 3) throw new CorruptRecordError('a credits reply is not {ok, remaining, refilledAt}')
  const ok = integer(reply[0], 'flag')
  return { ok: ok === 1, balance: { remaining: integer(reply[1], 'remaining'), refilledAt: integer(reply[2], 'refill time') } }
}

export async function spendCredits(redis: RedisClient, prefix: string, input: SpendCreditsInput): Promise<{ ok: boolean; state: CreditsState }> {
  const reply = await runScript(redis, CREDIT_SCRIPTS.spend, [creditsKey(prefix, input.familyId)], [input.now, input.cost, ...refillArgs(input.refill)])
  const { ok, balance } = parseReply(reply)
  return { ok, state: stateOfBalance(balance, input.refill) }
}

export async function adjustCredits(redis: RedisClient, prefix: string, input: AdjustCreditsInput, max: number): Promise<CreditsState> {
  const [mode, n] = 'set' in input.change ? ['set', input.change.set] : ['add', input.change.add]
  const reply = await runScript(redis, CREDIT_SCRIPTS.adjust, [creditsKey(prefix, input.familyId)], [input.now, ...refillArgs(input.refill), mode, n, max])
  return stateOfBalance(parseReply(reply).balance, input.refill)
}

/** Reads without writing: the refills due are applied to the answer only (the next spend writes them). */
export async function readCredits(redis: RedisClient, prefix: string, familyId: string, refill: CreditsRefill | null, now: number): Promise<CreditsState> {
  const [remaining, refilledAt] = (await redis.hmget(creditsKey(prefix, familyId), 'r', 't')) as (string | null)[]
  const balance = remaining == null || refilledAt == null ? null : { remaining: integer(remaining, 'remaining'), refilledAt: integer(refilledAt, 'refill time') }
  return stateOfBalance(refilled(balance, refill, now), refill)
}
