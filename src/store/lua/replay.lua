-- Re-delivers an archived event: new deliveries (marked as replays) to the
-- given subscriptions, due now.
-- KEYS[1]  the shard's schedule
-- ARGV     base, now_ms, the caller's account id, event id, archive
--          (unused), then pairs of delivery id, subscription id
-- Returns  the number of deliveries created, -1 if the event is gone (or
--          is another account's), -2 if a subscription is not the
--          account's (nothing is created then)
local base, now, acct, eid = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ekey = base .. K.event .. eid
local e = redis.call('HMGET', ekey, 'account_id', 'type')
if not e[1] or e[1] ~= acct then
  return -1
end
local subs = base .. K.subs .. acct
for i = 7, #ARGV, 2 do
  if not redis.call('ZSCORE', subs, ARGV[i]) then
    return -2
  end
end
-- An event written before events lost their expiry (the janitor expires
-- them now) still has one: its new deliveries get the same, or they would
-- outlive it.
local expires = expiry_of(ekey)
local n = 0
for i = 6, #ARGV, 2 do
  create_delivery(base, ARGV[i], eid, ARGV[i + 1], acct, e[2], now, '1')
  if expires then
    redis.call('PEXPIREAT', base .. K.dlv .. ARGV[i], expires)
  end
  append_event_delivery(base, eid, ARGV[i])
  n = n + 1
end
return n
