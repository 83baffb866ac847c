-- Records the outcome of one claimed delivery.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, delivery id, claim token, outcome, now_ms, next due ms
--          (retry/wait), attempt JSON for the `:attempts` list ('' for
--          none, or when the attempt is the first), error text (fail),
--          subscription id, attempts made before this claim, '1' if the
--          delivery has a next_attempt_at of its own (as the claim read
--          them, under the lease), then the first attempt in the hash's own
--          fields: a1 ('at ms|duration ms|status|next due ms'), a1r
--          (response), a1e (error), each '' when absent
-- Outcomes: 'success'; 'retry' (attempt failed, try again at next due);
--          'fail' (attempt failed, no more tries); 'wait' (nothing was sent,
--          e.g. the endpoint's circuit is open: due again, no attempt spent);
--          'drop' (nothing was sent and nothing will be: the subscription
--          is gone or disabled; recorded as failed with the error text).
-- Returns  'ok', or 'stale' when the claim was superseded (its lease had
--          run out, and the delivery went back to the schedule and maybe to
--          another claim) or handed back.
--
-- The claim's lease member is its fence: taking it out of the leases
-- succeeds only for the latest claim. A leased delivery is pending, and the
-- claim read its attempts, so a first attempt that succeeds costs two
-- commands: that ZREM and one HSET.
local base, did, token, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, due = tonumber(ARGV[5]), ARGV[6]
local attempt_json, error_text = ARGV[7], ARGV[8]
local sid, attempts, rescheduled = ARGV[9], tonumber(ARGV[10]), ARGV[11] == '1'
local a1, a1r, a1e = ARGV[12], ARGV[13], ARGV[14]
if redis.call('ZREM', KEYS[2], lease_member(did, token)) == 0 then
  return 'stale'
end
local dkey = base .. K.dlv .. did
-- Writes the delivery's fields, `status` always among them: when every
-- field is new, the delivery was gone (deleted with its event past the
-- retention while it was in flight), so what was just written goes too.
local function record(fields)
  if redis.call('HSET', dkey, unpack(fields)) == #fields / 2 then
    redis.call('DEL', dkey)
    return false
  end
  return true
end
if outcome == 'wait' then
  if record({'next_attempt_at', due, 'status', 'pending'}) then
    redis.call('ZADD', KEYS[1], due, did)
  end
  return 'ok'
end
local set = {}
local function put(k, v)
  set[#set + 1] = k
  set[#set + 1] = v
end
if a1 ~= '' or attempt_json ~= '' then
  put('attempts', attempts + 1)
  put('last_attempt_at', now)
  if a1 ~= '' then
    put('a1', a1)
    if a1r ~= '' then
      put('a1r', a1r)
    end
    if a1e ~= '' then
      put('a1e', a1e)
    end
  end
end
local status = 'pending'
if outcome == 'retry' then
  put('next_attempt_at', due)
elseif outcome == 'success' then
  status = 'succeeded'
else
  status = 'failed'
  if error_text ~= '' then
    put('error', error_text)
  end
end
put('status', status)
if not record(set) then
  return 'ok'
end
if a1 == '' and attempt_json ~= '' then
  append_attempt(dkey, attempt_json)
end
if outcome == 'retry' then
  redis.call('ZADD', KEYS[1], due, did)
else
  if rescheduled then
    redis.call('HDEL', dkey, 'next_attempt_at')
  end
  if status == 'failed' then
    local created = redis.call('HGET', dkey, 'created_at')
    track_failed(base, did, sid, created, 'pending', 'failed')
  end
end
return 'ok'
