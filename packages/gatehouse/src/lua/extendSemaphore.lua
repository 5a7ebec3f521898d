-- extendSemaphore: renews one holder's place for its owner only, to a fresh TTL; a place that
-- has expired is gone (another may have taken it) and is not renewed.
--
-- KEYS[1]  the holders: <prefix>:lock.v1:{<resource HMAC>}:s (owner hashes scored by expiry ms)
-- KEYS[2]  the resource's last fencing token: <prefix>:lock.v1:{<resource HMAC>}:f
-- ARGV[1]  owner hash
-- ARGV[2]  ttlMs of the place from now
-- ARGV[3]  ttlMs of the last-token key from now
--
-- Returns  1 when renewed; 0 when this owner holds no live place
--- @include serverTime
local now = serverTimeMs()
local expiry = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not expiry then
  return 0
end
if expiry <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], tonumber(last[2]) - now)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
