-- checkRateLimits: GCRA over several policies at once, on the Redis clock, all or nothing: when
-- every policy admits the request, each is charged; when one refuses, none is.
--
-- GCRA per key: TAT (theoretical arrival time, ms) is stored; a request at `now` is admitted when
-- max(TAT, now) - now <= tolerance, and then TAT = max(TAT, now) + interval. With interval =
-- period / limit and tolerance = (limit + burst - 1) * interval, limit + burst requests may come
-- at once, then one per interval. A key lives until its bucket is full again (TAT - now).
--
-- KEYS[i]  one key per policy and subject: <prefix>:rl.v1:{rl}:<policy>:<subject HMAC>
-- ARGV[2i-1]  intervalMs for KEYS[i] (integer > 0)
-- ARGV[2i]    toleranceMs for KEYS[i] (integer >= 0)
--
-- Returns  { admitted (1 or 0), now ms, then per key: remaining, resetMs, retryAfterMs }
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local admitted = 1
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i])) or now, now)
  tats[i] = tat
  if tat - now > tolerance then
    admitted = 0
  end
end
local reply = { admitted, now }
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tats[i]
  if admitted == 1 then
    local newTat = tat + interval
    redis.call('SET', KEYS[i], newTat, 'PX', newTat - now)
    table.insert(reply, math.max(0, math.floor((tolerance + interval - (newTat - now)) / interval)))
    table.insert(reply, newTat - now)
    table.insert(reply, 0)
  else
    table.insert(reply, math.max(0, math.floor((tolerance + interval - (tat - now)) / interval)))
    table.insert(reply, tat - now)
    table.insert(reply, math.max(0, tat - tolerance - now))
  end
end
return reply
