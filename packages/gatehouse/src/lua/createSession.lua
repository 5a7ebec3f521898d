-- createSession: store a new session and index it under its user, in one atomic step that
-- first forgets the user's sessions whose deadline has passed and then ends the oldest ones
-- beyond the per-user limit (recording why, for the evicted device).
--
-- A session value is a 40-byte header, five big-endian doubles (createdAt ms, lastSeenAt ms,
-- idleTimeoutMs, absoluteExpiresAt ms, requestCount), followed by the sealed payload.
--
-- KEYS[1]  session key: <prefix>:sess.v1:{uid}:s:<tokenHash>
-- KEYS[2]  the user's index (zset): <prefix>:sess.v1:{uid}:i, member tokenHash, score creation
--          time in microseconds (strictly increasing per user, so "oldest" is never a tie)
-- KEYS[3]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d, member tokenHash, score expiry ms
-- KEYS[4]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e, field tokenHash
-- ARGV[1]  tokenHash of the new session
-- ARGV[2]  sealed payload (binary)
-- ARGV[3]  idleTimeoutMs (integer > 0)
-- ARGV[4]  absoluteTimeoutMs (integer >= idleTimeoutMs)
-- ARGV[5]  maxPerUser (integer >= 1)
-- ARGV[6]  reasonTtlMs: how long an end reason is kept (integer > 0)
--
-- Returns  { session value (header and payload), evicted tokenHash, ... }
--- @include serverTime
--- @include sessionEnds
local nowUs = serverTimeUs()
local now = math.floor(nowUs / 1000)
local idle = tonumber(ARGV[3])
local absolute = tonumber(ARGV[4])
local max = tonumber(ARGV[5])
local reasonTtl = tonumber(ARGV[6])

-- End reasons cannot expire one by one (no HEXPIRE on 7.0): keep the hash bounded by starting
-- over when it grows past what recent evictions and revocations need.
if redis.call('HLEN', KEYS[4]) > 2 * max + 64 then
  redis.call('DEL', KEYS[4])
end

-- Keys expire by TTL; the index learns of it here, from the deadlines, without notifications,
-- and keeps which timeout it was for the device that comes back.
forgetExpiredSessions(KEYS[2], KEYS[3], KEYS[4], now, absolute)

local reply = {}
local excess = redis.call('ZCARD', KEYS[2]) - max + 1
if excess > 0 then
  local evicted = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, member in ipairs(evicted) do
    endSession(KEYS[2], KEYS[3], KEYS[4], member, 'evicted-limit')
  end
  reply = evicted
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  keepEndReasons(KEYS[4], reasonTtl)
end

local order = nowUs
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= order then
  order = tonumber(newest[2]) + 1
end

local absoluteExpiresAt = now + absolute
local deadline = math.min(now + idle, absoluteExpiresAt)
local value = struct.pack('>ddddd', now, now, idle, absoluteExpiresAt, 0) .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', deadline - now)
redis.call('ZADD', KEYS[2], order, ARGV[1])
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
-- The index outlives its newest session by the reason TTL, so a device that comes back after
-- its session expired is told which timeout it was. Never shorten it.
local indexTtl = absolute + reasonTtl
if redis.call('PTTL', KEYS[2]) < indexTtl then
  redis.call('PEXPIRE', KEYS[2], indexTtl)
end
if redis.call('PTTL', KEYS[3]) < indexTtl then
  redis.call('PEXPIRE', KEYS[3], indexTtl)
end
table.insert(reply, 1, value)
return reply
