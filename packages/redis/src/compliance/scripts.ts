import { defineLuaScript } from '../scripts.js'

/**
 * The per-day usage counter of evidence reports. Kept apart from the
 * store's scripts like the history's: its own key per key id, in the key
 * family's slot.
 *
 * KEYS: the day hash (`<p>:{<family>}:usd:<keyId>`, field `<UTC day number>`).
 * ARGV: today's day number, uses to add, days kept, TTL ms.
 * Adds the uses to today, drops fields older than the days kept (at most
 * that many fields plus today's are ever read: the hash is small) and keeps
 * the whole hash for the TTL after its last use.
 */
const ADD_DAILY_USAGE = `
local day = tonumber(ARGV[1])
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
local oldest = day - tonumber(ARGV[3])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local n = tonumber(field)
  if n == nil or n <= oldest then redis.call('HDEL', KEYS[1], field) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`

export const COMPLIANCE_SCRIPTS = Object.freeze({
  addDailyUsage: defineLuaScript('addDailyUsage', ADD_DAILY_USAGE, 1),
})
