-- Expires an account's events past the retention with their deliveries:
-- each event's hash, the hashes and attempt lists of the deliveries it
-- lists (replays included), and its entry in the account's index. The
-- other indexes lose their entries in the periodic trim that follows.
-- KEYS[1]  the account's event index
-- ARGV     base, cutoff ms (events that occurred before it go), most events
-- Returns  how many events went
local base, cutoff, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, max)
if #ids == 0 then
  return 0
end
for _, id in ipairs(ids) do
  local ekey = base .. K.event .. id
  local dids = redis.call('HGET', ekey, 'deliveries')
  if dids then
    for did in string.gmatch(dids, '[^ ]+') do
      local dkey = base .. K.dlv .. did
      redis.call('DEL', dkey)
      redis.call('DEL', dkey .. K.attempts)
    end
  end
  redis.call('DEL', ekey)
end
redis.call('ZREM', KEYS[1], unpack(ids))
return #ids
