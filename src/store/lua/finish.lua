-- Records the outcome of one claimed delivery.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, delivery id, claim token, outcome, now_ms, next due ms
--          (retry/wait), attempt JSON ('' for wait), error text (fail),
--          archive retention ms
-- Outcomes: 'success'; 'retry' (attempt failed, try again at next due);
--          'fail' (attempt failed, no more tries); 'wait' (nothing was sent,
--          e.g. the endpoint's circuit is open: due again, no attempt spent);
--          'drop' (nothing was sent and nothing will be: the subscription
--          is gone or disabled; recorded as failed with the error text).
-- Returns  'ok', or 'stale' when the claim was superseded (the lease had
--          expired and someone else claimed the delivery again).
local base, did, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, due = tonumber(ARGV[5]), ARGV[6]
index_retention_ms = tonumber(ARGV[9])
local dkey = base .. 'dlv:' .. did
local cur = redis.call('HMGET', dkey, 'claim', 'status', 'sub_id', 'created_at')
if cur[1] ~= token then
  return 'stale'
end
redis.call('ZREM', KEYS[2], did)
if outcome == 'wait' then
  redis.call('ZADD', KEYS[1], due, did)
  redis.call('HSET', dkey, 'next_attempt_at', due)
  return 'ok'
end
if ARGV[7] ~= '' then
  record_attempt(dkey, ARGV[7], now)
end
local status = 'pending'
if outcome == 'retry' then
  redis.call('ZADD', KEYS[1], due, did)
  redis.call('HSET', dkey, 'next_attempt_at', due)
elseif outcome == 'success' then
  status = 'succeeded'
  redis.call('HDEL', dkey, 'next_attempt_at')
else
  status = 'failed'
  redis.call('HDEL', dkey, 'next_attempt_at')
  if ARGV[8] ~= '' then
    redis.call('HSET', dkey, 'error', ARGV[8])
  end
end
if status ~= cur[2] then
  track_failed(base, did, cur[3], cur[4], cur[2], status, now, expiry_of(dkey, now))
  redis.call('HSET', dkey, 'status', status)
end
return 'ok'
