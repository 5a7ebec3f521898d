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
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expired = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'WITHSCORES')
for i = 1, #expired, 2 do
  local member = expired[i]
  local createdAt = math.floor(tonumber(redis.call('ZSCORE', KEYS[1], member) or 0) / 1000)
  local reason = 'expired-idle'
  if tonumber(expired[i + 1]) >= createdAt + tonumber(ARGV[1]) then
    reason = 'expired-absolute'
  end
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('HSET', KEYS[3], member, reason)
end
if #expired > 0 and redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
