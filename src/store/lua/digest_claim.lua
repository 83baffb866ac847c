-- Claims digests of one shard that are due: those whose period ended
-- (their events move to a `:sending` list, so new events start the next
-- digest) and those being sent whose lease or retry time passed. A claim
-- raises the digest's token; only the latest claim may renew (digest_renew.lua),
-- hand back or record the outcome.
-- KEYS[1]  the shard's schedule (declares the shard's slot)
-- ARGV     base, now_ms, lease_ms, most digests claimed, how many newest
--          events to list, archive retention ms (the token outlives every
--          delivery a claim could hold, then expires)
-- Returns  per digest 8 strings: subscription id, token, attempts made,
--          when the first and the last of its deliveries were created (ms),
--          event count, counts ('type n type n ...'), newest events
--          ('event_id type occurred_ms ...', newest first)
local base, now, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max, latest_n = tonumber(ARGV[4]), tonumber(ARGV[5])
local token_ttl = tonumber(ARGV[6])
local sending = base .. K.digest_sending
local digests = base .. K.digests
local out = {}

local function emit(sub)
  local list = base .. K.digest .. sub
  local skey = list .. K.sending
  local token = redis.call('INCR', list .. K.token)
  redis.call('PEXPIRE', list .. K.token, token_ttl)
  redis.call('ZADD', sending, now + lease, sub)
  local meta = redis.call('HMGET', skey .. K.meta, 'attempts')
  local counts = redis.call('HGETALL', skey .. K.counts)
  local latest = {}
  local ids = redis.call('LRANGE', skey, -latest_n, -1)
  for i = #ids, 1, -1 do
    local d = redis.call('HMGET', base .. K.dlv .. ids[i], 'event_id', 'event_type')
    if d[1] then
      local occ = redis.call('HGET', base .. K.event .. d[1], 'occurred_at') or '0'
      latest[#latest + 1] = d[1] .. ' ' .. d[2] .. ' ' .. occ
    end
  end
  out[#out + 1] = sub
  out[#out + 1] = tostring(token)
  out[#out + 1] = meta[1] or '0'
  for _, at in ipairs({0, -1}) do
    local did = redis.call('LINDEX', skey, at)
    out[#out + 1] = (did and redis.call('HGET', base .. K.dlv .. did, 'created_at')) or tostring(now)
  end
  out[#out + 1] = tostring(redis.call('LLEN', skey))
  out[#out + 1] = table.concat(counts, ' ')
  out[#out + 1] = table.concat(latest, ' ')
end

local resent = redis.call('ZRANGEBYSCORE', sending, '-inf', now, 'LIMIT', 0, max)
for _, sub in ipairs(resent) do
  emit(sub)
end
local due = {}
if #resent < max then
  due = redis.call('ZRANGEBYSCORE', digests, '-inf', now, 'LIMIT', 0, max - #resent)
end
for _, sub in ipairs(due) do
  local list = base .. K.digest .. sub
  local skey = list .. K.sending
  if redis.call('ZSCORE', sending, sub) then
    -- The previous digest is still being sent or retried: this one waits.
    redis.call('ZADD', digests, now + 60000, sub)
  elseif redis.call('EXISTS', list) == 0 then
    redis.call('ZREM', digests, sub)
  else
    local due = redis.call('ZSCORE', digests, sub)
    redis.call('ZREM', digests, sub)
    redis.call('DEL', skey .. K.counts)
    redis.call('RENAME', list, skey)
    if redis.call('EXISTS', list .. K.counts) == 1 then
      redis.call('RENAME', list .. K.counts, skey .. K.counts)
    end
    redis.call('HSET', skey .. K.meta, 'attempts', 0, 'due', due)
    emit(sub)
  end
end
return out
