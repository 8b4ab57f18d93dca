import { createHash } from 'node:crypto'
import { LEGACY_FIELD_NAMES } from './record-codec.js'

/**
 * Every Lua script of the store. Each write is one script, so it is atomic
 * and takes one round trip. Every key a script touches is passed in `KEYS`
 * and shares the key family's hash tag (one Cluster slot).
 *
 * Replies are tagged lists, parsed defensively by the store:
 * `{'ok', ...}`, `{'not_found'}`, `{'exists'}`, and for a key that can no
 * longer be rotated `{'revoked' | 'rotated' | 'expired', <record>}`.
 *
 * Sources are whitespace-normalised (comments and indentation dropped) so
 * that their SHA1 is stable; the store runs them with `EVALSHA` and falls
 * back to `EVAL` on `NOSCRIPT` only.
 *
 * Numbers are epoch ms, formatted with `%.0f` (exact below 2^53; Lua's
 * `tostring` would switch to exponents).
 */

/** Format 2 name = format 1 name, as a Lua table constructor (generated from record-codec.ts). */
const LEGACY_TABLE = `{${Object.entries(LEGACY_FIELD_NAMES)
  .map(([short, long]) => `${short}='${long}'`)
  .join(', ')}}`

export const PRELUDE = `
local function num(value)
  if value == false or value == nil or value == '' then return nil end
  return tonumber(value)
end
local function fmt(n) return string.format('%.0f', n) end
-- A record written by an earlier release (format 1: long field names, the
-- hash as text, no 'v') is read and updated in its own format until
-- 'keyrot store migrate' converts it. F(rec, name) is a field's name in rec.
local LEGACY = ${LEGACY_TABLE}
local FORMATS = {}
local function isLegacy(rec)
  if FORMATS[rec] == nil then
    FORMATS[rec] = redis.call('EXISTS', rec) == 1 and redis.call('HEXISTS', rec, 'v') == 0
  end
  return FORMATS[rec]
end
local function F(rec, name)
  if isLegacy(rec) then return LEGACY[name] end
  return name
end
local function hnum(key, name) return num(redis.call('HGET', key, name)) end
local function field(rec, name) return hnum(rec, F(rec, name)) end
local function has(key, name) return redis.call('HEXISTS', key, F(key, name)) == 1 end
local function opt(arg)
  if arg == '' then return nil end
  return string.sub(arg, 2)
end
local function setOpt(key, name, arg)
  local value = opt(arg)
  if value then redis.call('HSET', key, F(key, name), value) else redis.call('HDEL', key, F(key, name)) end
end
-- A record as scripts reply it: format 2 with its id (from the key name)
-- appended; format 1 as stored.
local function record(rec)
  local all = redis.call('HGETALL', rec)
  if #all == 0 or isLegacy(rec) then return all end
  all[#all + 1] = 'id'
  all[#all + 1] = string.match(rec, ':rec:([^:]*)$')
  return all
end
-- The record outlives its key by the retention period, counted from the
-- later of its deadline and its revocation; without either it has no TTL.
local function keepRecord(rec, retention)
  local expiresAt = field(rec, 'e')
  local revokedAt = field(rec, 'r')
  local untilAt = expiresAt
  if revokedAt and (not untilAt or revokedAt > untilAt) then untilAt = revokedAt end
  if untilAt then redis.call('PEXPIREAT', rec, fmt(untilAt + retention)) else redis.call('PERSIST', rec) end
end
-- The credential verify relies on: absent once revoked; with a deadline,
-- a key expiring at it by Redis's clock (PEXPIREAT; a deadline in the past
-- deletes it). Format 2 needs no credential key for a key without a
-- deadline (its record says it is live); format 1 keeps the hash there.
local function setCredential(rec, cred)
  if field(rec, 'r') then
    redis.call('DEL', cred)
    return
  end
  local expiresAt = field(rec, 'e')
  if isLegacy(rec) then
    redis.call('SET', cred, redis.call('HGET', rec, 'hash'))
  elseif expiresAt then
    redis.call('SET', cred, '1')
  else
    redis.call('DEL', cred)
    return
  end
  if expiresAt then redis.call('PEXPIREAT', cred, fmt(expiresAt)) end
end
-- 1 while the key's credential holds: not revoked, and its credential key
-- exists or (format 2) it has no deadline. 0 once Redis expired it.
local function live(rec, cred)
  if redis.call('EXISTS', cred) == 1 then return 1 end
  if isLegacy(rec) or has(rec, 'e') or has(rec, 'r') then return 0 end
  return 1
end
local function refuseRotation(rec, cred, now)
  if redis.call('EXISTS', rec) == 0 then return {'not_found'} end
  if has(rec, 'r') then return {'revoked', record(rec)} end
  if has(rec, 'o') then return {'rotated', record(rec)} end
  local expiresAt = field(rec, 'e')
  -- A missing credential means Redis already expired the key by its own clock.
  if (expiresAt and expiresAt <= now) or live(rec, cred) == 0 then
    return {'expired', record(rec)}
  end
  return nil
end
local function addKey(rec, cred, pairs, first, retention)
  redis.call('HSET', rec, unpack(pairs, first))
  setCredential(rec, cred)
  keepRecord(rec, retention)
end
local function notify(channel, message)
  if channel ~= '' then redis.call('PUBLISH', channel, message) end
end
`

