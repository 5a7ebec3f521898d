-- sessionEnds (included): the bookkeeping of ended sessions, shared by every script that ends
-- one. An ended session leaves its user's index and deadlines, and why it ended is kept (for a
-- while) for its device. Key parameters (*Key) are always KEYS of the including script.

-- Ends `member`: out of the index and deadlines, `reason` recorded. Call keepEndReasons after.
local function endSession(indexKey, deadlinesKey, endedKey, member, reason)
  redis.call('ZREM', indexKey, member)
  redis.call('ZREM', deadlinesKey, member)
  redis.call('HSET', endedKey, member, reason)
end

-- Keeps the end reasons for at least reasonTtlMs (a longer TTL is never shortened).
local function keepEndReasons(endedKey, reasonTtlMs)
  if redis.call('PTTL', endedKey) < tonumber(reasonTtlMs) then
    redis.call('PEXPIRE', endedKey, reasonTtlMs)
  end
end

-- Which timeout ended a session: its last deadline against its creation (index score, in µs).
local function expiryReason(deadline, order, absoluteTimeoutMs)
  if deadline >= math.floor(order / 1000) + absoluteTimeoutMs then
    return 'expired-absolute'
  end
  return 'expired-idle'
end

-- Ends the user's sessions whose deadline has passed; returns how many.
local function forgetExpiredSessions(indexKey, deadlinesKey, endedKey, now, absoluteTimeoutMs)
  local expired = redis.call('ZRANGE', deadlinesKey, '-inf', now, 'BYSCORE', 'WITHSCORES')
  for i = 1, #expired, 2 do
    local member = expired[i]
    local order = tonumber(redis.call('ZSCORE', indexKey, member) or 0)
    endSession(indexKey, deadlinesKey, endedKey, member, expiryReason(tonumber(expired[i + 1]), order, absoluteTimeoutMs))
  end
  return #expired / 2
end
