-- releaseLock: for each of one or more locks, frees it for its owner only; anyone else's
-- release changes nothing. Locks are handled one after the other (see acquireLock).
--
-- KEYS[i]  one per lock: <prefix>:lock.v1:{<resource HMAC>}:m, value "<owner hash> <fencing token> <holder>"
-- ARGV[i]  the owner hash for KEYS[i]
--
-- Returns  one per lock: 1 when released; 0 when the lock was not this owner's (expired,
--          released, taken)
if #KEYS ~= #ARGV then
  return redis.error_reply('ERR releaseLock: arguments do not match the keys')
end
local reply = {}
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current and string.match(current, '^(%S+) ') == ARGV[i] then
    redis.call('DEL', KEYS[i])
    reply[i] = 1
  else
    reply[i] = 0
  end
end
return reply
