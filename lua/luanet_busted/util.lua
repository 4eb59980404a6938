-- luassert.util's public functions (specs and custom assertions call them):
-- argument lists that keep trailing nils, deep comparison with the path to
-- the first difference ("crumbs"), copies of call arguments, and the level
-- at which an assertion error should point (the first frame outside the
-- runner's own files).

local debug_lib, require_module = ...
local getinfo = debug_lib and debug_lib.getinfo
local getmt = debug_lib and debug_lib.getmetatable or getmetatable
local setmt = debug_lib and debug_lib.setmetatable or setmetatable
local type, next, pairs, ipairs, select, rawequal, setmetatable, getmetatable, error =
      type, next, pairs, ipairs, select, rawequal, setmetatable, getmetatable, error
local raw_unpack = table.unpack or unpack

local util = {}

function util.unpack(t, i, j) return raw_unpack(t, i or 1, j or t.n or #t) end
function util.pack(...) return { n = select("#", ...), ... } end

local ARGLIST = {}

function util.make_arglist(...)
  return setmetatable({ n = select("#", ...), ... }, ARGLIST)
end

function util.is_arglist(value) return getmetatable(value) == ARGLIST end

function util.callable(value)
  if type(value) == "function" then return true end
  local mt = getmt(value)
  return type(mt) == "table" and type(mt.__call) == "function"
end

function util.hastostring(value)
  if type(value) == "string" then return true end
  local mt = getmt(value)
  return type(mt) == "table" and type(mt.__tostring) == "function"
end

-- Deep comparison. Returns true, or false and the crumbs: the keys leading
-- to the first difference, innermost first. A shared metatable with __eq
-- decides unless ignore_mt; tables met again along a cycle count as equal
-- once both sides have looped.
function util.deepcompare(a, b, ignore_mt, cycles, limit_a, limit_b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  local mt_a, mt_b = getmt(a), getmt(b)
  if mt_a and mt_a == mt_b and mt_a.__eq then
    if not ignore_mt then return a == b end
  elseif rawequal(a, b) then
    return true
  end
  cycles = cycles or { {}, {} }
  limit_a, limit_b = limit_a or 1, limit_b or 1
  local seen_a, seen_b = cycles[1], cycles[2]
  seen_a[a], seen_b[b] = seen_a[a] or 0, seen_b[b] or 0
  if seen_a[a] == 1 or seen_b[b] == 1 then
    limit_a, limit_b = seen_a[a] + 1, seen_b[b] + 1
  end
  if seen_a[a] > limit_a and seen_b[b] > limit_b then return true end
  seen_a[a], seen_b[b] = seen_a[a] + 1, seen_b[b] + 1
  for k, va in next, a do
    local vb = b[k]
    if vb == nil then return false, { k } end
    local same, crumbs = util.deepcompare(va, vb, nil, cycles, limit_a, limit_b)
    if not same then
      crumbs = crumbs or {}
      crumbs[#crumbs + 1] = k
      return false, crumbs
    end
  end
  for k in next, b do
    if a[k] == nil then return false, { k } end
  end
  seen_a[a], seen_b[b] = seen_a[a] - 1, seen_b[b] - 1
  return true
end

--- No two entries of `list` are equal (deeply equal with `deep`).
function util.unique(list, deep)
  for k, v in pairs(list) do
    for k2, v2 in pairs(list) do
      if k ~= k2 then
        if deep and util.deepcompare(v, v2, true) then return false end
        if v == v2 then return false end
      end
    end
  end
  return true
end

--- The tokens of a chained key (`is_not_equal` -> is, not, equal), added
--- to the state's list: assert's and match's chains are read alike.
function util.add_tokens(tokens, key)
  for token in key:lower():gmatch("[^_]+") do tokens[#tokens + 1] = token end
end

function util.shallowcopy(t)
  if type(t) ~= "table" then return t end
  local copy = {}
  for k, v in next, t do copy[k] = v end
  return setmetatable(copy, getmetatable(t))
end

function util.deepcopy(t, deep_mt, cache)
  if type(t) ~= "table" then return t end
  cache = cache or {}
  if cache[t] then return cache[t] end
  local spy = require_module("spy").spy
  local copy = {}
  cache[t] = copy
  for k, v in next, t do
    copy[k] = spy.is_spy(v) and v or util.deepcopy(v, deep_mt, cache)
  end
  local mt = getmt(t)
  if deep_mt then mt = util.deepcopy(mt, false, cache) end
  setmt(copy, mt)
  return copy
end

-- A recorded call: deep copies of the values (later changes to the caller's
-- tables do not alter what was recorded) and the references themselves.
function util.copyargs(args)
  local match, spy = require_module("match"), require_module("spy").spy
  local copy = setmetatable({}, getmetatable(args))
  for k, v in pairs(args) do
    copy[k] = (match.is_matcher(v) or spy.is_spy(v)) and v or util.deepcopy(v)
  end
  return { vals = copy, refs = util.shallowcopy(args) }
end

function util.cleararglist(list)
  for i = list.n, 1, -1 do util.tremove(list, i) end
  list.n = nil
end

-- table.insert / table.remove that respect `n` (and so trailing nils).
function util.tinsert(...)
  local count, t, pos, value = select("#", ...), ...
  if count < 3 then pos, value = nil, pos end
  t.n = (t.n or #t) + 1
  if not pos then
    pos = t.n
  elseif pos > t.n then
    t[pos] = value
    t.n = pos
  end
  for i = t.n, pos + 1, -1 do t[i] = t[i - 1] end
  t[pos] = value
end

function util.tremove(t, pos)
  t.n = t.n or #t
  if not pos then
    pos = t.n
  elseif pos > t.n then
    local removed = t[pos]
    t[pos] = nil
    return removed
  end
  local removed = t[pos]
  for i = pos, t.n do t[i] = t[i + 1] end
  t[t.n] = nil
  t.n = t.n - 1
  return removed
end

local function arguments_match(values, refs, specs)
  local match = require_module("match")
  for i, value in pairs(values) do
    local spec = specs[i]
    if match.is_matcher(spec) then
      if match.is_ref_matcher(spec) then value = refs[i] end
      if not spec(value) then return false end
    elseif spec == nil or not util.deepcompare(value, spec) then
      return false
    end
  end
  for i, spec in pairs(specs) do
    if values[i] == nil then
      if not (match.is_matcher(spec) and spec(nil)) then return false end
    end
  end
  return true
end

-- The last recorded call (or return) matching specs, or nil.
function util.matchargs(list, specs)
  for i = #list, 1, -1 do
    local entry = list[i]
    if arguments_match(entry.vals, entry.refs, specs) then return entry end
  end
  return nil
end

-- The first on_call_with entry whose arguments match this call, or nil.
function util.matchoncalls(oncalls, args)
  for _, entry in ipairs(oncalls) do
    if arguments_match(args, args, entry.vals) then return entry end
  end
  return nil
end

-- Is this frame the runner's own code (or C)?
local function internal(info)
  if not info then return false end
  local source = info.source or ""
  return source:sub(1, 21) == "@luanet/luanet_busted" or source == "=(tail call)"
         or info.what == "C"
end
util.internal_frame = internal

-- The level (as error() takes it, from the caller of errorlevel) of the
-- first frame outside the runner: where an assertion error should point.
function util.errorlevel(level)
  level = (level or 1) + 1
  if not getinfo then return level end
  local start = level
  while true do
    local info = getinfo(level, "S")
    if not info then return start end
    if not internal(info) then break end
    level = level + 1
  end
  return level - 1
end

-- "file:line: " of the first frame outside the runner, or "".
function util.position()
  if not getinfo then return "" end
  local level = 2
  while true do
    local info = getinfo(level, "Sl")
    if not info then return "" end
    if not internal(info) then
      if info.currentline and info.currentline > 0 then
        return info.short_src .. ":" .. info.currentline .. ": "
      end
      return ""
    end
    level = level + 1
  end
end

-- Splits tokens (assert.is_not.equal -> is, not, equal) into known keys of
-- a namespace, longest first from the end, as luassert does.
function util.extract_keys(space, tokens)
  local namespaces = require_module("namespaces")
  local names, modifiers = namespaces[space] or {}, namespaces.modifier
  local keys, key, i = {}, nil, #tokens
  while i > 0 do
    key = key and (tokens[i] .. "_" .. key) or tokens[i]
    while i > 1 and names[tokens[i - 1] .. "_" .. key] do
      i = i - 1
      key = tokens[i] .. "_" .. key
    end
    if modifiers[key] or names[key] then
      table.insert(keys, 1, key)
      key = nil
    end
    i = i - 1
  end
  if key then
    error("luassert: unknown modifier/" .. space .. ": '" .. key .. "'", util.errorlevel(2))
  end
  return keys
end

-- Outcomes other than errors, as busted raises them: a failure (an
-- assertion that does not hold) and a pending. tostring gives the message.
util.FAILURE = { __index = {}, __tostring = function(e) return tostring(e.message) end,
                 __type = "failure" }
util.FAILURE_NOSTRING = { __index = {}, __type = "failure" }
util.PENDING = { __index = {}, __tostring = function(p) return tostring(p.message) end,
                 __type = "pending" }

-- Raises a failure. A string message gets the "file:line: " of the first
-- frame outside the runner (skip more frames with `extra`), as error() adds.
function util.fail(message, extra)
  if type(message) == "string" or type(message) == "number" then
    local position = util.position()
    if extra and extra > 0 and getinfo then
      local level, skipped = 2, -1
      while true do
        local info = getinfo(level, "Sl")
        if not info then break end
        if skipped >= 0 or not internal(info) then
          skipped = skipped + 1
          if skipped == extra then
            position = (info.currentline or 0) > 0
                       and info.short_src .. ":" .. info.currentline .. ": " or ""
            break
          end
        end
        level = level + 1
      end
    end
    message = position .. message
  end
  local mt = util.hastostring(message) and util.FAILURE or util.FAILURE_NOSTRING
  error(setmetatable({ message = message }, mt), 0)
end

function util.is_failure(value)
  local mt = getmetatable(value)
  return mt == util.FAILURE or mt == util.FAILURE_NOSTRING
end

return util
