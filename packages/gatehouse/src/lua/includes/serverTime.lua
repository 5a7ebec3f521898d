-- serverTime (included): the server's clock, from TIME, so that every instance reads one clock
-- whatever its own says. serverTimeUs: microseconds since the epoch (exact in a Lua number until
-- the year 2255); serverTimeMs: whole milliseconds.
local function serverTimeUs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local function serverTimeMs()
  return math.floor(serverTimeUs() / 1000)
end
