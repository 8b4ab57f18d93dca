import { defineLuaScript } from '../scripts.js'

/**
 * The admin history's Lua script. Kept apart from the store's scripts: the
 * history is an independent component with its own keys, all in the
 * `{history}` slot.
 *
 * Hashes are computed in Node (SHA-256; Redis's Lua has only SHA-1): the
 * script is a compare-and-set on the head. It appends only if the head is
 * still the one the entry was chained to, and otherwise answers with the
 * head that moved, so the appender rechains and tries again. Of concurrent
 * appends from any number of replicas, exactly one wins each head: the
 * stream is one linear chain.
 *
 * Fairness: a bare compare-and-set starves a loser while another replica
 * appends back to back (the winner's reply arrives first, so its next try
 * does too). The first loser therefore takes the next turn (a short-lived
 * `turn` key holding its token); until it has appended, or the turn expired,
 * others are told to wait.
 */

/**
 * KEYS: stream, head (hash: hash, seq, id, trimmedThrough), turn.
 * ARGV: expected head hash ('' when the log is empty), new entry's hash,
 *       new entry's seq, maxLength, turn ms, appender's token, then the
 *       entry's field/value pairs.
 * Reply: {'ok', id}, {'moved', head hash, head seq} (the turn is now the
 * caller's: retry at once) or {'wait', head hash, head seq} (another
 * appender's turn: retry a little later).
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
local seq = tonumber(head[2] or '0') or 0
local seqText = string.format('%.0f', seq)
local turn = redis.call('GET', KEYS[3])
if turn and turn ~= ARGV[6] then return {'wait', current, seqText} end
if current ~= ARGV[1] or tonumber(ARGV[3]) ~= seq + 1 then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[5])
  return {'moved', current, seqText}
end
local before = firstSeq(KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 7))
local after = firstSeq(KEYS[1])
if before and after and after ~= before then
  redis.call('HSET', KEYS[2], 'trimmedThrough', string.format('%.0f', after - 1))
end
redis.call('HSET', KEYS[2], 'hash', ARGV[2], 'seq', ARGV[3], 'id', id)
if turn then redis.call('DEL', KEYS[3]) end
return {'ok', id}
`

export const HISTORY_SCRIPTS = Object.freeze({
  append: defineLuaScript('historyAppend', APPEND, 3),
})
