-- The read-only script of the Redis source (see script.py); --@OPS@-- is filled from its op table.
local WRONG = '!WRONGTYPE'
local function call(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'WRONGTYPE', 1, true) then return WRONG end
    return redis.error_reply(r.err)
  end
  return r
end
local paths = {}
local function compile(fields)
  local alts = {}
  for alt in string.gmatch(fields, '[^|]+') do
    local parts = {}
    for part in string.gmatch(alt, '[^.]+') do parts[#parts + 1] = part end
    alts[#alts + 1] = parts
  end
  paths[fields] = alts
  return alts
end
-- Flat JSON (no nested object) with a plain top-level key: a C-speed match finds the value exactly;
-- anything else is decoded with cjson.
local simple = {}
local function fast(item, fields)
  local pat = simple[fields]
  if pat == nil then
    pat = false
    if not string.find(fields, '[|.]') then
      local key = '"' .. string.gsub(fields, '%p', '%%%0') .. '"%s*:%s*'
      pat = {key .. '"([^"\\]+)"', key .. '(-?%d[%d.eE+-]*)%s*[,}]'}
    end
    simple[fields] = pat
  end
  if not pat or string.find(item, '{', 2, true) or string.sub(item, 1, 1) ~= '{' then return nil end
  return string.match(item, pat[1]) or string.match(item, pat[2])
end
-- A usable timestamp: the same strict checks as `valid` in Python, so both paths skip the same items.
-- 'ts:<unit>:<latest>': a number that, read in its unit (auto: by magnitude), is a time from 2000-01-01
-- up to `latest` (now plus the allowed skew); NaN, inf, 1e300 and milliseconds read as seconds fail.
local function numeric(v)
  return string.find(v, '^%-?%d+%.?%d*$') ~= nil or string.find(v, '^%-?%d+%.?%d*[eE][%+%-]?%d+$') ~= nil
end
local DIV = {s = 1, ms = 1e3, us = 1e6, ns = 1e9, auto = false}
local spans = {}  -- kind -> {divisor or false for auto, latest}: parsed once per script call
local function plausible(v, kind)
  if not numeric(v) then return false end
  local span = spans[kind]
  if not span then
    local unit, latest = string.match(kind, '^ts:(%a+):(.+)$')
    span = {DIV[unit], tonumber(latest)}
    spans[kind] = span
  end
  local x, div = tonumber(v), span[1]
  if div then
    x = x / div
  elseif x > 1e11 then
    if x > 1e17 then x = x / 1e9 elseif x > 1e14 then x = x / 1e6 else x = x / 1e3 end
  end
  return x >= 946684800 and x <= span[2]
end
local function valid(v, kind)
  if kind == 'num' then
    return numeric(v)
  elseif string.sub(kind, 1, 3) == 'ts:' then
    return plausible(v, kind)
  elseif kind == 'iso' then
    return string.find(v, '^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d') ~= nil
  end
  return true
end
local function pick(item, fields)
  if fields == '' then return item end
  local quick = fast(item, fields)
  if quick then return quick end
  local ok, doc = pcall(cjson.decode, item)
  if not ok or type(doc) ~= 'table' then return nil end
  for _, parts in ipairs(paths[fields] or compile(fields)) do
    local v = doc
    for _, part in ipairs(parts) do
      if type(v) ~= 'table' then v = nil break end
      v = v[part]
    end
    if type(v) == 'number' then return string.format('%.17g', v) end
    if type(v) == 'string' and v ~= '' then return v end
  end
  return nil
end
local function window(key, index, scan)
  if index == 0 then return call('LRANGE', key, 0, scan - 1) end
  local items = call('LRANGE', key, -scan, -1)
  if items == WRONG then return items end
  local rev = {}
  for j = #items, 1, -1 do rev[#rev + 1] = items[j] end
  return rev
end
-- The value of one item: a JSON field ('json'), a field of the hash the item names ('hash'), a JSON
-- field of the string the item names ('get'), or a JSON field of the item's entry in one hash ('hget').
local function value_of(mode, item, p1, p2, kind)
  local v
  if mode == 'json' then
    v = pick(item, p1)
  elseif mode == 'hash' then
    v = call('HGET', p1 .. item, p2)
    if v == WRONG or v == '' then v = nil end
  else
    if mode == 'get' then v = call('GET', p1 .. item) else v = call('HGET', p1, item) end
    if v == WRONG or not v then v = nil else v = pick(v, p2) end
  end
  if v and valid(v, kind) then return v end
  return nil
end
-- The oldest item with a usable value: LINDEX first (the common case), a short scan only if it is bad.
-- No closures: this runs once per queue of every tenant.
local function head(key, index, scan, mode, p1, p2, kind)
  local first = call('LINDEX', key, index)
  if first == WRONG then return WRONG end
  if not first then return {false, 0} end
  local v = value_of(mode, first, p1, p2, kind)
  if v then return {v, 0} end
  local items = window(key, index, scan)
  if items == WRONG then return WRONG end
  local bad = 0
  for _, item in ipairs(items) do
    v = value_of(mode, item, p1, p2, kind)
    if v then return {v, bad} end
    bad = bad + 1
  end
  return {false, bad}
end
-- The earliest last-delivered id over the groups that still have entries to deliver (lag not 0,
-- or unknown): the entry after it is the oldest one not yet delivered. Twin: ops.undelivered_from.
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)%-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)%-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function undelivered_from(groups)
  local from = nil
  for _, g in ipairs(groups) do
    local lag, last = false, nil
    for j = 1, #g, 2 do
      if g[j] == 'lag' then lag = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if last and lag ~= 0 and (from == nil or id_less(last, from)) then from = last end
  end
  return from
