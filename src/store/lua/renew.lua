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
  -- XX: only a member still there; CH counts it when its deadline moved,
  -- which it does unless renewed twice in one millisecond (then ZSCORE).
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', until_ms, member) == 1
    or redis.call('ZSCORE', KEYS[1], member) then
    out[#out + 1] = ARGV[i]
  end
end
return out
