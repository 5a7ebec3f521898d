-- releaseLock: frees a lock for its owner only; anyone else's release changes nothing.
--
-- KEYS[1]  the lock: <prefix>:lock.v1:{<resource HMAC>}:m, value "<owner hash> <fencing token> <holder>"
-- ARGV[1]  owner hash
--
-- Returns  1 when released; 0 when the lock was not this owner's (expired, released, taken)
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(%S+) ') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
