-- checkRateLimits: GCRA on the Redis clock for one or more rate-limit requests, each over one or
-- more policies, all or nothing per request: when every policy of a request admits it, each is
-- charged (unless the request is a dry run); when one refuses, none is.
--
-- Requests are handled in order, so a later request sees what an earlier one charged: a batch
-- gives exactly the results of the same requests sent one by one at the same instant. Callers
-- batch the checks that arrive together, to spend one script call on many of them. A dry run
-- (charge 0: RateLimits.peek) answers exactly what a charging request would, and writes nothing.
--
-- GCRA per key: TAT (theoretical arrival time, ms) is stored; a request at `now` is admitted when
-- max(TAT, now) - now <= tolerance, and then TAT = max(TAT, now) + interval. With interval =
-- period / limit and tolerance = (limit + burst - 1) * interval, limit + burst requests may come
-- at once, then one per interval. A key lives until its bucket is full again (TAT - now).
--
-- KEYS[i]   the keys of every request, request after request; one key per policy and subject:
--           <prefix>:rl.v1:{rl}:<policy>:<subject HMAC>
-- ARGV[1]   number of requests R (>= 1)
-- then for each request in order:
--   n                    its number of keys (>= 1), the next n of KEYS
--   charge               1: charge every key when all admit; 0: a dry run that writes nothing
--   intervalMs, toleranceMs   for each of those keys (integers, interval > 0, tolerance >= 0)
--
-- Returns  { now ms, then for each request: admitted (1 or 0), then per key: TAT - now in ms
--            after the request (the charged TAT when admitted, also for a dry run, which does
--            not write it; the unchanged one when refused; never below 0) }. The caller derives
--            remaining, reset and retry times from it and the key's interval and tolerance,
--            which keeps the reply small.
--- @include serverTime
local requests = tonumber(ARGV[1])
if not requests or requests < 1 then
  return redis.error_reply('ERR checkRateLimits: bad request count')
end
-- Check the layout before writing anything: a malformed call changes nothing.
local arg = 2
local keyCount = 0
for r = 1, requests do
  local n = tonumber(ARGV[arg])
  if not n or n < 1 then
    return redis.error_reply('ERR checkRateLimits: bad key count for request ' .. r)
  end
  local charge = ARGV[arg + 1]
  if charge ~= '1' and charge ~= '0' then
    return redis.error_reply('ERR checkRateLimits: bad charge flag for request ' .. r)
  end
  keyCount = keyCount + n
  arg = arg + 2 + 2 * n
end
if keyCount ~= #KEYS or arg - 1 ~= #ARGV then
  return redis.error_reply('ERR checkRateLimits: arguments do not match the keys')
end

local now = serverTimeMs()
local reply = { now }
arg = 2
local first = 0
for r = 1, requests do
  local n = tonumber(ARGV[arg])
  local charge = ARGV[arg + 1] == '1'
  local tats = {}
  local admitted = 1
  for i = 1, n do
    local tolerance = tonumber(ARGV[arg + 1 + 2 * i])
    local tat = math.max(tonumber(redis.call('GET', KEYS[first + i])) or now, now)
    tats[i] = tat
    if tat - now > tolerance then
      admitted = 0
    end
  end
  reply[#reply + 1] = admitted
  for i = 1, n do
    local tat = tats[i]
    if admitted == 1 then
      tat = tat + tonumber(ARGV[arg + 2 * i])
      if charge then
        redis.call('SET', KEYS[first + i], tat, 'PX', tat - now)
      end
    end
    reply[#reply + 1] = tat - now
  end
  arg = arg + 2 + 2 * n
  first = first + n
end
return reply
