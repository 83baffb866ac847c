-- Hands a claimed notice back unsent (its process stops): due again now,
-- and the attempt its claim counted is taken back. Only while this claim is
-- the notice's latest (its token is the claim counter) and the notice is
-- still in the outbox, so a notice claimed again by another process is left
-- alone; the claim counter is raised, so the released claim can neither
-- renew nor finish it afterwards.
-- KEYS[1]  the shard's outbox
-- ARGV     base, notice id, claim token, now_ms
-- Returns  1 when handed back, 0 otherwise
local base, nid, token, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nkey = base .. K.notice .. nid
if redis.call('HGET', nkey, 'claim') ~= token or not redis.call('ZSCORE', KEYS[1], nid) then
  return 0
end
redis.call('ZADD', KEYS[1], now, nid)
redis.call('HINCRBY', nkey, 'claim', 1)
if tonumber(redis.call('HGET', nkey, 'attempts') or '0') > 0 then
  redis.call('HINCRBY', nkey, 'attempts', -1)
end
return 1
