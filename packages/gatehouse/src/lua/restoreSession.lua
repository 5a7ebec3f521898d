-- restoreSession: put a session read from SQL back into Redis (durable mode, after Redis lost
-- it), unless Redis knows it ended. Keeps its creation time, deadlines and count; evicts nothing.
--
-- KEYS[1]  session key: <prefix>:sess.v1:{uid}:s:<tokenHash>
-- KEYS[2]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[3]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[4]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  tokenHash
-- ARGV[2]  session value (40-byte header and sealed payload, as createSession writes it)
-- ARGV[3]  indexTtlMs: how long the index lives at least (absolute timeout + reason TTL)
--
-- Returns  1 when restored (or already there), 0 when it ended or its deadline has passed
--- @include serverTime
local now = serverTimeMs()
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local createdAt, lastSeenAt, idle, absoluteExpiresAt = struct.unpack('>ddddd', ARGV[2])
local deadline = math.min(lastSeenAt + idle, absoluteExpiresAt)
if deadline <= now then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', deadline - now)
redis.call('ZADD', KEYS[2], createdAt * 1000, ARGV[1])
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
local indexTtl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[2]) < indexTtl then
  redis.call('PEXPIRE', KEYS[2], indexTtl)
end
if redis.call('PTTL', KEYS[3]) < indexTtl then
  redis.call('PEXPIRE', KEYS[3], indexTtl)
end
return 1
