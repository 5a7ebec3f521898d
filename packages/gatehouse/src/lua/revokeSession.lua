-- revokeSession: end one session now and keep the reason for its device.
--
-- KEYS[1]  session key: <prefix>:sess.v1:{uid}:s:<tokenHash>
-- KEYS[2]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[3]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[4]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  tokenHash
-- ARGV[2]  reason (e.g. revoked)
-- ARGV[3]  reasonTtlMs: how long the reason is kept (integer > 0)
--
-- Returns  { 1, the ended session's value } when a live session was ended, { 0 } when there was none
--- @include sessionEnds
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return { 0 }
end
endSession(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
keepEndReasons(KEYS[4], ARGV[3])
if value then
  return { 1, value }
end
return { 1 }
