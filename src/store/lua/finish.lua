-- Records the outcome of one claimed delivery.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, delivery id, claim token, outcome, now_ms, next due ms
--          (retry/wait), attempt JSON for the `:attempts` list ('' for
--          none, or when the attempt is the first), error text (fail),
--          (unused), then the first attempt in the hash's own
--          fields: a1 ('at ms|duration ms|status|next due ms'), a1r
--          (response), a1e (error), each '' when absent
-- Outcomes: 'success'; 'retry' (attempt failed, try again at next due);
--          'fail' (attempt failed, no more tries); 'wait' (nothing was sent,
--          e.g. the endpoint's circuit is open: due again, no attempt spent);
--          'drop' (nothing was sent and nothing will be: the subscription
--          is gone or disabled; recorded as failed with the error text).
-- Returns  'ok', or 'stale' when the claim was superseded (the lease had
--          expired and someone else claimed the delivery again).
--
-- A first attempt that succeeds costs three commands: the read below, the
-- lease's removal and one HSET (no attempt list, no expiry reads).
local base, did, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, due = tonumber(ARGV[5]), ARGV[6]
local attempt_json, error_text = ARGV[7], ARGV[8]
local a1, a1r, a1e = ARGV[10], ARGV[11], ARGV[12]
local dkey = base .. K.dlv .. did
local cur = redis.call('HMGET', dkey, 'claim', 'status', 'sub_id', 'created_at', 'attempts',
  'next_attempt_at')
if cur[1] ~= token then
  return 'stale'
end
redis.call('ZREM', KEYS[2], did)
if outcome == 'wait' then
  redis.call('ZADD', KEYS[1], due, did)
  redis.call('HSET', dkey, 'next_attempt_at', due)
  return 'ok'
end
local set = {}
local function put(k, v)
  set[#set + 1] = k
  set[#set + 1] = v
end
if a1 ~= '' or attempt_json ~= '' then
  put('attempts', tonumber(cur[5] or '0') + 1)
  put('last_attempt_at', now)
  if a1 ~= '' then
    put('a1', a1)
    if a1r ~= '' then
      put('a1r', a1r)
    end
    if a1e ~= '' then
      put('a1e', a1e)
    end
  else
    append_attempt(dkey, attempt_json)
  end
end
local status = 'pending'
if outcome == 'retry' then
  redis.call('ZADD', KEYS[1], due, did)
  put('next_attempt_at', due)
else
  if cur[6] then
    redis.call('HDEL', dkey, 'next_attempt_at')
  end
  if outcome == 'success' then
    status = 'succeeded'
  else
    status = 'failed'
    if error_text ~= '' then
      put('error', error_text)
    end
  end
end
if status ~= cur[2] then
  track_failed(base, did, cur[3], cur[4], cur[2], status)
  put('status', status)
end
if #set > 0 then
  redis.call('HSET', dkey, unpack(set))
end
return 'ok'
