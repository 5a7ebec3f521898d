-- abandonIdempotent: release a claim whose request failed, so a retry with the key may run.
--
-- KEYS[1]  the record: <prefix>:idem.v1:<MAC of scope and key>
-- ARGV[1]  bodyMac: 22 characters, as given to beginIdempotent
--
-- Returns  1 when released, 0 when there was no such running claim
local value = redis.call('GET', KEYS[1])
if not value or value ~= 'r' .. ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
