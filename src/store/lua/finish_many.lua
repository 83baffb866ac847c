-- Records the outcomes of several claimed deliveries of one shard in one
-- call (each exactly as finish.lua would).
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, now_ms, then per delivery: delivery id, claim token,
--          outcome, next due ms, attempt JSON ('' for none), error text
-- Returns  'ok' or 'stale' per delivery, in order.
local base, now = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 6 do
  out[#out + 1] = finish_one(base, KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1], ARGV[i + 2], now,
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end
return out