/**
 * KEYS: rec, cred. ARGV: retention, ...record pairs.
 * Refuses an id already taken.
 */
const INSERT = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end
addKey(KEYS[1], KEYS[2], ARGV, 2, tonumber(ARGV[1]))
return {'ok'}
`

/** KEYS: rec, cred. Reply: `{'ok', <record>, live}` (see `live`). */
const READ = `
return {'ok', record(KEYS[1]), live(KEYS[1], KEYS[2])}
`

/**
 * KEYS: old rec, old cred, new rec, new cred.
 * ARGV: now, graceDeadline, retention, channel, message, newKeyId, ...new record pairs.
 * The old key ends at min(its deadline, graceDeadline); a second rotation is refused.
 */
const ROTATE = `
local now = tonumber(ARGV[1])
local refusal = refuseRotation(KEYS[1], KEYS[2], now)
if refusal then return refusal end
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return {'exists'} end
local retention = tonumber(ARGV[3])
local deadline = tonumber(ARGV[2])
local expiresAt = field(KEYS[1], 'e')
if expiresAt and expiresAt < deadline then deadline = expiresAt end
redis.call('HSET', KEYS[1], F(KEYS[1], 'o'), ARGV[6], F(KEYS[1], 'a'), ARGV[1], F(KEYS[1], 'e'), fmt(deadline))
redis.call('HDEL', KEYS[1], F(KEYS[1], 'x'))
setCredential(KEYS[1], KEYS[2])
keepRecord(KEYS[1], retention)
addKey(KEYS[3], KEYS[4], ARGV, 7, retention)
notify(ARGV[4], ARGV[5])
return {'ok', record(KEYS[1]), record(KEYS[3])}
`

/**
 * KEYS: rec, cred. ARGV: at, reason (optional), incidentId (optional), retention, channel, message.
 * Idempotent: a revoked key is returned unchanged. Reply: `{'ok', changed, <record>}`.
 */
const REVOKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if has(KEYS[1], 'r') then return {'ok', 0, record(KEYS[1])} end
redis.call('HSET', KEYS[1], F(KEYS[1], 'r'), ARGV[1])
redis.call('HDEL', KEYS[1], F(KEYS[1], 'x'))
setOpt(KEYS[1], 'w', ARGV[2])
setOpt(KEYS[1], 'i', ARGV[3])
redis.call('DEL', KEYS[2])
keepRecord(KEYS[1], tonumber(ARGV[4]))
notify(ARGV[5], ARGV[6])
return {'ok', 1, record(KEYS[1])}
`

/**
 * KEYS: old rec, old cred, new rec, new cred.
 * ARGV: at, reason, incidentId, retention, channel, message, newKeyId, ...new record pairs.
 */
