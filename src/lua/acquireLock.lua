-- acquireLock: takes a free lock for one owner and hands out the resource's next fencing token;
-- when the lock is held, says for how long and by whom (the holder label, if any).
--
-- The fencing token is max(last token + 1, now in ms on the Redis clock): it grows with every
-- new holder, and stays above every earlier token even when the last-token key has expired or
-- was lost (a restart without data, a failover), as long as the Redis clock does not step back
-- by more than the last-token key's lifetime and fewer than one lock per ms is taken.
--
-- KEYS[1]  the lock: <prefix>:lock.v1:{<resource HMAC>}:m, value "<owner hash> <fencing token> <holder>"
-- KEYS[2]  the resource's last fencing token: <prefix>:lock.v1:{<resource HMAC>}:f
-- ARGV[1]  owner hash (SHA-256 of the owner token, 22 base64url characters)
-- ARGV[2]  ttlMs of the lock
-- ARGV[3]  holder label, '' for none (no spaces)
-- ARGV[4]  ttlMs of the last-token key
--
-- Returns  {1, fencing token} when acquired; {0, ms until the lock expires, holder label}
--          when it is held
local current = redis.call('GET', KEYS[1])
if current then
  return { 0, redis.call('PTTL', KEYS[1]), string.match(current, '^%S+ %d+ (.*)$') or '' }
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local fence = string.format('%d', math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now))
redis.call('SET', KEYS[2], fence, 'PX', ARGV[4])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. fence .. ' ' .. ARGV[3], 'PX', ARGV[2])
return { 1, tonumber(fence) }