end
local SEP = string.char(31)
-- Plain ops (one command, reply as is) come from the op table of script.py: {arity, command...}
-- where '$k' is the key, '$1'.. the op's arguments and '$1-1' one less.
local OPS = {--@OPS@--}
local function plain(spec, key, a)
  if #spec == 3 and spec[3] == '$k' then return call(spec[2], key) end
  local args = {}
  for j = 2, #spec do
    local x = spec[j]
    if x == '$k' then
      x = key
    elseif string.sub(x, 1, 1) == '$' then
      local v = a[tonumber(string.sub(x, 2, 2))]
      if string.sub(x, 3) == '-1' then v = tonumber(v) - 1 end
      x = v
    end
    args[j - 1] = x
  end
  return call(unpack(args))
end
local function one(op, key, a)
  local spec = OPS[op]
  if #spec > 1 then
    return plain(spec, key, a)
  elseif op == 'HEAD' then
    return head(key, tonumber(a[1]), tonumber(a[3]), 'json', a[2], nil, a[4])
  elseif op == 'HEADHASH' then
    return head(key, tonumber(a[1]), tonumber(a[4]), 'hash', a[2], a[3], a[5])
  elseif op == 'HEADGET' then
    return head(key, tonumber(a[1]), tonumber(a[4]), 'get', a[2], a[3], a[5])
  elseif op == 'HEADHGET' then
    return head(key, tonumber(a[1]), tonumber(a[4]), 'hget', a[2], a[3], a[5])
  elseif op == 'XFIRST' then
    local r = call('XRANGE', key, '-', '+', 'COUNT', 1)
    if r == WRONG then return WRONG elseif #r == 0 then return false end
    return r[1][1]
  elseif op == 'XGROUPS' then
    local t = redis.call('TYPE', key)['ok']
    if t == 'stream' then return call('XINFO', 'GROUPS', key) elseif t == 'none' then return {} end
    return WRONG
  elseif op == 'XNEXT' then
    local t = redis.call('TYPE', key)['ok']
    if t == 'none' then return false elseif t ~= 'stream' then return WRONG end
    local start = '-'
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local name, last
      for j = 1, #g, 2 do
        if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
      end
      if name == a[1] then start = '(' .. last end
    end
    local r = redis.call('XRANGE', key, start, '+', 'COUNT', 1)
    if #r == 0 then return false end
    return r[1][1]
  elseif op == 'ZEXISTS' then
    local r = call('ZRANGEBYSCORE', key, '-inf', a[1], 'WITHSCORES', 'LIMIT', 0, tonumber(a[3]))
    if r == WRONG then return WRONG end
    local n, first = 0, false
    for j = 1, #r, 2 do
      if call('EXISTS', a[2] .. r[j]) == 1 then n = n + 1 elseif not first then first = r[j + 1] end
    end
    return {n, first}
  elseif op == 'ZGETS' then
    local r = call('ZRANGEBYSCORE', key, a[1], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(a[2]))
    if r == WRONG then return WRONG end
    local rows = {}
    for j = 1, #r, 2 do
      local v = call('GET', r[j])
      if v == WRONG then v = false end
      rows[#rows + 1] = {r[j], r[j + 1], v}
    end
    return rows
  elseif op == 'XUNDELIVERED' then
    local t = redis.call('TYPE', key)['ok']
    if t == 'none' then return {{}, false} elseif t ~= 'stream' then return WRONG end
    local groups = redis.call('XINFO', 'GROUPS', key)
    local from = undelivered_from(groups)
    if not from then return {groups, false} end
    local r = redis.call('XRANGE', key, '(' .. from, '+', 'COUNT', 1)
    if #r == 0 then return {groups, false} end
    return {groups, r[1][1]}
  elseif op == 'ZHASHES' then
    local r = call('ZREVRANGE', key, 0, tonumber(a[2]) - 1, 'WITHSCORES')
    if r == WRONG then return WRONG end
    local rows = {}
    for j = 1, #r, 2 do
      local h = call('HGETALL', a[1] .. r[j])
      if h == WRONG then h = {} end
      rows[#rows + 1] = {r[j], r[j + 1], h}
    end
    return rows
  end
  return redis.error_reply('jobqueue: unknown op ' .. tostring(op))
end
local out = {}
local i, n = 1, #ARGV
while i <= n do
  local op = ARGV[i]
  if op == 'EACH' then
    local inner, prefix, suffix, tenants = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local k = OPS[inner][1]
    local a = {}
    for j = 1, k do a[j] = ARGV[i + 4 + j] end
    local rows, m = {}, 0
    for t in string.gmatch(tenants, '[^' .. SEP .. ']+') do
      m = m + 1
      rows[m] = one(inner, prefix .. t .. suffix, a)
    end
    out[#out + 1] = rows
    i = i + 5 + k
  else
    local spec = OPS[op]
    if spec == nil then return redis.error_reply('jobqueue: unknown op ' .. tostring(op)) end
    local k = spec[1]
    local a = {}
    for j = 1, k do a[j] = ARGV[i + 1 + j] end
    out[#out + 1] = one(op, ARGV[i + 1], a)
    i = i + 2 + k
  end
end
return out
