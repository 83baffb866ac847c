-- One page of a sorted-set index, newest first, resuming after a cursor.
-- KEYS[1]  the index (score = time in ms, member = id)
-- ARGV     max score, min score, cursor id ('' = first page), count
-- Returns  a flat list: id, score, id, score, ... (at most count items)
-- Members of equal score come in descending id order; the cursor is the last
-- (score, id) returned, so a page resumes exactly after it.
local max, min, cursor, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
if cursor ~= '' then
  local ties = redis.call('ZRANGEBYSCORE', KEYS[1], max, max)
  for i = #ties, 1, -1 do
    if ties[i] < cursor then
      out[#out + 1] = ties[i]
      out[#out + 1] = max
      if #out / 2 >= count then return out end
    end
  end
  max = '(' .. max
end
local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, min, 'WITHSCORES', 'LIMIT', 0, count - #out / 2)
for _, v in ipairs(rest) do out[#out + 1] = v end
return out
