-- Claims due deliveries of one shard: moves them from the schedule to the
-- leases (score = lease deadline; member = `<delivery id>|<token>`, the
-- token the shard's claim counter gave this batch, so the member is the
-- claim's fence) and returns what a deliverer needs.
-- Expired leases (a courier process died mid-delivery) go back to the
-- schedule first, so the work is never lost. The lease depends on the
-- subscription's channel: a webhook request and an email have timeouts of
-- their own.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, now_ms, webhook lease ms, email lease ms, max
-- Returns  a flat list, 10 values per claimed delivery: delivery id, claim
--          token, lease deadline ms, event id, subscription id, attempts
--          made, event type, occurred_at, payload, '1' if the delivery has
--          a next_attempt_at of its own ('' if not)
local base, now = ARGV[1], tonumber(ARGV[2])
local webhook_lease, email_lease, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
reclaim_expired(KEYS[1], KEYS[2], now)
-- The lease of each subscription's deliveries, read once per subscription.
local leases = {}
local function lease_of(sid)
  if not leases[sid] then
    local data = redis.call('HGET', base .. K.sub .. sid, 'data')
    local ok, sub = pcall(cjson.decode, data or '')
    if ok and type(sub) == 'table' and type(sub.channel) == 'table' and sub.channel.type == 'email' then
      leases[sid] = email_lease
    else
      -- A webhook, or a subscription gone (the delivery is dropped at once).
      leases[sid] = webhook_lease
    end
  end
  return leases[sid]
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max)
if #due == 0 then
  return {}
end
-- One ZREM and one ZADD for the whole batch; an event's fields are read
-- once however many of its deliveries are claimed.
redis.call('ZREM', KEYS[1], unpack(due))
local token = tostring(redis.call('INCR', base .. K.claims))
local events = {}
local leased = {}
local out = {}
for _, did in ipairs(due) do
  local dkey = base .. K.dlv .. did
  local d = redis.call('HMGET', dkey, 'event_id', 'sub_id', 'attempts', 'status', 'next_attempt_at')
  if d[1] and d[4] == 'pending' then
    local e = events[d[1]]
    if not e then
      e = redis.call('HMGET', base .. K.event .. d[1], 'type', 'occurred_at', 'payload')
      events[d[1]] = e
    end
    if e[3] then
      local until_ms = now + lease_of(d[2])
      leased[#leased + 1] = until_ms
      leased[#leased + 1] = lease_member(did, token)
      local n = #out
      out[n + 1] = did
      out[n + 2] = token
      out[n + 3] = tostring(until_ms)
      out[n + 4] = d[1]
      out[n + 5] = d[2]
      out[n + 6] = d[3] or '0'
      out[n + 7] = e[1]
      out[n + 8] = e[2]
      out[n + 9] = e[3]
      out[n + 10] = d[5] and '1' or ''
    end
  end
end
if #leased > 0 then
  redis.call('ZADD', KEYS[2], unpack(leased))
end
return out
