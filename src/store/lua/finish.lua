-- Records the outcome of one claimed delivery.
-- KEYS[1]  the shard's schedule      KEYS[2]  the shard's leases
-- ARGV     base, delivery id, claim token, outcome, now_ms, next due ms
--          (retry/wait), attempt JSON ('' for wait), error text (fail)
-- Outcomes: 'success'; 'retry' (attempt failed, try again at next due);
--          'fail' (attempt failed, no more tries); 'wait' (nothing was sent,
--          e.g. the endpoint's circuit is open: due again, no attempt spent);
--          'drop' (nothing was sent and nothing will be: the subscription
--          is gone or disabled; recorded as failed with the error text).
-- Returns  'ok', or 'stale' when the claim was superseded (the lease had
--          expired and someone else claimed the delivery again).
return finish_one(ARGV[1], KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6],
  ARGV[7], ARGV[8])
