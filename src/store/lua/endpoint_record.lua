-- Records what one attempt says about an endpoint and moves its circuit
-- breaker (the rules of `Circuit::record` in delivery/breaker.rs): a success
-- closes it; a failure is counted while closed and opens it at the
-- threshold; while open only the failure of the probe holding the lease
-- counts (it reopens with the cooldown doubled, up to the cap) and a
-- neutral answer of the probe (410) frees the lease.
-- KEYS[1]  the endpoint's hash
-- ARGV     now_ms, signal ('success', 'failure' or 'neutral'), probe token
--          ('' when the attempt was no probe), failure threshold, base
--          cooldown ms, max cooldown ms, ttl ms (the hash expires this long
--          after its last write)
-- Returns  the endpoint's fields (see endpoint_fields), after the change.
local h = KEYS[1]
local now, signal, token = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local threshold, base, max = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local open_until = redis.call('HGET', h, 'open_until')
local own_probe = token ~= '' and redis.call('HGET', h, 'probe') == token
if signal == 'success' then
  redis.call('HDEL', h, 'failures', 'open_until', 'cooldown', 'probe', 'probe_at',
    'probe_until', 'failing_since')
  redis.call('HSET', h, 'last_success', now)
elseif signal == 'failure' then
  redis.call('HSETNX', h, 'failing_since', now)
  if not open_until then
    if redis.call('HINCRBY', h, 'failures', 1) >= threshold then
      redis.call('HDEL', h, 'failures')
      redis.call('HSET', h, 'open_until', now + base, 'cooldown', base)
    end
  elseif own_probe then
    local cooldown = math.min(tonumber(redis.call('HGET', h, 'cooldown') or base) * 2, max)
    redis.call('HDEL', h, 'probe', 'probe_at', 'probe_until')
    redis.call('HSET', h, 'open_until', now + cooldown, 'cooldown', cooldown)
  end
elseif own_probe then
  redis.call('HDEL', h, 'probe', 'probe_at', 'probe_until')
end
redis.call('HINCRBY', h, 'v', 1)
redis.call('PEXPIRE', h, ARGV[7])
return endpoint_fields(h)