const EMERGENCY_ROTATE = `
local refusal = refuseRotation(KEYS[1], KEYS[2], tonumber(ARGV[1]))
if refusal then return refusal end
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return {'exists'} end
local retention = tonumber(ARGV[4])
local old = KEYS[1]
redis.call('HSET', old, F(old, 'r'), ARGV[1], F(old, 'w'), ARGV[2], F(old, 'i'), ARGV[3], F(old, 'o'), ARGV[7], F(old, 'a'), ARGV[1])
redis.call('HDEL', old, F(old, 'x'))
redis.call('DEL', KEYS[2])
keepRecord(old, retention)
addKey(KEYS[3], KEYS[4], ARGV, 8, retention)
notify(ARGV[5], ARGV[6])
return {'ok', record(old), record(KEYS[3])}
`

/**
 * KEYS: rec, cred. ARGV: expiresAt ('' for none), retention, channel, message.
 * Re-creates the credential from the record, so extending an expired key
 * brings it back (a revoked key stays without one).
 */
const SET_EXPIRY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], F(KEYS[1], 'e')) else redis.call('HSET', KEYS[1], F(KEYS[1], 'e'), ARGV[1]) end
setCredential(KEYS[1], KEYS[2])
keepRecord(KEYS[1], tonumber(ARGV[2]))
notify(ARGV[3], ARGV[4])
return {'ok', record(KEYS[1])}
`

/**
 * KEYS: rec. ARGV: allowedIps as JSON ('' to lift the restriction), channel, message.
 */
const SET_ALLOWED_IPS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], F(KEYS[1], 'ip')) else redis.call('HSET', KEYS[1], F(KEYS[1], 'ip'), ARGV[1]) end
notify(ARGV[2], ARGV[3])
return {'ok', record(KEYS[1])}
`

/**
 * KEYS: rec, cred. ARGV: hash (PHC text, for format 1), then fields hv and h
 * (format 2); optionally the hash it replaces, in the same three forms: the
 * update happens only while that hash is still stored ({'ok', '0'} when not).
 * Keeps the credential's TTL.
 */
const UPDATE_HASH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if isLegacy(KEYS[1]) then
  if ARGV[4] ~= nil and redis.call('HGET', KEYS[1], 'hash') ~= ARGV[4] then return {'ok', '0'} end
  redis.call('HSET', KEYS[1], 'hash', ARGV[1])
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SET', KEYS[2], ARGV[1], 'KEEPTTL') end
else
  if ARGV[4] ~= nil and (redis.call('HGET', KEYS[1], 'hv') ~= ARGV[5] or redis.call('HGET', KEYS[1], 'h') ~= ARGV[6]) then return {'ok', '0'} end
  redis.call('HSET', KEYS[1], 'hv', ARGV[2], 'h', ARGV[3])
end
return {'ok'}
`

/**
 * KEYS: rec. ARGV: count, lastUsedAt, lastUsedInGraceAt ('' for none).
 * Never re-creates a record that is gone; keeps the latest times.
 */
const RECORD_USAGE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], F(KEYS[1], 'u'), ARGV[1])
local last = field(KEYS[1], 'l')
if not last or tonumber(ARGV[2]) > last then redis.call('HSET', KEYS[1], F(KEYS[1], 'l'), ARGV[2]) end
if ARGV[3] ~= '' then
  local lastGrace = field(KEYS[1], 'g')
  if not lastGrace or tonumber(ARGV[3]) > lastGrace then redis.call('HSET', KEYS[1], F(KEYS[1], 'g'), ARGV[3]) end
end
return 1
`

/**
 * KEYS: rec, cred. ARGV: retention, channel, message, ...revoked record pairs (format 2).
 * Writes a revocation back after a store reset: a missing key is stored as
 * the revoked record, a stored key not yet revoked gets its revocation; a
 * revoked key is left alone. Only ever tightens. Reply: `{'ok', changed}`.
 */
