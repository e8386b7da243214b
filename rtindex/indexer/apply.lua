-- Apply planned document changes to one shard, atomically (rtindex key layout 1).
--
-- KEYS[1] = the shard's stats hash, KEYS[2] = its docnum -> id hash, then every key the
-- ops name (all in the shard's hash slot, all declared: Redis Cluster safe).
-- ARGV[1] = JSON list of per-document ops whose numbers index KEYS / ARGV; ARGV[2] = text
-- posting record size. Binary payloads (records, doc values) travel as their own ARGV
-- entries, built by Python, so this script never packs bytes.
--
-- Each op first compares the document's stored version with the one the plan was made
-- from: on a mismatch (another writer got there first) it changes nothing and reports 0,
-- and the caller plans that document again. Posting strings stay sorted by docnum.

local stats, ids = KEYS[1], KEYS[2]
local ops = cjson.decode(ARGV[1])
local RS = tonumber(ARGV[2])
local terms_delta = 0

-- 4-byte big-endian docnum -> number (string comparison would follow the locale).
local function num(b)
  local b1, b2, b3, b4 = string.byte(b, 1, 4)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end

-- Index of the first record whose docnum is >= target, the record count, and a match flag.
local function find(key, rs, target)
  local n = redis.call('STRLEN', key) / rs
  local lo, hi = 0, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if num(redis.call('GETRANGE', key, mid * rs, mid * rs + 3)) < target then
      lo = mid + 1
    else
      hi = mid
    end
  end
  local found = lo < n and num(redis.call('GETRANGE', key, lo * rs, lo * rs + 3)) == target
  return lo, n, found
end

-- Insert a record, or replace the record with the same docnum. New docnums are the
-- largest, so the common case is an APPEND with no search.
local function put(key, rs, rec)
  local last = redis.call('GETRANGE', key, -rs, -rs + 3)
  if last == '' then
    redis.call('SET', key, rec)
    return 1
  end
  local target = num(rec)
  if num(last) < target then
    redis.call('APPEND', key, rec)
    return 0
  end
  local i, _, found = find(key, rs, target)
  if found then
    redis.call('SETRANGE', key, i * rs, rec)
  else
    redis.call('SETRANGE', key, i * rs, rec .. redis.call('GETRANGE', key, i * rs, -1))
  end
  return 0
end

-- Remove a docnum's record; an emptied posting string is deleted, never left behind.
local function drop(key, rs, target)
  local i, n, found = find(key, rs, target)
  if not found then
    return 0
  end
  if n == 1 then
    redis.call('DEL', key)
    return -1
  end
  local head = ''
  if i > 0 then
    head = redis.call('GETRANGE', key, 0, i * rs - 1)
  end
  redis.call('SET', key, head .. redis.call('GETRANGE', key, (i + 1) * rs, -1))
  return 0
end

-- Pass 1: per document, in order. Statistics deltas are summed and written once.
local results = {}
local acc = {}
for i, op in ipairs(ops) do
  local dkey = KEYS[op.d]
  local current = redis.call('HGET', dkey, 'v') or ''
  if current ~= ARGV[op.b] then
    results[i] = 0
  else
    results[i] = 1
    local docnum = op.n and ARGV[op.n]
    local target = op.nb and num(ARGV[op.nb])
    for _, k in ipairs(op.pr or {}) do terms_delta = terms_delta + drop(KEYS[k], RS, target) end
    for _, k in ipairs(op.kr or {}) do drop(KEYS[k], 4, target) end
    for _, a in ipairs(op.pa or {}) do terms_delta = terms_delta + put(KEYS[a[1]], RS, ARGV[a[2]]) end
    for _, a in ipairs(op.pu or {}) do put(KEYS[a[1]], RS, ARGV[a[2]]) end
    for _, k in ipairs(op.ka or {}) do put(KEYS[k], 4, ARGV[op.nb]) end
    if op.dl then redis.call('SETRANGE', KEYS[op.dl[1]], op.dl[2], ARGV[op.dl[3]]) end
    for _, a in ipairs(op.nv or {}) do redis.call('SETRANGE', KEYS[a[1]], a[2], ARGV[a[3]]) end
    for _, s in ipairs(op.st or {}) do acc[s[1]] = (acc[s[1]] or 0) + s[2] end

    if op.k == 2 then
      -- delete: a versioned tombstone, so no older event can bring the document back
      if docnum then redis.call('HDEL', ids, docnum) end
      redis.call('DEL', dkey)
      redis.call('HSET', dkey, 'v', ARGV[op.v], 'ts', ARGV[op.ts], 'del', '1')
      if op.ttl then redis.call('EXPIRE', dkey, op.ttl) end
    else
      if op.new == 1 then
        redis.call('DEL', dkey)  -- a tombstone's fields and TTL go
        redis.call('HSET', ids, docnum, ARGV[op.id])
      end
      redis.call('HSET', dkey, 'v', ARGV[op.v], 'ts', ARGV[op.ts], 'n', docnum,
        'src', ARGV[op.src], 'ix', ARGV[op.ix])
    end
  end
end

-- Pass 2: the postings of the new documents that passed their check (op.g: key index of
-- each record in the blob op.gr; op.gk: keyword keys, record = the docnum), grouped by key
-- across the batch. Records of one group ascend by docnum (docnums are allocated in op
-- order). `top` is the largest docnum of any document ever applied in this shard: every
-- record in every posting string is at most `top`, so a group starting above it is
-- appended blindly in one call; otherwise (another writer got later docnums in first)
-- each record is placed by binary search.
local top = tonumber(redis.call('HGET', stats, 'top') or '-1')
local new_top = top
local groups, order = {}, {}
local function add(k, rs, rec)
  local g = groups[k]
  if g == nil then
    g = {rs = rs}
    groups[k] = g
    order[#order + 1] = k
  end
  g[#g + 1] = rec
end
for i, op in ipairs(ops) do
  if results[i] == 1 and op.new == 1 then
    local n = tonumber(ARGV[op.n])
    if n > new_top then new_top = n end
    local blob = ARGV[op.gr]
    for j, k in ipairs(op.g) do add(k, RS, string.sub(blob, (j - 1) * RS + 1, j * RS)) end
    for _, k in ipairs(op.gk) do add(k, 4, ARGV[op.nb]) end
  end
end
for _, k in ipairs(order) do
  local g, key = groups[k], KEYS[k]
  local rs = g.rs
  if num(g[1]) > top then
    local blob = table.concat(g)
    local len = redis.call('APPEND', key, blob)
    if len == #blob and rs == RS then terms_delta = terms_delta + 1 end
  else
    for _, rec in ipairs(g) do
      local added = put(key, rs, rec)
      if rs == RS then terms_delta = terms_delta + added end
    end
  end
end
if new_top > top then redis.call('HSET', stats, 'top', new_top) end

if terms_delta ~= 0 then acc['terms'] = (acc['terms'] or 0) + terms_delta end
for name, delta in pairs(acc) do
  if delta ~= 0 then redis.call('HINCRBY', stats, name, delta) end
end
-- a doc-value chunk with no live document left is deleted with its counter
for i, op in ipairs(ops) do
  if results[i] == 1 and op.cz and tonumber(redis.call('HGET', stats, op.cz[1]) or '0') <= 0 then
    redis.call('HDEL', stats, op.cz[1])
    for _, k in ipairs(op.cz[2]) do redis.call('DEL', KEYS[k]) end
  end
end
return results
