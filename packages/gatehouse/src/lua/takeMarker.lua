-- takeMarker: read and delete a marker in one step, so exactly one caller gets it (single-use
-- nonces: of any number of concurrent consumers, one sees the value, the rest see nothing).
--
-- KEYS[1]  the marker key
--
-- Returns  the value, or '' when there was none
local value = redis.call('GET', KEYS[1])
if not value then
  return ''
end
redis.call('DEL', KEYS[1])
return value
