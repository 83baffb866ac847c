-- Hands a claimed notice back unsent (its process stops): due again now,
-- and the attempt its claim counted is taken back. Only while the notice is
-- still under this claim's lease (its score is the deadline the claim set),
-- so a notice claimed again by another process is left alone.
-- KEYS[1]  the shard's outbox
-- ARGV     base, notice id, the claim's lease deadline ms, now_ms
-- Returns  1 when handed back, 0 otherwise
local base, nid, deadline, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local score = redis.call('ZSCORE', KEYS[1], nid)
if not score or tonumber(score) ~= deadline then
  return 0
end
redis.call('ZADD', KEYS[1], now, nid)
local nkey = base .. K.notice .. nid
if tonumber(redis.call('HGET', nkey, 'attempts') or '0') > 0 then
  redis.call('HINCRBY', nkey, 'attempts', -1)
end
return 1
