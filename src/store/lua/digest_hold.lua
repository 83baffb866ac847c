-- Puts one claimed delivery of a digest subscription into the
-- subscription's open digest instead of sending it. The delivery stays
-- pending (due when the digest is) until the digest is sent.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, delivery id, claim token, now_ms, subscription id, digest
--          due ms (the period's end), event type, most events per digest
-- Returns  'ok', or 'stale' when the claim was superseded.
local base, did, token = ARGV[1], ARGV[2], ARGV[3]
local now, sub, due = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local dkey = base .. K.dlv .. did
if redis.call('ZREM', KEYS[2], lease_member(did, token)) == 0 then
  return 'stale'
end
if redis.call('HSETNX', dkey, 'digest', '1') == 0 then
  -- Already in an open or sending digest (e.g. retried by hand while
  -- held): nothing to add. digest_finish clears the mark.
  return 'ok'
end
local list = base .. K.digest .. sub
redis.call('RPUSH', list, did)
redis.call('HINCRBY', list .. K.counts, ARGV[7], 1)
if redis.call('LLEN', list) >= tonumber(ARGV[8]) then
  due = now
end
local digests = base .. K.digests
local cur = redis.call('ZSCORE', digests, sub)
if not cur or due < tonumber(cur) then
  redis.call('ZADD', digests, due, sub)
end
redis.call('HSET', dkey, 'next_attempt_at', due)
return 'ok'
