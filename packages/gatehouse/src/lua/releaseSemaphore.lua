-- releaseSemaphore: gives up one holder's place for its owner only.
--
-- KEYS[1]  the holders: <prefix>:lock.v1:{<resource HMAC>}:s (owner hashes scored by expiry ms)
-- ARGV[1]  owner hash
--
-- Returns  1 when a live place was released; 0 when this owner held none (or it had expired)
--- @include serverTime
local now = serverTimeMs()
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expiry then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if expiry <= now then
  return 0
end
return 1
