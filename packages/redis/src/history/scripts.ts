import { createHash } from 'node:crypto'
import { normaliseLua, type LuaScript } from '../scripts.js'

/**
 * The admin history's Lua script. Kept apart from the store's scripts: the
 * history is an independent component with its own keys, both in the
 * `{history}` slot.
 *
 * Hashes are computed in Node (SHA-256; Redis's Lua has only SHA-1): the
 * script is a compare-and-set on the head. It appends only if the head is
 * still the one the entry was chained to, and otherwise answers with the
 * head that moved, so the appender rechains and tries again. Of concurrent
 * appends from any number of replicas, exactly one wins each head: the
 * stream is one linear chain.
 */

/**
 * KEYS: stream, head (hash: hash, seq, id, trimmedThrough).
 * ARGV: expected head hash ('' when the log is empty), new entry's hash,
 *       new entry's seq, maxLength, then the entry's field/value pairs.
 * Reply: {'ok', id} or {'moved', head hash, head seq}.
 *
 * `trimmedThrough` is the last seq the length bound removed, measured across
 * this script's own XADD: what disappears in it is trimming; whatever else is
 * missing at the start was deleted by hand, and `verify()` reports it.
 */
const APPEND = `
local function firstSeq(stream)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if not first then return nil end
  local fields = first[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'seq' then return tonumber(fields[i + 1]) end
  end
  return nil
end
local head = redis.call('HMGET', KEYS[2], 'hash', 'seq')
local current = head[1] or ''
local currentSeq = tonumber(head[2] or '0') or 0
if current ~= ARGV[1] or tonumber(ARGV[3]) ~= currentSeq + 1 then
  return {'moved', current, string.format('%.0f', currentSeq)}
end
local before = firstSeq(KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
local after = firstSeq(KEYS[1])
if before and after and after ~= before then
  redis.call('HSET', KEYS[2], 'trimmedThrough', string.format('%.0f', after - 1))
end
redis.call('HSET', KEYS[2], 'hash', ARGV[2], 'seq', ARGV[3], 'id', id)
return {'ok', id}
`

function script(name: string, body: string, numberOfKeys: number): LuaScript {
  const source = normaliseLua(body)
  return Object.freeze({ name, source, sha: createHash('sha1').update(source).digest('hex'), numberOfKeys })
}

export const HISTORY_SCRIPTS = Object.freeze({
  append: script('historyAppend', APPEND, 2),
})
