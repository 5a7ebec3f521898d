-- validateSession: check a session against its stored idle and absolute deadlines and its
-- user's index, and touch it when the last write is older than the touch interval (sliding
-- expiry with throttled writes). An ended session is refused at once, even if its key is still
-- there, because it is no longer in the index; its key is removed here.
--
-- KEYS[1]  session key: <prefix>:sess.v1:{uid}:s:<tokenHash>
-- KEYS[2]  the user's index (zset): <prefix>:sess.v1:{uid}:i
-- KEYS[3]  the user's deadlines (zset): <prefix>:sess.v1:{uid}:d
-- KEYS[4]  why the user's sessions ended (hash): <prefix>:sess.v1:{uid}:e
-- ARGV[1]  tokenHash
-- ARGV[2]  touchIntervalMs: write lastSeenAt at most this often (integer >= 0)
-- ARGV[3]  pendingCount: requests counted in the caller's process since its last write, this one included
-- ARGV[4]  reasonTtlMs: how long an end reason is kept (integer > 0)
-- ARGV[5]  absoluteTimeoutMs: tells an absolute expiry from an idle one once the key is gone
--
-- Returns  { 1, session value (header and payload), touched (0 or 1), server time ms }
--          or { 0, end reason or '' when unknown, 0 } when it had ended before (or never was)
--          or { 0, expired-idle | expired-absolute, 1 } when this call finds it expired by TTL
--          or { 0, expired-idle | expired-absolute, 1, session value } when it expires here
-- The third element is 1 for the one validation that ends an expired session: its caller
-- reports the expiry, and every later validation gets the recorded reason with 0.
--- @include serverTime
--- @include sessionEnds
local now = serverTimeMs()
local member = ARGV[1]

local function recordEnd(reason)
  endSession(KEYS[2], KEYS[3], KEYS[4], member, reason)
  keepEndReasons(KEYS[4], ARGV[4])
end

local value = redis.call('GET', KEYS[1])
if not value then
  -- Expired by TTL: the index still holds its deadline and creation time, which say which timeout it was.
  local deadline = tonumber(redis.call('ZSCORE', KEYS[3], member))
  local order = tonumber(redis.call('ZSCORE', KEYS[2], member))
  if deadline and order and deadline <= now then
    local reason = expiryReason(deadline, order, tonumber(ARGV[5]))
    recordEnd(reason)
    return { 0, reason, 1 }
  end
  return { 0, redis.call('HGET', KEYS[4], member) or '', 0 }
end
if not redis.call('ZSCORE', KEYS[2], member) then
  redis.call('DEL', KEYS[1])
  return { 0, redis.call('HGET', KEYS[4], member) or '', 0 }
end

local createdAt, lastSeenAt, idle, absoluteExpiresAt, count = struct.unpack('>ddddd', value)
local reason = nil
if now >= absoluteExpiresAt then
  reason = 'expired-absolute'
elseif now >= lastSeenAt + idle then
  reason = 'expired-idle'
end
if reason then
  redis.call('DEL', KEYS[1])
  recordEnd(reason)
  return { 0, reason, 1, value }
end

local touched = 0
if now - lastSeenAt >= tonumber(ARGV[2]) then
  local deadline = math.min(now + idle, absoluteExpiresAt)
  value = struct.pack('>ddddd', createdAt, now, idle, absoluteExpiresAt, count + tonumber(ARGV[3]))
    .. string.sub(value, 41)
  redis.call('SET', KEYS[1], value, 'PX', deadline - now)
  redis.call('ZADD', KEYS[3], 'XX', deadline, member)
  touched = 1
end
return { 1, value, touched, now }
