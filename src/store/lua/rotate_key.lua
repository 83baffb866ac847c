-- Replaces an account's API key and records `api_keys.rotated` in one step.
-- KEYS[1]  the account hash
-- ARGV     base, now_ms, idempotency_ttl_ms, expected old key hash, new key
--          hash, event id, payload, notice id, notice JSON
--          (the operational email to the account's contact)
-- Returns  {'stale', ''} when the old key was already replaced, else the
--          ingest result of the event.
if redis.call('HGET', KEYS[1], 'key_hash') ~= ARGV[4] then
  return {'stale', '', '0'}
end
redis.call('HSET', KEYS[1], 'key_hash', ARGV[5], 'key_rotated_at', ARGV[2])
local acct = redis.call('HGET', KEYS[1], 'id')
add_notice(ARGV[1], acct, ARGV[8], ARGV[9], tonumber(ARGV[2]))
return ingest_one(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[6], acct,
  'api_keys.rotated', ARGV[2], ARGV[7], '', '')
