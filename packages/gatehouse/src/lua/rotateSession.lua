-- rotateSession: move a live session to a new token: same creation time, deadlines, count and
-- place in the index, a newly sealed payload; the old token is dead at once.
--
-- KEYS[1]  old session key: <prefix>:sess.v1:{uid}:s:<oldTokenHash>
-- KEYS[2]  new session key: <prefix>:sess.v1:{uid}:s:<newTokenHash>
-- KEYS[3]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[4]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[5]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  oldTokenHash
-- ARGV[2]  newTokenHash
-- ARGV[3]  sealed payload for the new token (binary)
-- ARGV[4]  reasonTtlMs: how long the old token's end reason is kept (integer > 0)
--
-- Returns  { 1, new session value } or { 0 } when the old session is not live
--- @include serverTime
--- @include sessionEnds
local now = serverTimeMs()
local value = redis.call('GET', KEYS[1])
local order = redis.call('ZSCORE', KEYS[3], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if not value or not order or ttl <= 0 then
  return { 0 }
end
local _, lastSeenAt, idle, absoluteExpiresAt = struct.unpack('>ddddd', value)
if now >= absoluteExpiresAt or now >= lastSeenAt + idle then
  return { 0 }
end
local rotated = string.sub(value, 1, 40) .. ARGV[3]
redis.call('SET', KEYS[2], rotated, 'PX', ttl)
redis.call('ZADD', KEYS[3], order, ARGV[2])
redis.call('ZADD', KEYS[4], redis.call('ZSCORE', KEYS[4], ARGV[1]) or (now + ttl), ARGV[2])
redis.call('DEL', KEYS[1])
endSession(KEYS[3], KEYS[4], KEYS[5], ARGV[1], 'rotated')
keepEndReasons(KEYS[5], ARGV[4])
return { 1, rotated }
