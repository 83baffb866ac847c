-- Renews the leases of notices a live process is still sending.
-- KEYS[1]  the shard's outbox
-- ARGV     base, new lease deadline ms, then pairs of notice id, claim
--          token
-- Returns  the ids whose lease now runs until the new deadline: those whose
--          latest claim is still this one (a notice sent, postponed, handed
--          back or claimed again meanwhile is left alone).
local base, until_ms = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local nid = ARGV[i]
  if redis.call('HGET', base .. K.notice .. nid, 'claim') == ARGV[i + 1]
    and redis.call('ZSCORE', KEYS[1], nid) then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, nid)
    out[#out + 1] = nid
  end
end
return out
