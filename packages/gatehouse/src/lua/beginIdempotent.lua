-- beginIdempotent: claim an idempotency key for a request, or say what became of the first
-- request with that key. The record is one string: a state byte ('r' running, 'd' done), the
-- 22-character MAC of the request body, then (when done) the sealed stored response.
--
-- KEYS[1]  the record: <prefix>:idem.v1:<MAC of scope and key>
-- ARGV[1]  bodyMac: 22 characters identifying the request body (a MAC, not the body)
-- ARGV[2]  inFlightTtlMs: how long a claim lasts if the first request never completes (integer > 0)
--
-- Returns  { 'started' } (the caller runs the request), { 'in-progress' }, { 'mismatch' } (same
--          key, different body), or { 'replay', sealed response }
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], 'r' .. ARGV[1], 'PX', ARGV[2])
  return { 'started' }
end
if string.sub(value, 2, 23) ~= ARGV[1] then
  return { 'mismatch' }
end
if string.sub(value, 1, 1) == 'r' then
  return { 'in-progress' }
end
return { 'replay', string.sub(value, 24) }
