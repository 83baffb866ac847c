-- Shared by every script that records events: stores one event in the shard
-- whose key names start with `base`. Returns {status, event_id} where status
-- is 'created', 'duplicate' (same Idempotency-Key and same request),
-- 'conflict' (same key, different request) or 'no_account'.
local function ingest_one(base, now, retention, idem_ttl, id, acct, etype, occurred, payload, idem, fp)
  if redis.call('EXISTS', base .. 'account:' .. acct) == 0 then
    return {'no_account', ''}
  end
  if idem ~= '' then
    local ikey = base .. 'idem:' .. acct .. ':' .. idem
    local prev = redis.call('GET', ikey)
    if prev then
      local sep = string.find(prev, ' ', 1, true)
      local prev_id = string.sub(prev, 1, sep - 1)
      if string.sub(prev, sep + 1) == fp then
        return {'duplicate', prev_id}
      end
      return {'conflict', prev_id}
    end
    redis.call('SET', ikey, id .. ' ' .. fp, 'PX', idem_ttl)
  end
  local occ = tonumber(occurred)
  local expires = occ + retention
  local ekey = base .. 'event:' .. id
  redis.call('HSET', ekey, 'id', id, 'account_id', acct, 'type', etype,
    'occurred_at', occurred, 'received_at', now, 'payload', payload)
  redis.call('PEXPIREAT', ekey, expires)
  local cutoff = '(' .. (now - retention)
  local indexes = {base .. 'events:' .. acct, base .. 'events:' .. acct .. ':' .. etype}
  for _, idx in ipairs(indexes) do
    redis.call('ZADD', idx, occ, id)
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', cutoff)
    local ttl = redis.call('PTTL', idx)
    if ttl < 0 or ttl < expires - now then
      redis.call('PEXPIREAT', idx, expires)
    end
  end
  return {'created', id}
end
