-- listSessions: the tokenHashes of a user's live sessions, oldest first, after forgetting the
-- ones whose deadline has passed (keeping which timeout it was). The caller then reads the
-- session keys it can now name.
--
-- KEYS[1]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[2]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[3]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  absoluteTimeoutMs: tells an absolute expiry from an idle one
-- ARGV[2]  reasonTtlMs: how long an end reason is kept (integer > 0)
--
-- Returns  { tokenHash, ... } oldest first
--- @include serverTime
--- @include sessionEnds
local now = serverTimeMs()
if forgetExpiredSessions(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[1])) > 0 then
  keepEndReasons(KEYS[3], ARGV[2])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
