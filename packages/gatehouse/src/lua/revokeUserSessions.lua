-- revokeUserSessions: end every session of a user, or all but one, at once. The sessions'
-- own keys are not named here (they are not in KEYS): validation refuses a session that is
-- no longer in the index and removes its key; otherwise it expires by its TTL.
--
-- KEYS[1]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[2]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[3]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  tokenHash to keep, or '' to end them all
-- ARGV[2]  reason (e.g. revoked)
-- ARGV[3]  reasonTtlMs: how long the reasons are kept (integer > 0)
--
-- Returns  the tokenHashes ended
--- @include sessionEnds
local ended = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if member ~= ARGV[1] then
    endSession(KEYS[1], KEYS[2], KEYS[3], member, ARGV[2])
    table.insert(ended, member)
  end
end
if #ended > 0 then
  keepEndReasons(KEYS[3], ARGV[3])
end
return ended
