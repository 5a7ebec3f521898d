-- completeIdempotent: store the response of the request that claimed the key, so repeats get it.
--
-- KEYS[1]  the record: <prefix>:idem.v1:<MAC of scope and key>
-- ARGV[1]  bodyMac: 22 characters, as given to beginIdempotent
-- ARGV[2]  sealed response (binary)
-- ARGV[3]  ttlMs: how long the response is kept (integer > 0)
--
-- Returns  1 when stored, 0 when the claim was gone or not this body's (nothing stored)
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, 23) ~= 'r' .. ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'd' .. ARGV[1] .. ARGV[2], 'PX', ARGV[3])
return 1
