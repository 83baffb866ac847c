-- Hands claims back to the schedule (a process that stops returns what it
-- still holds): each delivery still leased under the given claim goes back
-- to the schedule due now, no attempt spent; its lease member is gone, so
-- the released claim can record nothing any more. A claim that was
-- finished, or superseded after its lease ran out, is left alone.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, now_ms, then a delivery id and its claim token per claim
-- Returns  how many deliveries went back to the schedule
local base, now = ARGV[1], tonumber(ARGV[2])
local released = 0
for i = 3, #ARGV - 1, 2 do
  local did, token = ARGV[i], ARGV[i + 1]
  if redis.call('ZREM', KEYS[2], lease_member(did, token)) == 1 then
    redis.call('ZADD', KEYS[1], now, did)
    redis.call('HSET', base .. K.dlv .. did, 'next_attempt_at', now)
    released = released + 1
  end
end
return released
