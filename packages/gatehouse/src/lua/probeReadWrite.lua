-- probeReadWrite: write a value with a TTL, read it back and report the server clock, in one
-- atomic step. Readiness uses it to prove the primary accepts writes (not a read-only replica,
-- not out of memory, ACL user allowed) and to measure the round trip; the clock lets callers
-- see how far their own clock is from the server's, which GCRA and lock TTLs rely on.
--
-- KEYS[1]  probe key: <prefix>:health.v1:probe:<probeId>
-- ARGV[1]  value to write (an opaque string chosen by the caller)
-- ARGV[2]  ttlMs: how long the probe key lives, in milliseconds (integer > 0)
--
-- Returns  { value read back (string), server time in ms (integer) }
--- @include serverTime
local now = serverTimeMs()
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local value = redis.call('GET', KEYS[1])
return { value, now }
