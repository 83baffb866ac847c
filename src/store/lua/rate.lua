-- Takes one send from a subscription's rate limit, shared by the fleet: the
-- generic cell rate algorithm (the rules of `Gcra::check` in
-- delivery/ratelimit.rs). The key holds the theoretical arrival time (TAT,
-- ms): when the next send would be due at the steady rate; a send is
-- allowed while that is no more than `burst - 1` intervals ahead of now.
-- KEYS[1]  the subscription's rate key
-- ARGV     now_ms, interval ms (1000 / rate, may be fractional), burst
-- Returns  0 when the send may go, else the ms to wait before asking again.
local now, interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local allow_at = tat + interval - burst * interval
if now < allow_at then
  return math.max(1, math.ceil(allow_at - now))
end
local next_tat = tat + interval
-- Once the TAT is past, the key says nothing a missing one would not.
redis.call('SET', KEYS[1], string.format('%.17g', next_tat), 'PX', math.ceil(next_tat - now) + 1000)
return 0
