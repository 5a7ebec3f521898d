-- releaseSemaphore: gives up one holder's place for its owner only.
--
-- KEYS[1]  the holders: <prefix>:lock.v1:{<resource HMAC>}:s (owner hashes scored by expiry ms)
-- ARGV[1]  owner hash
--
-- Returns  1 when a live place was released; 0 when this owner held none (or it had expired)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expiry then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if expiry <= now then
  return 0
end
return 1
