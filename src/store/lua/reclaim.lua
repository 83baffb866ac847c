-- Returns expired leases of one shard to its schedule.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     now_ms
-- Returns  how many deliveries were returned
return reclaim_expired(KEYS[1], KEYS[2], tonumber(ARGV[1]))
