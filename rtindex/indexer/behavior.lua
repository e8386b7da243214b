-- Apply one chunk of planned behavior operations to one user shard, atomically.
--
-- ARGV[1] is a JSON array (decoded by cjson, in C: far cheaper than thousands of
-- arguments): the number of compare-and-set checks, then (user key, expected seq) pairs: if any user's count moved (another writer applied events of that user since
-- we read it), nothing is written and the conflicting keys are returned for re-planning.
-- Then the operations, executed in order (see indexer/behavior.py), each one event's:
--   z key cap member delta        log2-add delta to member; trim to cap (0: no cap)
--   Z key cap count (member delta)*count   the same for several members at once
--   x key cap member ts           member's score = max(score, ts); trim oldest to cap
--   h key field n                 HINCRBY
--   l key cap count entries...    LPUSH (oldest first), keep the newest cap
--   u key n ts seq                user hash: events since reset, last event time (max),
--                                 events ever (seq: the compare-and-set token)
--   a key member ts               ZADD GT
--   o key field offset ffield fp  hash field = max(field, offset), ffield = fp with it
--   e ua user cutoff k1..k4       forget a user whose last event is still before cutoff
--   r ua user k1..k4              forget a user back after longer than the TTL (k1, the
--                                 user hash, keeps its seq)
-- Every key is also passed in KEYS (they share the shard's hash tag), so this is safe
-- on Redis Cluster. Scores go to ZADD as Lua numbers, which Redis writes in their
-- shortest exact form (string.format would cost more than the ZADD itself).

local call = redis.call
local argv = cjson.decode(ARGV[1])
local ncas = tonumber(argv[1])
local i = 2
local conflicts = {}
for _ = 1, ncas do
  local have = tonumber(call('HGET', argv[i], 'seq') or '0')
  if have ~= tonumber(argv[i + 1]) then
    conflicts[#conflicts + 1] = argv[i]
  end
  i = i + 2
end
if #conflicts > 0 then
  return conflicts
end

local LN2 = math.log(2)
local function log_add(a, b)
  if a >= b then
    return a + math.log(1 + 2 ^ (b - a)) / LN2
  end
  return b + math.log(1 + 2 ^ (a - b)) / LN2
end
local function trim(key, cap)
  local card = call('ZCARD', key)
  if card > cap then
    call('ZPOPMIN', key, card - cap)
  end
end

local n = #argv
while i <= n do
  local op, key = argv[i], argv[i + 1]
  if op == 'z' then
    local cap, member, d = tonumber(argv[i + 2]), argv[i + 3], tonumber(argv[i + 4])
    local old = call('ZSCORE', key, member)
    if old then
      call('ZADD', key, log_add(tonumber(old), d), member)
    else
      call('ZADD', key, d, member)
      if cap > 0 then
        trim(key, cap)
      end
    end
    i = i + 5
  elseif op == 'Z' then
    local cap, count = tonumber(argv[i + 2]), tonumber(argv[i + 3])
    local members = {}
    for j = 1, count do
      members[j] = argv[i + 2 + 2 * j]
    end
    local olds = call('ZMSCORE', key, unpack(members))
    local args = {}
    local added = false
    for j = 1, count do
      local d = tonumber(argv[i + 3 + 2 * j])
      local old = olds[j]
      if old then
        d = log_add(tonumber(old), d)
      else
        added = true
      end
      args[2 * j - 1] = d
      args[2 * j] = members[j]
    end
    call('ZADD', key, unpack(args))
    if added and cap > 0 then
      trim(key, cap)
    end
    i = i + 4 + 2 * count
  elseif op == 'x' then
    local cap = tonumber(argv[i + 2])
    if call('ZADD', key, 'GT', argv[i + 4], argv[i + 3]) > 0 then
      trim(key, cap)
    end
    i = i + 5
  elseif op == 'h' then
    call('HINCRBY', key, argv[i + 2], argv[i + 3])
    i = i + 4
  elseif op == 'l' then
    local cap, count = tonumber(argv[i + 2]), tonumber(argv[i + 3])
    call('LPUSH', key, unpack(argv, i + 4, i + 3 + count))
    call('LTRIM', key, 0, cap - 1)
    i = i + 4 + count
  elseif op == 'u' then
    call('HSET', key, 'n', argv[i + 2], 'seq', argv[i + 4])
    local last = call('HGET', key, 'last')
    if not last or tonumber(last) < tonumber(argv[i + 3]) then
      call('HSET', key, 'last', argv[i + 3])
    end
    i = i + 5
  elseif op == 'a' then
    call('ZADD', key, 'GT', argv[i + 3], argv[i + 2])
    i = i + 4
  elseif op == 'o' then
    local old = call('HGET', key, argv[i + 2])
    if not old or tonumber(old) < tonumber(argv[i + 3]) then
      call('HSET', key, argv[i + 2], argv[i + 3], argv[i + 4], argv[i + 5])
    end
    i = i + 6
  elseif op == 'e' then
    local last = call('ZSCORE', key, argv[i + 2])
    if last and tonumber(last) < tonumber(argv[i + 3]) then
      call('DEL', argv[i + 4], argv[i + 5], argv[i + 6], argv[i + 7])
      call('ZREM', key, argv[i + 2])
    end
    i = i + 8
  elseif op == 'r' then
    call('HDEL', argv[i + 3], 'n', 'last')  -- keeps seq, the compare-and-set token
    call('DEL', argv[i + 4], argv[i + 5], argv[i + 6])
    call('ZREM', key, argv[i + 2])
    i = i + 7
  else
    return redis.error_reply('behavior.lua: unknown operation ' .. tostring(op))
  end
end
return {}
