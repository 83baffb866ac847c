-- Claims due deliveries of one shard: moves them from the schedule to the
-- leases (score = lease deadline) and returns what a deliverer needs.
-- Expired leases (a courier process died mid-delivery) go back to the
-- schedule first, so the work is never lost.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, now_ms, lease_ms, max
-- Returns  a flat list, 8 values per claimed delivery: delivery id, claim
--          token, event id, subscription id, attempts made, event type,
--          occurred_at, payload
local base, now, lease, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
reclaim_expired(KEYS[1], KEYS[2], now)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max)
local out = {}
for _, did in ipairs(due) do
  redis.call('ZREM', KEYS[1], did)
  local dkey = base .. 'dlv:' .. did
  local d = redis.call('HMGET', dkey, 'event_id', 'sub_id', 'attempts', 'status')
  if d[1] and d[4] == 'pending' then
    local e = redis.call('HMGET', base .. 'event:' .. d[1], 'type', 'occurred_at', 'payload')
    if e[3] then
      local token = redis.call('HINCRBY', dkey, 'claim', 1)
      redis.call('ZADD', KEYS[2], now + lease, did)
      local n = #out
      out[n + 1] = did
      out[n + 2] = tostring(token)
      out[n + 3] = d[1]
      out[n + 4] = d[2]
      out[n + 5] = d[3] or '0'
      out[n + 6] = e[1]
      out[n + 7] = e[2]
      out[n + 8] = e[3]
    end
  end
end
return out
