import { DERIVED_LEGACY_FIELDS, LEGACY_DEFAULTS, RECORD_FORMAT } from './record-codec.js'
import { defineLuaScript, PRELUDE } from './scripts.js'

/**
 * The scripts of `keyrot store migrate` (migrate.ts): they convert what an
 * earlier release wrote (record format 1, the tenant index as a sorted set)
 * in place. Apart from scripts.ts, which holds the scripts every store call
 * runs, so that one reads in one sitting.
 */

/** Format 1 name = its default value, the values format 2 leaves out. */
const LEGACY_DEFAULTS_TABLE = `{${Object.entries(LEGACY_DEFAULTS)
  .map(([name, value]) => `${name}='${value}'`)
  .join(', ')}}`

/**
 * KEYS: rec, cred. ARGV: the record's hash as format 1 stores it (PHC text),
 * the same hash as format 2 stores it (fields hv and h), now, retention.
 * Converts one format 1 record to format 2 in place (`keyrot store migrate`):
 * one script, so no write interleaves, and the record keeps its TTL; a field
 * this release does not know is kept under its own name. The
 * hash argument must still match (else `'changed'`: read again). The
 * credential becomes format 2's: `'1'` with the same TTL for a key with a
 * deadline, none without one or once revoked. A key without a deadline whose
 * credential Redis lost reads expired, as before: it gets `e` = now.
 * Reply: `'converted'`, `'current'`, `'changed'` or `'gone'`.
 */
const MIGRATE_RECORD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('HEXISTS', KEYS[1], 'v') == 1 then return 'current' end
if redis.call('HGET', KEYS[1], 'hash') ~= ARGV[1] then return 'changed' end
local SHORT = {}
for short, long in pairs(LEGACY) do SHORT[long] = short end
local DEFAULTS = ${LEGACY_DEFAULTS_TABLE}
local DERIVED = {${DERIVED_LEGACY_FIELDS.map((name) => `${name}=true`).join(', ')}}
local all = redis.call('HGETALL', KEYS[1])
local fresh = {'v', '${RECORD_FORMAT}', 'hv', ARGV[2], 'h', ARGV[3]}
for i = 1, #all, 2 do
  local name, value = all[i], all[i + 1]
  if SHORT[name] and name ~= 'hash' and DEFAULTS[name] ~= value then
    fresh[#fresh + 1] = SHORT[name]
    fresh[#fresh + 1] = value
  end
end
-- Rewritten rather than edited: Redis never turns a hashtable (the long
-- hash made one) back into a listpack. Time stands still in a script, so
-- the TTL read is the TTL restored.
for i = 1, #all, 2 do
  if not SHORT[all[i]] and not DERIVED[all[i]] then
    fresh[#fresh + 1] = all[i]
    fresh[#fresh + 1] = all[i + 1]
  end
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(fresh))
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
if redis.call('HEXISTS', KEYS[1], 'r') == 1 then
  redis.call('DEL', KEYS[2])
elseif redis.call('HEXISTS', KEYS[1], 'e') == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SET', KEYS[2], '1', 'KEEPTTL') end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[1], 'e', ARGV[4])
  keepRecord(KEYS[1], tonumber(ARGV[5]))
end
return 'converted'
`

/**
 * KEYS: the tenant's sorted set (earlier releases), its hash index (same
 * slot). ARGV: count. Moves up to `count` entries (the oldest) from the
 * sorted set to the hash, keeping an entry already in the hash.
 * Reply: `{moved, left}`.
 */
const MIGRATE_INDEX = `
local entries = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local ids = {}
for i = 1, #entries, 2 do
  redis.call('HSETNX', KEYS[2], entries[i], fmt(tonumber(entries[i + 1])))
  ids[#ids + 1] = entries[i]
end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return {#ids, redis.call('ZCARD', KEYS[1])}
`

export const MIGRATE_SCRIPTS = Object.freeze({
  migrateRecord: defineLuaScript('migrateRecord', PRELUDE + MIGRATE_RECORD, 2),
  migrateIndex: defineLuaScript('migrateIndex', PRELUDE + MIGRATE_INDEX, 2),
})
