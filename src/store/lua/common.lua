-- Shared by every script that records events or creates deliveries.

-- Adds `member` to a time index (scored by a time, ms). Indexes are trimmed
-- to the retention, and given an expiry, by the janitor's periodic pass
-- (`Store::trim_indexes`), not on every write.
local function add_to_index(key, score, member)
  redis.call('ZADD', key, score, member)
end

-- When `key` expires (ms since the epoch), or nil if it has no expiry.
local function expiry_of(key)
  local at = redis.call('PEXPIRETIME', key)
  if at > 0 then
    return at
  end
  return nil
end

-- Appends one attempt (JSON) to a delivery's `:attempts` list (the
-- attempts after the first, which the delivery's hash holds); the list
-- expires with the delivery.
local function append_attempt(dkey, json)
  local akey = dkey .. K.attempts
  redis.call('RPUSH', akey, json)
  local expires = expiry_of(dkey)
  if expires then
    redis.call('PEXPIREAT', akey, expires)
  end
end

-- Appends one attempt (JSON) to a delivery's history and counts it.
local function record_attempt(dkey, json, now)
  append_attempt(dkey, json)
  redis.call('HINCRBY', dkey, 'attempts', 1)
  redis.call('HSET', dkey, 'last_attempt_at', now)
end

-- A lease's member: the delivery id and its claim's token, so that taking
-- the member out of the leases is the claim's fence (`lease_member`), and
-- the delivery id back from one (`leased_delivery`; members written by
-- earlier versions are the bare id).
local function lease_member(did, token)
  return did .. '|' .. token
end

local function leased_delivery(member)
  local bar = string.find(member, '|', 1, true)
  if bar then
    return string.sub(member, 1, bar - 1)
  end
  return member
end

-- Returns deliveries whose lease expired (their process died or hung) to
-- the schedule, due now. Returns how many.
local function reclaim_expired(schedule, leases, now)
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 1000)
  for _, member in ipairs(expired) do
    redis.call('ZREM', leases, member)
    redis.call('ZADD', schedule, now, leased_delivery(member))
  end
  return #expired
end

-- Keeps a subscription's index of failed deliveries (the only status with
-- an index of its own: failures are few and `recover` needs them) in step
-- with a status change.
local function track_failed(base, did, sid, created, from, to)
  local idx = base .. K.sub_dlv .. sid .. K.failed
  if from == 'failed' then
    redis.call('ZREM', idx, did)
  end
  if to == 'failed' then
    add_to_index(idx, created, did)
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
-- schedule and in the subscription's index. The caller lists it among the
-- event's deliveries (`append_event_delivery`, or the event's own HSET).
-- The record has no expiry of its own: it goes with its event when the
-- janitor expires the event (`expire_events.lua`).
local function create_delivery(base, did, eid, sid, acct, etype, now, replay)
  local dkey = base .. K.dlv .. did
  -- Only what cannot be derived: attempts and claim start absent (0), the
  -- first attempt is due at created_at.
  if replay == '1' then
    redis.call('HSET', dkey, 'event_id', eid, 'sub_id', sid, 'account_id', acct,
      'event_type', etype, 'status', 'pending', 'created_at', now, 'replay', '1')
  else
    redis.call('HSET', dkey, 'event_id', eid, 'sub_id', sid, 'account_id', acct,
      'event_type', etype, 'status', 'pending', 'created_at', now)
  end
  redis.call('ZADD', base .. K.schedule, now, did)
  add_to_index(base .. K.sub_dlv .. sid, now, did)
end

-- Adds a delivery to the event's list of deliveries (a field of the event
-- itself, no key of its own).
local function append_event_delivery(base, eid, did)
  local ekey = base .. K.event .. eid
  local prev = redis.call('HGET', ekey, 'deliveries')
  if prev then
    redis.call('HSET', ekey, 'deliveries', prev .. ' ' .. did)
  else
    redis.call('HSET', ekey, 'deliveries', did)
  end
end

-- The account's routes live in its own hash too: `routes:<type>` holds the
-- enabled subscriptions of a type (`routes:*` those of every type),
-- space-separated, absent when there are none, so that ingest reads the
-- account, its type's routes and its catch-all routes in one HMGET. The
-- field `routes_v` = '2' says the fields are complete; an account written
-- before them gets them from its subscriptions on its first ingest
-- (`build_routes`). The route sets (`route:<account>:<type>`) are kept as
-- well, for the other readers.

