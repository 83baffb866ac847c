-- Creates, replaces or deletes a subscription and its routing entries (the
-- route sets, and the route fields of the account's hash, see common.lua).
-- KEYS[1]  the subscription hash
-- KEYS[2]  the account's subscription index
-- ARGV     base, account, subscription id, expected version ('' = create),
--          new version, record JSON ('' = delete), score (creation ms),
--          enabled ('1'/'0'), space-separated event types, max subscriptions,
--          change channel, and optionally a notice id, its JSON and now_ms:
--          an operational email recorded in the same step (subscription
--          disabled by courier)
-- Returns  'ok', 'exists', 'missing', 'conflict' or 'limit'
local base, acct, id = ARGV[1], ARGV[2], ARGV[3]
local expected, version, json = ARGV[4], ARGV[5], ARGV[6]
local cur = redis.call('HMGET', KEYS[1], 'v', 'types', 'enabled')
local akey = base .. K.account .. acct
if expected == '' then
  if cur[1] then return 'exists' end
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[10]) then return 'limit' end
else
  -- Ids are unique per shard, not per account: only the account's own
  -- index proves the subscription is the caller's.
  if not cur[1] or not redis.call('ZSCORE', KEYS[2], id) then return 'missing' end
  if cur[1] ~= expected then return 'conflict' end
  if cur[3] == '1' then
    for t in string.gmatch(cur[2], '[^ ]+') do
      redis.call('SREM', base .. K.route .. acct .. ':' .. t, id)
      set_route(akey, t, id, false)
    end
  end
end
if json == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], id)
else
  redis.call('HSET', KEYS[1], 'data', json, 'v', version, 'types', ARGV[9], 'enabled', ARGV[8])
  redis.call('ZADD', KEYS[2], ARGV[7], id)
  if ARGV[8] == '1' then
    for t in string.gmatch(ARGV[9], '[^ ]+') do
      redis.call('SADD', base .. K.route .. acct .. ':' .. t, id)
      set_route(akey, t, id, true)
    end
  end
end
if ARGV[12] and ARGV[12] ~= '' then
  add_notice(base, acct, ARGV[12], ARGV[13], tonumber(ARGV[14]))
end
redis.call('PUBLISH', ARGV[11], acct .. ' ' .. id)
return 'ok'
