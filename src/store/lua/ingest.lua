-- Records a batch of events of one shard atomically.
-- KEYS[1]  the shard's schedule key (declares the shard's slot)
-- ARGV     base, now_ms, idempotency_ttl_ms, count, then per
--          event: id, account, type, occurred_ms, payload, idempotency key
--          ('' for none), fingerprint
-- Returns  a flat list: status, event id, deliveries created, status, ...
local base = ARGV[1]
local now = tonumber(ARGV[2])
local idem_ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local out = {}
for i = 0, n - 1 do
  local o = 4 + i * 7
  local r = ingest_one(base, now, idem_ttl, ARGV[o + 1], ARGV[o + 2], ARGV[o + 3],
    ARGV[o + 4], ARGV[o + 5], ARGV[o + 6], ARGV[o + 7])
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
end
return out
