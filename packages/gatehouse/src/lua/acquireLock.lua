-- acquireLock: for each of one or more locks, takes it for its owner when it is free and hands
-- out the resource's next fencing token; when it is held, says for how long and by whom (the
-- holder label, if any). Locks are handled one after the other, as separate calls would be:
-- callers batch the acquires that arrive together, to spend one script call on many.
--
-- The fencing token is max(last token + 1, now in ms on the Redis clock): it grows with every
-- new holder, and stays above every earlier token even when the last-token key has expired or
-- was lost (a restart without data, a failover), as long as the Redis clock does not step back
-- by more than the last-token key's lifetime and fewer than one lock per ms is taken.
--
-- KEYS[i]  two per lock, in order: the lock (<prefix>:lock.v1:{<resource HMAC>}:m, value
--          "<owner hash> <fencing token> <holder>") and the resource's last fencing token
--          (<prefix>:lock.v1:{<resource HMAC>}:f)
-- ARGV[1]  number of locks N (>= 1, and #KEYS = 2N)
-- then four per lock: owner hash (SHA-256 of the owner token, 22 base64url characters), ttlMs of
--          the lock, holder label ('' for none, no spaces), ttlMs of the last-token key
--
-- Returns  three per lock: 1, fencing token, '' when acquired; 0, ms until the lock expires,
--          holder label when it is held
--- @include serverTime
local count = tonumber(ARGV[1])
if not count or count < 1 or #KEYS ~= 2 * count or #ARGV ~= 1 + 4 * count then
  return redis.error_reply('ERR acquireLock: arguments do not match the keys')
end
local now = serverTimeMs()
local reply = {}
for j = 1, count do
  local lock = 2 * j - 1
  local last = 2 * j
  local arg = 4 * j - 2
  local current = redis.call('GET', KEYS[lock])
  if current then
    reply[#reply + 1] = 0
    reply[#reply + 1] = redis.call('PTTL', KEYS[lock])
    reply[#reply + 1] = string.match(current, '^%S+ %d+ (.*)$') or ''
  else
    local fence = string.format('%d', math.max((tonumber(redis.call('GET', KEYS[last])) or 0) + 1, now))
    redis.call('SET', KEYS[last], fence, 'PX', ARGV[arg + 3])
    redis.call('SET', KEYS[lock], ARGV[arg] .. ' ' .. fence .. ' ' .. ARGV[arg + 2], 'PX', ARGV[arg + 1])
    reply[#reply + 1] = 1
    reply[#reply + 1] = tonumber(fence)
    reply[#reply + 1] = ''
  end
end
return reply