const RESTORE_REVOCATION = `
local wanted = {}
for i = 4, #ARGV, 2 do wanted[ARGV[i]] = ARGV[i + 1] end
if not wanted['r'] then return {'not_found'} end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if has(KEYS[1], 'r') then return {'ok', 0} end
  redis.call('HSET', KEYS[1], F(KEYS[1], 'r'), wanted['r'])
  if wanted['w'] then redis.call('HSET', KEYS[1], F(KEYS[1], 'w'), wanted['w']) end
  if wanted['i'] then redis.call('HSET', KEYS[1], F(KEYS[1], 'i'), wanted['i']) end
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
redis.call('DEL', KEYS[2])
keepRecord(KEYS[1], tonumber(ARGV[1]))
notify(ARGV[2], ARGV[3])
return {'ok', 1}
`

/**
 * KEYS: rec, cred. ARGV: proof. Keeps a shared proof on a key that still
 * verifies; refuses one for a key that is gone, revoked, rotated or past its
 * deadline (its credential expired), so a late write from a replica that
 * proved the token before a revocation cannot bring a proof back.
 * Reply: `{'ok'}` or `{'refused'}`.
 */
const PUT_PROOF = `
if redis.call('EXISTS', KEYS[1]) == 0 or live(KEYS[1], KEYS[2]) == 0 then return {'refused'} end
if has(KEYS[1], 'r') or has(KEYS[1], 'o') then return {'refused'} end
redis.call('HSET', KEYS[1], F(KEYS[1], 'x'), ARGV[1])
return {'ok'}
`

/**
 * KEYS: rotm, rotc (layout.rotationMinutes / rotationClients).
 * ARGV: retentionMinutes, ttlMs, maxClients, omittedClients, lastUsedAt, minuteCount,
 * then minuteCount pairs (minute, count), then triples (client field, count,
 * lastSeenAt). Adds one replica's flushed rotation uses to what every replica
 * wrote. Minutes sit in a ring of `retentionMinutes` fields (an older minute
 * in a slot is replaced); past `maxClients` the clients seen least recently
 * are dropped and counted in `omitted`. Both keys expire `ttlMs` after the
 * last write, so nothing outlives a day without uses.
 */
const RECORD_ROTATION_USAGE = `
local retention = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local maxClients = tonumber(ARGV[3])
local omitted = tonumber(ARGV[4])
local lastUsedAt = tonumber(ARGV[5])
local minutes = tonumber(ARGV[6])
local i = 7
local last = hnum(KEYS[1], 'last')
if not last or lastUsedAt > last then redis.call('HSET', KEYS[1], 'last', fmt(lastUsedAt)) end
for _ = 1, minutes do
  local minute = tonumber(ARGV[i])
  local count = tonumber(ARGV[i + 1])
  i = i + 2
  local slot = 'm' .. fmt(minute % retention)
  local held = redis.call('HGET', KEYS[1], slot)
  local heldMinute, heldCount = nil, 0
  if held then
    local cut = string.find(held, ':', 1, true)
    if cut then
      heldMinute = tonumber(string.sub(held, 1, cut - 1))
      heldCount = tonumber(string.sub(held, cut + 1)) or 0
    end
  end
  if heldMinute == minute then
    redis.call('HSET', KEYS[1], slot, string.format('%.0f:%.0f', minute, heldCount + count))
  elseif heldMinute == nil or heldMinute < minute then
    redis.call('HSET', KEYS[1], slot, string.format('%.0f:%.0f', minute, count))
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
local added = false
while i + 2 <= #ARGV do
  local name = 'c' .. ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local seen = tonumber(ARGV[i + 2])
  i = i + 3
  local held = redis.call('HGET', KEYS[2], name)
  if held then
    local cut = string.find(held, ':', 1, true)
    local heldCount = tonumber(string.sub(held, 1, cut - 1)) or 0
    local heldSeen = tonumber(string.sub(held, cut + 1)) or 0
    if heldSeen > seen then seen = heldSeen end
    count = count + heldCount
  end
  redis.call('HSET', KEYS[2], name, string.format('%.0f:%.0f', count, seen))
  added = true
end
if omitted > 0 then
  redis.call('HINCRBY', KEYS[2], 'omitted', omitted)
  added = true
end
if added then
  -- Over the bound: drop the clients seen least recently (the hash holds at most maxClients + one flush's worth).
  local over = redis.call('HLEN', KEYS[2]) - maxClients
  if redis.call('HEXISTS', KEYS[2], 'omitted') == 1 then over = over - 1 end
  if over > 0 then
    local entries = {}
    local all = redis.call('HGETALL', KEYS[2])
    for j = 1, #all, 2 do
      if all[j] ~= 'omitted' then
        local cut = string.find(all[j + 1], ':', 1, true)
        entries[#entries + 1] = { all[j], tonumber(string.sub(all[j + 1], cut + 1)) or 0 }
      end
    end
    table.sort(entries, function(a, b) return a[2] < b[2] end)
    for j = 1, over do redis.call('HDEL', KEYS[2], entries[j][1]) end
    redis.call('HINCRBY', KEYS[2], 'omitted', over)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`

