-- Renews the leases of claims a live process still holds.
-- KEYS[1]  the shard's leases
-- ARGV     base, new lease deadline ms, then pairs of delivery id, claim
--          token
-- Returns  the ids whose lease now runs until the new deadline: those still
--          leased under the same claim (a claim finished, handed back or
--          superseded meanwhile is left alone).
local base, until_ms = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local did = ARGV[i]
  if redis.call('HGET', base .. K.dlv .. did, 'claim') == ARGV[i + 1]
    and redis.call('ZSCORE', KEYS[1], did) then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, did)
    out[#out + 1] = did
  end
end
return out
