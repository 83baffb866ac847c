-- Makes deliveries due now again (manual retry, recovery). A delivery that
-- is in flight (leased) is left alone; a failed or succeeded one becomes
-- pending with its attempt history kept.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, now_ms, then delivery ids
-- Returns  per id: 'queued', 'in_flight' or 'missing'
local base, now = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local did = ARGV[i]
  local dkey = base .. 'dlv:' .. did
  local cur = redis.call('HMGET', dkey, 'status', 'sub_id', 'created_at')
  if not cur[1] then
    out[#out + 1] = 'missing'
  elseif redis.call('ZSCORE', KEYS[2], did) then
    out[#out + 1] = 'in_flight'
  else
    redis.call('ZADD', KEYS[1], now, did)
    redis.call('HSET', dkey, 'next_attempt_at', now, 'status', 'pending')
    redis.call('HDEL', dkey, 'error')
    if cur[1] ~= 'pending' then
      track_failed(base, did, cur[2], cur[3], cur[1], 'pending', now, nil)
    end
    out[#out + 1] = 'queued'
  end
end
return out
