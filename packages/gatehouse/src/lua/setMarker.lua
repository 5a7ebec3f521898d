-- setMarker: store a small value with its TTL in one step, optionally only when the key is
-- new. Used for nonces (issue once), CSRF token records and revocation entries.
--
-- KEYS[1]  the marker key (a hash of a token, nonce or identifier; never the value itself)
-- ARGV[1]  value (a short string)
-- ARGV[2]  ttlMs: how long the marker lives, in milliseconds (integer > 0)
-- ARGV[3]  mode: 'always', 'if-new' (SET NX), or 'if-greater' (keep the larger number)
--
-- Returns  1 when written, 0 when the mode kept the existing value
local mode = ARGV[3]
if mode == 'if-new' then
  if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
    return 1
  end
  return 0
end
if mode == 'if-greater' then
  local current = tonumber(redis.call('GET', KEYS[1]))
  if current and current >= tonumber(ARGV[1]) then
    if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
