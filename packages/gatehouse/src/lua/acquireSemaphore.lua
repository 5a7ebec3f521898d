-- acquireSemaphore: takes one of `limit` places on a resource for one owner, with the resource's
-- next fencing token (as acquireLock computes it); when all places are taken, says when the
-- first one frees up and how many holders there are.
--
-- KEYS[1]  the holders: <prefix>:lock.v1:{<resource HMAC>}:s, a sorted set of owner hashes
--          scored by expiry (ms, Redis clock); the key lives as long as its last holder
-- KEYS[2]  the resource's last fencing token: <prefix>:lock.v1:{<resource HMAC>}:f
-- ARGV[1]  owner hash
-- ARGV[2]  ttlMs of this holder's place
-- ARGV[3]  limit: most holders at once (integer >= 1)
-- ARGV[4]  ttlMs of the last-token key
--
-- Returns  {1, fencing token} when acquired; {0, ms until the first place frees up, holders}
--          when all places are taken
--- @include serverTime
local now = serverTimeMs()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local holders = redis.call('ZCARD', KEYS[1])
if holders >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return { 0, tonumber(first[2]) - now, holders }
end
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], tonumber(last[2]) - now)
local fence = string.format('%d', math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now))
redis.call('SET', KEYS[2], fence, 'PX', ARGV[4])
return { 1, tonumber(fence) }
