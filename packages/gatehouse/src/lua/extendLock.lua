-- extendLock: for each of one or more locks, renews it to a fresh TTL for its owner only;
-- anyone else changes nothing. Locks are handled one after the other (see acquireLock).
--
-- KEYS[i]  two per lock, in order: the lock (<prefix>:lock.v1:{<resource HMAC>}:m, value
--          "<owner hash> <fencing token> <holder>") and the resource's last fencing token
--          (<prefix>:lock.v1:{<resource HMAC>}:f)
-- ARGV[1]  number of locks N (>= 1, and #KEYS = 2N)
-- then three per lock: owner hash, ttlMs of the lock from now, ttlMs of the last-token key
--          from now
--
-- Returns  two per lock: 1, fencing token when renewed; 0, 0 when the lock is not this
--          owner's (expired, released, or taken by another)
local count = tonumber(ARGV[1])
if not count or count < 1 or #KEYS ~= 2 * count or #ARGV ~= 1 + 3 * count then
  return redis.error_reply('ERR extendLock: arguments do not match the keys')
end
local reply = {}
for j = 1, count do
  local lock = 2 * j - 1
  local last = 2 * j
  local arg = 3 * j - 1
  local current = redis.call('GET', KEYS[lock]) or ''
  local owner, fence = string.match(current, '^(%S+) (%d+) ')
  if owner == ARGV[arg] then
    redis.call('PEXPIRE', KEYS[lock], ARGV[arg + 1])
    redis.call('PEXPIRE', KEYS[last], ARGV[arg + 2])
    reply[#reply + 1] = 1
    reply[#reply + 1] = tonumber(fence)
  else
    reply[#reply + 1] = 0
    reply[#reply + 1] = 0
  end
end
return reply
