-- Re-delivers an archived event: new deliveries (marked as replays) to the
-- given subscriptions, due now.
-- KEYS[1]  the shard's schedule
-- ARGV     base, now_ms, event id, then pairs of delivery id, subscription id
-- Returns  the number of deliveries created, or -1 if the event is gone
local base, now, eid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ekey = base .. 'event:' .. eid
local e = redis.call('HMGET', ekey, 'account_id', 'type')
if not e[1] then
  return -1
end
local expires = expiry_of(ekey, now)
local n = 0
for i = 4, #ARGV, 2 do
  create_delivery(base, ARGV[i], eid, ARGV[i + 1], e[1], e[2], now, expires, '1')
  n = n + 1
end
return n
