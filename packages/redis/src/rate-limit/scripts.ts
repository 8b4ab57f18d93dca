import { defineLuaScript } from '../scripts.js'

/**
 * The rate limiter's Lua scripts: the rules of `decideAdmission`,
 * `decideRelease` and `decideQuota` in `@keyrot/core`, line for line, so the
 * memory and Redis limiters answer alike (a shared test suite holds both to
 * the same boundaries). Each call is one script: atomic, one round trip.
 *
 * Kept apart from the store's scripts: the limiter is an independent
 * component with its own keys.
 *
 * Numbers are epoch ms from the keyring's clock. Whole numbers are written
 * with `%.0f`; the GCRA arrival time is fractional (`windowMs / limit` need
 * not be whole) and is written with `%.3f`. Keys expire after a relative
 * `PEXPIRE`/`PX`, never at an absolute time: a replica whose clock differs
 * from Redis's cannot make counters vanish early.
 */

const PRELUDE = `
local function num(value)
  if value == false or value == nil or value == '' then return nil end
  return tonumber(value)
end
local function fmt(n) return string.format('%.0f', n) end
local function live(start, count, window, now)
  if start and now < start + window then return count end
  return 0
end
`

/**
 * KEYS: ip counters (hash), key-id failures (hash), network failures (hash); all in the `{abuse}` slot.
 * ARGV: now, hasIp, hasKey, chargeIp, chargeKey,
 *       ipLimit, ipWindow (0: off), blockThreshold, blockWindow, blockDuration (0: off),
 *       keyLimit, keyWindow (0: off), hasNetwork, networkLimit, networkWindow (0: off).
 * The network is charged with the IP (chargeIp).
 * Reply: {'ok'} or {policy, limit, windowMs, retryAfterMs}.
 * Hash fields: fs/fc failures window start/count, rs/rc block window, bu blocked until.
 */
const ADMIT = `
local now = tonumber(ARGV[1])
local hasIp, hasKey = ARGV[2] == '1', ARGV[3] == '1'
local chargeIp, chargeKey = ARGV[4] == '1', ARGV[5] == '1'
local ipLimit, ipWindow = tonumber(ARGV[6]), tonumber(ARGV[7])
local threshold, blockWindow, blockDuration = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local keyLimit, keyWindow = tonumber(ARGV[11]), tonumber(ARGV[12])
local hasNet, netLimit, netWindow = ARGV[13] == '1', tonumber(ARGV[14]), tonumber(ARGV[15])
local fs, fc, rs, rc, bu = nil, 0, nil, 0, 0
if hasIp then
  local h = redis.call('HMGET', KEYS[1], 'fs', 'fc', 'rs', 'rc', 'bu')
  fs, fc, rs, rc, bu = num(h[1]), num(h[2]) or 0, num(h[3]), num(h[4]) or 0, num(h[5]) or 0
  -- A served block wipes the slate.
  if bu ~= 0 and bu <= now then
    fs, fc, rs, rc, bu = nil, 0, nil, 0, 0
    redis.call('DEL', KEYS[1])
  end
  if bu > now then return {'ip-block', threshold, blockWindow, fmt(bu - now)} end
  if ipWindow > 0 and live(fs, fc, ipWindow, now) >= ipLimit then
    return {'ip-failures', ipLimit, ipWindow, fmt(fs + ipWindow - now)}
  end
end
local ns, nc = nil, 0
if hasNet and netWindow > 0 then
  local h = redis.call('HMGET', KEYS[3], 's', 'c')
  ns, nc = num(h[1]), num(h[2]) or 0
  if live(ns, nc, netWindow, now) >= netLimit then
    return {'network-failures', netLimit, netWindow, fmt(ns + netWindow - now)}
  end
end
local ks, kc = nil, 0
if hasKey and keyWindow > 0 then
  local h = redis.call('HMGET', KEYS[2], 's', 'c')
  ks, kc = num(h[1]), num(h[2]) or 0
  if live(ks, kc, keyWindow, now) >= keyLimit then
    return {'key-failures', keyLimit, keyWindow, fmt(ks + keyWindow - now)}
  end
end
if hasIp and chargeIp then
  local untilAt = now
  if ipWindow > 0 then
    if fs and now < fs + ipWindow then fc = fc + 1 else fs, fc = now, 1 end
    redis.call('HSET', KEYS[1], 'fs', fmt(fs), 'fc', fc)
    untilAt = math.max(untilAt, fs + ipWindow)
  end
  if blockWindow > 0 then
    if rs and now < rs + blockWindow then rc = rc + 1 else rs, rc = now, 1 end
    redis.call('HSET', KEYS[1], 'rs', fmt(rs), 'rc', rc)
    untilAt = math.max(untilAt, rs + blockWindow)
    if rc >= threshold then
      bu = now + blockDuration
      redis.call('HSET', KEYS[1], 'bu', fmt(bu))
      untilAt = math.max(untilAt, bu)
    end
  end
  if untilAt > now then redis.call('PEXPIRE', KEYS[1], fmt(untilAt - now)) end
end
if hasNet and chargeIp and netWindow > 0 then
  if ns and now < ns + netWindow then nc = nc + 1 else ns, nc = now, 1 end
  redis.call('HSET', KEYS[3], 's', fmt(ns), 'c', nc)
  redis.call('PEXPIRE', KEYS[3], fmt(ns + netWindow - now))
end
if hasKey and chargeKey and keyWindow > 0 then
  if ks and now < ks + keyWindow then kc = kc + 1 else ks, kc = now, 1 end
  redis.call('HSET', KEYS[2], 's', fmt(ks), 'c', kc)
  redis.call('PEXPIRE', KEYS[2], fmt(ks + keyWindow - now))
end
return {'ok'}
`

