-- Records an operational notice (see add_notice), at most once per value of
-- a dedupe key when one is given (an endpoint failing since a given time is
-- reported once, by whichever replica gets here first).
-- KEYS[1]  the shard's outbox
-- ARGV     base, account, notice id, notice JSON, now_ms, dedupe name (''
--          for none), dedupe value, dedupe ttl ms
-- Returns  1 when recorded, 0 when this one was already reported.
local base, acct = ARGV[1], ARGV[2]
if ARGV[6] ~= '' then
  local dk = base .. K.reported .. acct .. ':' .. ARGV[6]
  if redis.call('GET', dk) == ARGV[7] then
    return 0
  end
  redis.call('SET', dk, ARGV[7], 'PX', ARGV[8])
end
add_notice(base, acct, ARGV[3], ARGV[4], tonumber(ARGV[5]))
return 1
