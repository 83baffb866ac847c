-- Ends or postpones one claimed notice.
-- KEYS[1]  the shard's outbox
-- ARGV     base, notice id, 'done' (sent, or refused for good) or 'retry',
--          next due ms (retry)
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', ARGV[1] .. K.notice .. ARGV[2])
end
return 'ok'
