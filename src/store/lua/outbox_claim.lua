-- Claims due operational notices of one shard for sending: each is pushed
-- back by the lease (so a process that dies mid-send leaves it to another
-- once the lease runs out; the live holder renews it with
-- outbox_renew.lua), its attempt count raised and its claim counter raised:
-- the counter is the claim's fencing token, and only the latest claim may
-- renew, hand back or finish the notice.
-- KEYS[1]  the shard's outbox
-- ARGV     base, now_ms, lease_ms, max
-- Returns  a flat list: notice id, notice JSON, attempts (this one
--          included), claim token, ...
local base, now = ARGV[1], tonumber(ARGV[2])
local out = {}
for _, nid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  local nkey = base .. K.notice .. nid
  local data = redis.call('HGET', nkey, 'data')
  if data then
    local attempts = redis.call('HINCRBY', nkey, 'attempts', 1)
    local token = redis.call('HINCRBY', nkey, 'claim', 1)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), nid)
    out[#out + 1] = nid
    out[#out + 1] = data
    out[#out + 1] = tostring(attempts)
    out[#out + 1] = tostring(token)
  else
    redis.call('ZREM', KEYS[1], nid)
  end
end
return out
