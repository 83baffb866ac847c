-- Renews the leases of claims a live process still holds.
-- KEYS[1]  the shard's leases
-- ARGV     new lease deadline ms, then pairs of delivery id, claim token
-- Returns  the ids whose lease now runs until the new deadline: those still
--          leased under the same claim (a claim finished, handed back or
--          superseded meanwhile is left alone).
local until_ms = ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local member = lease_member(ARGV[i], ARGV[i + 1])
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, member)
    out[#out + 1] = ARGV[i]
  end
end
return out