/**
 * KEYS: ip counters, key-id failures, network failures.
 * ARGV: now, hasIp, hasKey, chargedAt, ipWindow (0: off), blockThreshold, blockWindow (0: off), keyWindow (0: off),
 *       hasNetwork, networkWindow (0: off).
 * Refunds one failure in the window the charge landed in; lifts a block its
 * failures no longer justify. Reply: {'ok'}.
 */
const RELEASE = `
local now, chargedAt = tonumber(ARGV[1]), tonumber(ARGV[4])
local hasIp, hasKey = ARGV[2] == '1', ARGV[3] == '1'
local ipWindow, threshold, blockWindow, keyWindow = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local hasNet, netWindow = ARGV[9] == '1', tonumber(ARGV[10])
local function landed(start, window) return start and chargedAt >= start and chargedAt < start + window end
if hasIp and redis.call('EXISTS', KEYS[1]) == 1 then
  local h = redis.call('HMGET', KEYS[1], 'fs', 'fc', 'rs', 'rc', 'bu')
  local fs, fc, rs, rc, bu = num(h[1]), num(h[2]) or 0, num(h[3]), num(h[4]) or 0, num(h[5]) or 0
  if ipWindow > 0 and fc > 0 and landed(fs, ipWindow) then redis.call('HSET', KEYS[1], 'fc', fc - 1) end
  if blockWindow > 0 then
    if rc > 0 and landed(rs, blockWindow) then
      rc = rc - 1
      redis.call('HSET', KEYS[1], 'rc', rc)
    end
    if bu > now and live(rs, rc, blockWindow, now) < threshold then redis.call('HSET', KEYS[1], 'bu', '0') end
  end
end
if hasKey and keyWindow > 0 then
  local h = redis.call('HMGET', KEYS[2], 's', 'c')
  local ks, kc = num(h[1]), num(h[2]) or 0
  if kc > 0 and landed(ks, keyWindow) then redis.call('HSET', KEYS[2], 'c', kc - 1) end
end
if hasNet and netWindow > 0 then
  local h = redis.call('HMGET', KEYS[3], 's', 'c')
  local ns, nc = num(h[1]), num(h[2]) or 0
  if nc > 0 and landed(ns, netWindow) then redis.call('HSET', KEYS[3], 'c', nc - 1) end
end
return {'ok'}
`

/**
 * KEYS: the key's quota (its GCRA arrival time, a string).
 * ARGV: now, limit, windowMs.
 * Reply: {'ok', remaining, resetMs} or {'limited', resetMs, retryAfterMs}.
 * The arrival time expires when the quota is whole again, so an idle key costs nothing.
 */
const CONSUME = `
local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local epsilon = 0.000001
local interval = window / limit
local tat = num(redis.call('GET', KEYS[1]))
local base = now
if tat and tat > now then base = tat end
local nextAt = base + interval
if nextAt - now > window + epsilon then
  return {'limited', fmt(math.ceil(base - now)), fmt(math.ceil(nextAt - now - window))}
end
redis.call('SET', KEYS[1], string.format('%.3f', nextAt), 'PX', fmt(math.max(1, math.ceil(nextAt - now))))
local remaining = math.floor((window - (nextAt - now)) / interval + epsilon)
if remaining < 0 then remaining = 0 end
return {'ok', remaining, fmt(math.ceil(nextAt - now))}
`

export const RATE_LIMIT_SCRIPTS = Object.freeze({
  admit: defineLuaScript('rateLimitAdmit', PRELUDE + ADMIT, 3),
  release: defineLuaScript('rateLimitRelease', PRELUDE + RELEASE, 3),
  consume: defineLuaScript('rateLimitConsume', PRELUDE + CONSUME, 1),
})
