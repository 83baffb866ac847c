-- Renews the leases of digests a live process is still sending.
-- KEYS[1]  the shard's digest-sending zset
-- ARGV     base, new lease deadline ms, then pairs of subscription id,
--          claim token
-- Returns  the subscription ids whose digest lease now runs until the new
--          deadline: those whose latest claim is still this one (a digest
--          finished, handed back or claimed again meanwhile is left alone:
--          each of those raises the token).
local base, until_ms = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local sub = ARGV[i]
  if redis.call('GET', base .. K.digest .. sub .. K.token) == ARGV[i + 1]
    and redis.call('ZSCORE', KEYS[1], sub) then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, sub)
    out[#out + 1] = sub
  end
end
return out
