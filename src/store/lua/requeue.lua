-- Makes deliveries due now again (manual retry, recovery). A delivery that
-- is in flight (leased) is left alone; a failed or succeeded one becomes
-- pending with its attempt history kept.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases (unused)
-- ARGV     base, now_ms, the caller's account id, then delivery ids
-- Returns  per id: 'queued', 'in_flight' or 'missing' (also for a delivery
--          of another account: the shard is shared by many accounts)
local base, now, acct = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local did = ARGV[i]
  local dkey = base .. K.dlv .. did
  local cur = redis.call('HMGET', dkey, 'status', 'sub_id', 'created_at', 'account_id', 'digest')
  if not cur[1] or cur[4] ~= acct then
    out[#out + 1] = 'missing'
  elseif cur[1] == 'pending' and not cur[5] and not redis.call('ZSCORE', KEYS[1], did) then
    -- Pending, neither waiting in the schedule nor held for a digest: it is
    -- leased (claimed, being sent).
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
