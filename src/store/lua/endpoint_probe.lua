-- Takes the lease of an endpoint's half-open probe (the rules of
-- `Circuit::try_probe` in delivery/breaker.rs): only when the circuit is
-- open, its cooldown is over and no other probe's lease is running, so the
-- whole fleet sends one probe at a time.
-- KEYS[1]  the endpoint's hash
-- ARGV     now_ms, token (the caller's, unique), lease ms, ttl ms
-- Returns  {1 when the lease was taken else 0, the endpoint's fields (see
--          endpoint_fields)...}
local h = KEYS[1]
local now, token, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local taken = 0
local open_until = redis.call('HGET', h, 'open_until')
if open_until and now >= tonumber(open_until) then
  local busy = redis.call('HGET', h, 'probe_until')
  if not busy or now >= tonumber(busy) then
    redis.call('HSET', h, 'probe', token, 'probe_at', now, 'probe_until', now + lease)
    redis.call('HINCRBY', h, 'v', 1)
    redis.call('PEXPIRE', h, ARGV[4])
    taken = 1
  end
end
local out = endpoint_fields(h)
table.insert(out, 1, taken)
return out
