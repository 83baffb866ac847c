-- Records the outcome of sending one digest on every delivery it holds: the
-- same attempt in each history, and the same status. The token is raised:
-- the claim is over, so a renewal still on its way cannot move a retry.
-- KEYS[1]  the shard's schedule (declares the shard's slot)
-- ARGV     base, subscription id, claim token, outcome ('success', 'retry',
--          'fail'), now_ms, next due ms (retry), attempt JSON ('' for
--          none), error text (fail), (unused)
-- Returns  'ok', or 'stale' when the claim was superseded.
local base, sub, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, due = tonumber(ARGV[5]), ARGV[6]
local list = base .. K.digest .. sub
local skey = list .. K.sending
if redis.call('GET', list .. K.token) ~= token then
  return 'stale'
end
local status = 'pending'
if outcome == 'success' then
  status = 'succeeded'
elseif outcome == 'fail' then
  status = 'failed'
end
for _, did in ipairs(redis.call('LRANGE', skey, 0, -1)) do
  local dkey = base .. K.dlv .. did
  local cur = redis.call('HMGET', dkey, 'status', 'sub_id', 'created_at')
  if cur[1] then
    if ARGV[7] ~= '' then
      record_attempt(dkey, ARGV[7], now)
    end
    if status == 'pending' then
      redis.call('HSET', dkey, 'next_attempt_at', due)
    else
      -- Out of the digest for good: a later manual retry or recover holds
      -- it for the next digest again.
      redis.call('HDEL', dkey, 'next_attempt_at', 'digest')
      if status == 'failed' and ARGV[8] ~= '' then
        redis.call('HSET', dkey, 'error', ARGV[8])
      end
      if status ~= cur[1] then
        track_failed(base, did, cur[2], cur[3], cur[1], status)
        redis.call('HSET', dkey, 'status', status)
      end
    end
  end
end
if status == 'pending' then
  if ARGV[7] ~= '' then
    redis.call('HINCRBY', skey .. K.meta, 'attempts', 1)
  end
  redis.call('ZADD', base .. K.digest_sending, due, sub)
else
  -- One key per DEL: on a cluster node importing the slot, a command on
  -- several keys, some missing, fails (TRYAGAIN) in the middle of the script.
  for _, k in ipairs({skey, skey .. K.counts, skey .. K.meta}) do
    redis.call('DEL', k)
  end
  redis.call('ZREM', base .. K.digest_sending, sub)
end
redis.call('INCR', list .. K.token)
return 'ok'
