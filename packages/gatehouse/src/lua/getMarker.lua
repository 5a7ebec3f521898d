-- getMarker: read a marker (a CSRF token record, a revocation entry) without changing it.
--
-- KEYS[1]  the marker key
--
-- Returns  the value, or '' when there is none
return redis.call('GET', KEYS[1]) or ''
