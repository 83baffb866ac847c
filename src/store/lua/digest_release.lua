-- Hands a digest claim back unsent (its process stops): the digest is due
-- again now, no attempt spent, if this claim is still the latest and the
-- digest is still being sent; the token is raised, so the released claim
-- can record nothing. For a claim whose outcome was not recorded.
-- KEYS[1]  the shard's digest-sending zset
-- ARGV     base, subscription id, claim token, now_ms
-- Returns  1 when handed back, 0 when the claim was superseded or the
--          digest is no longer being sent
local base, sub, token, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tkey = base .. K.digest .. sub .. K.token
if redis.call('GET', tkey) ~= token or not redis.call('ZSCORE', KEYS[1], sub) then
  return 0
end
redis.call('ZADD', KEYS[1], now, sub)
redis.call('INCR', tkey)
return 1
