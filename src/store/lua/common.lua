-- Shared by every script that records events or creates deliveries.

-- How much longer than its newest entry an index may live: extending the
-- expiry by this much at once spares the PEXPIREAT on most writes.
local INDEX_SLACK_MS = 86400000

-- The archive's retention (ms), set by every script that adds to an index
-- (from its arguments) before it calls `add_to_index`.
local index_retention_ms = nil

-- Adds `member` to a time index (scored by a time, ms) that lives at least
-- as long as the data it indexes (until `expires`, ms; nil leaves the
-- index's expiry as it is). Whenever the expiry is pushed forward (at most
-- once per INDEX_SLACK_MS of an index that keeps growing), entries older
-- than the retention are trimmed: an index that is written to for ever
-- must not keep its expired entries for ever.
local function add_to_index(key, score, member, expires, now)
  redis.call('ZADD', key, score, member)
  if expires then
    local at = redis.call('PEXPIRETIME', key)
    if at < 0 or at < expires then
      if index_retention_ms then
        redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - index_retention_ms))
      end
      redis.call('PEXPIREAT', key, expires + INDEX_SLACK_MS)
    end
  end
end

-- When `key` expires (ms since the epoch), or nil if it has no expiry.
local function expiry_of(key, now)
  local at = redis.call('PEXPIRETIME', key)
  if at > 0 then
    return at
  end
  return nil
end

-- Appends one attempt (JSON) to a delivery's history; the history expires
-- with the delivery.
local function record_attempt(dkey, json, now)
  local akey = dkey .. ':attempts'
  redis.call('RPUSH', akey, json)
  local expires = expiry_of(dkey, now)
  if expires then
    redis.call('PEXPIREAT', akey, expires)
  end
  redis.call('HINCRBY', dkey, 'attempts', 1)
  redis.call('HSET', dkey, 'last_attempt_at', now)
end

-- Returns deliveries whose lease expired (their process died or hung) to
-- the schedule, due now. Returns how many.
local function reclaim_expired(schedule, leases, now)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 1000)
  for _, did in ipairs(expired) do
    redis.call('ZREM', leases, did)
    redis.call('ZADD', schedule, now, did)
  end
  return #expired
end

-- Keeps a subscription's index of failed deliveries (the only status with
-- an index of its own: failures are few and `recover` needs them) in step
-- with a status change.
local function track_failed(base, did, sid, created, from, to, now, expires)
  local idx = base .. 'sub-dlv:' .. sid .. ':failed'
  if from == 'failed' then
    redis.call('ZREM', idx, did)
  end
  if to == 'failed' then
    add_to_index(idx, created, did, expires, now)
  end
end

-- A delivery id derived from the event and the subscription (a UUIDv8 from
-- SHA-1), so that re-running a fan-out can never create a second delivery.
local function derived_id(event_id, sub_id)
  local h = redis.sha1hex(event_id .. '/' .. sub_id)
  local variant = string.format('%x', 8 + tonumber(string.sub(h, 17, 17), 16) % 4)
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-8' .. string.sub(h, 14, 16) .. '-' ..
    variant .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end

-- Creates a pending delivery due now: its record, its place in the shard's
-- schedule and in the subscription's and the event's delivery indexes.
local function create_delivery(base, did, eid, sid, acct, etype, now, expires, replay)
  local dkey = base .. 'dlv:' .. did
  -- Only what cannot be derived: attempts and claim start absent (0), the
  -- first attempt is due at created_at.
  redis.call('HSET', dkey, 'event_id', eid, 'sub_id', sid, 'account_id', acct,
    'event_type', etype, 'status', 'pending', 'created_at', now)
  if replay == '1' then
    redis.call('HSET', dkey, 'replay', '1')
  end
  if expires then
    redis.call('PEXPIREAT', dkey, expires)
  end
  redis.call('ZADD', base .. 'schedule', now, did)
  add_to_index(base .. 'sub-dlv:' .. sid, now, did, expires, now)
  -- The event's deliveries: a field of the event itself, no key of its own.
  local ekey = base .. 'event:' .. eid
  local prev = redis.call('HGET', ekey, 'deliveries')
  if prev then
    redis.call('HSET', ekey, 'deliveries', prev .. ' ' .. did)
  else
    redis.call('HSET', ekey, 'deliveries', did)
  end
end

-- Stores one event in the shard whose key names start with `base` and fans
-- it out to the account's enabled subscriptions for its type.
-- Returns {status, event_id, deliveries} where status is 'created',
-- 'duplicate' (same Idempotency-Key and same request), 'conflict' (same key,
-- different request) or 'no_account'.
local function ingest_one(base, now, retention, idem_ttl, id, acct, etype, occurred, payload, idem, fp)
  if redis.call('EXISTS', base .. 'account:' .. acct) == 0 then
    return {'no_account', '', '0'}
  end
  if idem ~= '' then
    local ikey = base .. 'idem:' .. acct .. ':' .. idem
    local prev = redis.call('GET', ikey)
    if prev then
      local sep = string.find(prev, ' ', 1, true)
      local prev_id = string.sub(prev, 1, sep - 1)
      if string.sub(prev, sep + 1) == fp then
        return {'duplicate', prev_id, '0'}
      end
      return {'conflict', prev_id, '0'}
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
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', cutoff)
    add_to_index(idx, occ, id, expires, now)
  end
  local subs = redis.call('SUNION', base .. 'route:' .. acct .. ':' .. etype, base .. 'route:' .. acct .. ':*')
  for _, sid in ipairs(subs) do
    create_delivery(base, derived_id(id, sid), id, sid, acct, etype, now, expires, '0')
  end
  return {'created', id, tostring(#subs)}
end

-- Records an operational notice for `acct`: kept in the account's notice
-- list (newest first, bounded) and queued in the shard's outbox for the
-- email notifier, due now.
local function add_notice(base, acct, nid, json, now)
  local list = base .. 'notices:' .. acct
  redis.call('LPUSH', list, json)
  redis.call('LTRIM', list, 0, 999)
  redis.call('HSET', base .. 'notice:' .. nid, 'data', json, 'attempts', 0)
  redis.call('ZADD', base .. 'outbox', now, nid)
end
