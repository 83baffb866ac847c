-- Ends or postpones one claimed notice, if the claim is still the latest
-- (its token is the notice's claim counter). A postponed notice's claim
-- counter is raised: the claim is over, so a renewal still on its way
-- cannot move the retry.
-- KEYS[1]  the shard's outbox
-- ARGV     base, notice id, claim token, 'done' (sent, or refused for
--          good) or 'retry', next due ms (retry)
-- Returns  'ok', or 'stale' when the claim was superseded (nothing changed)
local nkey = ARGV[1] .. K.notice .. ARGV[2]
if redis.call('HGET', nkey, 'claim') ~= ARGV[3] then
  return 'stale'
end
if ARGV[4] == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
  redis.call('HINCRBY', nkey, 'claim', 1)
else
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', nkey)
end
return 'ok'
