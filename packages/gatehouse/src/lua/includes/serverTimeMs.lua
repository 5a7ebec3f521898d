-- serverTimeMs (included): the server's clock in whole milliseconds since the epoch, from TIME.
-- Every instance then reads one clock, whatever its own says.
local function serverTimeMs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