/**
 * KEYS: identity, sequence, reset flag (one slot: the `{store}` tag).
 * ARGV: a new identity, '1' to create it when missing.
 * One round trip for a look at the store (see store-identity.ts).
 * Reply: `{identity | nil, sequence | nil, flag | nil}`.
 */
const STORE_LOOK = `
local identity = redis.call('GET', KEYS[1])
if not identity and ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[1])
  identity = ARGV[1]
end
return {identity, redis.call('GET', KEYS[2]), redis.call('GET', KEYS[3])}
`

/**
 * KEYS: identity, sequence, reset flag. ARGV: a new identity, the flag (JSON).
 * A process noticed a reset: sets the flag unless one is set, and an identity
 * unless one exists. Reply: the identity now.
 */
const STORE_FLAG_RESET = `
redis.call('SET', KEYS[3], ARGV[2], 'NX')
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`

export interface LuaScript {
  readonly name: string
  /** Normalised source, prelude included. */
  readonly source: string
  readonly sha: string
  readonly numberOfKeys: number
}

/** Drops comment lines, indentation and blank lines, so the SHA does not depend on formatting. */
export function normaliseLua(source: string): string {
  return source
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('--'))
    .join('\n')
}

/**
 * A script ready for `runScript`: its source normalised and its SHA1 computed
 * once. Every module's scripts (store, rate limiter, admin history) are made
 * here, so they are all normalised and hashed alike.
 */
export function defineLuaScript(name: string, source: string, numberOfKeys: number): LuaScript {
  const normalised = normaliseLua(source)
  return Object.freeze({ name, source: normalised, sha: createHash('sha1').update(normalised).digest('hex'), numberOfKeys })
}

export const SCRIPTS = Object.freeze({
  insert: defineLuaScript('insert', PRELUDE + INSERT, 2),
  read: defineLuaScript('read', PRELUDE + READ, 2),
  rotate: defineLuaScript('rotate', PRELUDE + ROTATE, 4),
  revoke: defineLuaScript('revoke', PRELUDE + REVOKE, 2),
  emergencyRotate: defineLuaScript('emergencyRotate', PRELUDE + EMERGENCY_ROTATE, 4),
  setExpiry: defineLuaScript('setExpiry', PRELUDE + SET_EXPIRY, 2),
  updateHash: defineLuaScript('updateHash', PRELUDE + UPDATE_HASH, 2),
  recordUsage: defineLuaScript('recordUsage', PRELUDE + RECORD_USAGE, 1),
  restoreRevocation: defineLuaScript('restoreRevocation', PRELUDE + RESTORE_REVOCATION, 2),
  putProof: defineLuaScript('putProof', PRELUDE + PUT_PROOF, 2),
  setAllowedIps: defineLuaScript('setAllowedIps', PRELUDE + SET_ALLOWED_IPS, 1),
  recordRotationUsage: defineLuaScript('recordRotationUsage', PRELUDE + RECORD_ROTATION_USAGE, 2),
  storeLook: defineLuaScript('storeLook', STORE_LOOK, 3),
  storeFlagReset: defineLuaScript('storeFlagReset', STORE_FLAG_RESET, 3),
})

/** Whether Redis answered that it does not have the script cached (the only error retried with `EVAL`). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT')
}
