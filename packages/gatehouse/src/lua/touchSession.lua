-- touchSession: write a batch of buffered activity (request count, last seen) to a live
-- session, moving its idle deadline forward when the activity is newer than what is stored.
-- Does nothing for an ended or expired session.
--
-- KEYS[1]  session key: <prefix>:sess.v1:{uid}:s:<tokenHash>
-- KEYS[2]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[3]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- ARGV[1]  tokenHash
-- ARGV[2]  addCount: requests to add (integer >= 0)
-- ARGV[3]  lastSeenAtMs: when the newest of them came (server clock, ms)
--
-- Returns  1 when written, 0 when the session is gone
--- @include serverTime
local now = serverTimeMs()
local value = redis.call('GET', KEYS[1])
if not value or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local createdAt, lastSeenAt, idle, absoluteExpiresAt, count = struct.unpack('>ddddd', value)
local seen = math.min(math.max(lastSeenAt, tonumber(ARGV[3])), now)
local deadline = math.min(seen + idle, absoluteExpiresAt)
if deadline <= now then
  return 0
end
value = struct.pack('>ddddd', createdAt, seen, idle, absoluteExpiresAt, count + tonumber(ARGV[2]))
  .. string.sub(value, 41)
redis.call('SET', KEYS[1], value, 'PX', deadline - now)
redis.call('ZADD', KEYS[3], 'XX', deadline, ARGV[1])
return 1
