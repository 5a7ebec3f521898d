-- extendLock: renews a lock for its owner only, to a fresh TTL; anyone else changes nothing.
--
-- KEYS[1]  the lock: <prefix>:lock.v1:{<resource HMAC>}:m, value "<owner hash> <fencing token> <holder>"
-- KEYS[2]  the resource's last fencing token: <prefix>:lock.v1:{<resource HMAC>}:f
-- ARGV[1]  owner hash
-- ARGV[2]  ttlMs of the lock from now
-- ARGV[3]  ttlMs of the last-token key from now
--
-- Returns  {1, fencing token} when renewed; {0} when the lock is not this owner's (expired,
--          released, or taken by another)
local current = redis.call('GET', KEYS[1])
if not current then
  return { 0 }
end
local owner, fence = string.match(current, '^(%S+) (%d+) ')
if owner ~= ARGV[1] then
  return { 0 }
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return { 1, tonumber(fence) }