-- Adds `id` to (or takes it from) the routes of type `t` in the account's
-- hash `akey`.
local function set_route(akey, t, id, add)
  local field = 'routes:' .. t
  local ids = {}
  for x in string.gmatch(redis.call('HGET', akey, field) or '', '[^ ]+') do
    if x ~= id then
      ids[#ids + 1] = x
    end
  end
  if add then
    ids[#ids + 1] = id
  end
  if #ids == 0 then
    redis.call('HDEL', akey, field)
  else
    redis.call('HSET', akey, field, table.concat(ids, ' '))
  end
end

-- Writes every route field of an account from its subscriptions and marks
-- them complete; returns the routes of `etype` and the catch-all ones.
local function build_routes(base, acct, akey, etype)
  local by_type = {}
  for _, sid in ipairs(redis.call('ZRANGE', base .. K.subs .. acct, 0, -1)) do
    local sub = redis.call('HMGET', base .. K.sub .. sid, 'types', 'enabled')
    if sub[1] and sub[2] == '1' then
      for t in string.gmatch(sub[1], '[^ ]+') do
        by_type[t] = by_type[t] or {}
        table.insert(by_type[t], sid)
      end
    end
  end
  local fields = {'routes_v', '2'}
  for t, ids in pairs(by_type) do
    fields[#fields + 1] = 'routes:' .. t
    fields[#fields + 1] = table.concat(ids, ' ')
  end
  redis.call('HSET', akey, unpack(fields))
  return table.concat(by_type[etype] or {}, ' '), table.concat(by_type['*'] or {}, ' ')
end

-- Stores one event in the shard whose key names start with `base` and fans
-- it out to the account's enabled subscriptions for its type.
-- Returns {status, event_id, deliveries} where status is 'created',
-- 'duplicate' (same Idempotency-Key and same request), 'conflict' (same key,
-- different request) or 'no_account'.
local function ingest_one(base, now, idem_ttl, id, acct, etype, occurred, payload, idem, fp)
  -- One read proves the account exists and brings the routes of the
  -- event's type and the catch-all ones.
  local akey = base .. K.account .. acct
  local account = redis.call('HMGET', akey, 'id', 'routes_v', 'routes:' .. etype, 'routes:*')
  if not account[1] then
    return {'no_account', '', '0'}
  end
  if idem ~= '' then
    local ikey = base .. K.idem .. acct .. ':' .. idem
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
  local typed, all = account[3] or '', account[4] or ''
  if account[2] ~= '2' then
    typed, all = build_routes(base, acct, akey, etype)
  end
  -- The type's routes, then the catch-all ones not among them.
  local subs, seen = {}, {}
  for _, list in ipairs({typed, all}) do
    for sid in string.gmatch(list, '[^ ]+') do
      if not seen[sid] then
        seen[sid] = true
        subs[#subs + 1] = sid
      end
    end
  end
  local dids = {}
  for i, sid in ipairs(subs) do
    dids[i] = derived_id(id, sid)
  end
  -- No expiry: the janitor expires events (and their deliveries) past the
  -- retention, by the account's event index (`expire_events.lua`).
  local ekey = base .. K.event .. id
  if #dids > 0 then
    redis.call('HSET', ekey, 'id', id, 'account_id', acct, 'type', etype,
      'occurred_at', occurred, 'received_at', now, 'payload', payload,
      'deliveries', table.concat(dids, ' '))
  else
    redis.call('HSET', ekey, 'id', id, 'account_id', acct, 'type', etype,
      'occurred_at', occurred, 'received_at', now, 'payload', payload)
  end
  local occ = tonumber(occurred)
  add_to_index(base .. K.events .. acct, occ, id)
  add_to_index(base .. K.events .. acct .. ':' .. etype, occ, id)
  for i, sid in ipairs(subs) do
    create_delivery(base, dids[i], id, sid, acct, etype, now, '0')
  end
  return {'created', id, tostring(#subs)}
end

-- Records an operational notice for `acct`: kept in the account's notice
-- list (newest first, bounded) and queued in the shard's outbox for the
-- email notifier, due now.
local function add_notice(base, acct, nid, json, now)
  local list = base .. K.notices .. acct
  redis.call('LPUSH', list, json)
  redis.call('LTRIM', list, 0, 999)
  redis.call('HSET', base .. K.notice .. nid, 'data', json, 'attempts', 0)
  redis.call('ZADD', base .. K.outbox, now, nid)
end
