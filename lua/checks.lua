-- Argument checks the way luaL_check* / luaL_opt* do them, and errors that
-- point at the script's line. Run by the bridge as chunk(native, M); sets
-- M.checks.
--
-- Error levels are found, not counted: raise() reports at the first frame
-- outside luanet's own files (or a C function between, as Lua itself does),
-- however deep the wrapper chain that checked the argument.

local native, M = ...
local checks = {}
M.checks = checks

local type, error, tostring, tonumber, rawget, pairs = type, error, tostring, tonumber, rawget, pairs
local floor, huge, format, sub, min = math.floor, math.huge, string.format, string.sub, math.min
local getinfo, raw_metatable = debug.getinfo, debug.getmetatable

--- The level, relative to the function that calls error(), of the first
--- frame that is not luanet's own.
local function script_level()
  local level = 3  -- 1: script_level, 2: raise, 3: raise's caller
  while true do
    local info = getinfo(level, "S")
    if not info then return 1 end
    if info.what == "C" or sub(info.source, 1, 8) ~= "@luanet/" then return level - 1 end
    level = level + 1
  end
end

function checks.raise(message)
  error(message, script_level())
end

--- A handler is a function, or anything with a __call metamethod (a spy
--- from a test library, a callable object).
function checks.callable(v)
  if type(v) == "function" then return true end
  local mt = raw_metatable(v)
  return mt ~= nil and type(mt) == "table" and rawget(mt, "__call") ~= nil
end
local callable = checks.callable

local function typename(v, given)
  if not given then return "no value" end
  return type(v)
end
checks.typename = typename

local function shown(v)
  return type(v) == "number" and tostring(v) or type(v)
end
checks.shown = shown

-- Argument kinds. Each returns the normalised value, or nil and the reason.
local KIND = {}
checks.KIND = KIND

function KIND.integer(v, given)
  if type(v) == "string" then v = tonumber(v) or v end
  if type(v) ~= "number" then return nil, "number expected, got " .. typename(v, given) end
  if v ~= v or v == huge or v == -huge or floor(v) ~= v then
    return nil, "number has no integer representation"
  end
  return v
end

function KIND.opt_integer(v, given)
  if v == nil then return nil end
  return KIND.integer(v, given)
end

function KIND.count(v, given)  -- a required non-negative integer
  local n, why = KIND.integer(v, given)
  if why then return nil, why end
  if n < 0 then return nil, "non-negative number expected, got " .. tostring(n) end
  return n
end

function KIND.size(v, given)  -- an optional non-negative integer
  if v == nil then return nil end
  return KIND.count(v, given)
end

function KIND.seconds(v, given)  -- a non-negative number
  if type(v) == "string" then v = tonumber(v) or v end
  if type(v) ~= "number" then return nil, "number expected, got " .. typename(v, given) end
  if v ~= v or v < 0 or v == huge then
    return nil, "non-negative number expected, got " .. tostring(v)
  end
  return v
end

function KIND.opt_seconds(v, given)
  if v == nil then return nil end
  return KIND.seconds(v, given)
end

function KIND.boolean(v, given)
  if type(v) ~= "boolean" then return nil, "boolean expected, got " .. typename(v, given) end
  return v
end

function KIND.string(v, given)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then return nil, "string expected, got " .. typename(v, given) end
  return v
end

function KIND.table(v, given)
  if type(v) ~= "table" then return nil, "table expected, got " .. typename(v, given) end
  return v
end

function KIND.callback(v, given)
  if not callable(v) then return nil, "function expected, got " .. typename(v, given) end
  return v
end

--- Check args[1..#kinds] in place; raises "bad argument #i to 'fname' (...)".
function checks.args(fname, kinds, given, args)
  for i = 1, #kinds do
    local v, why = KIND[kinds[i]](args[i], i <= given)
    if why then checks.raise(format("bad argument #%d to '%s' (%s)", i, fname, why)) end
    args[i] = v
  end
  return args
end

--- A value assigned to a writable property, checked against its kind.
function checks.value(name, kind, v)
  local checked, why = KIND[kind](v, true)
  if kind ~= "boolean" and type(v) ~= "number" then why = "not a number" end  -- fields take no "5"
  if why then
    local expected = ({ count = "non-negative integer", seconds = "non-negative number",
                        boolean = "boolean" })[kind] or kind
    checks.raise(format("bad value for '%s' (%s expected, got %s)", name, expected, shown(v)))
  end
  return checked
end

-- "did you mean": the closest known name by edit distance, when it is close.
local function distance(a, b)
  local la, lb = #a, #b
  if la > 64 or lb > 64 then return huge end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = sub(a, i, i)
    for j = 1, lb do
      local cost = (ca == sub(b, j, j)) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

function checks.closest(name, names)
  if type(name) ~= "string" then return nil end
  local best, best_d
  for candidate in pairs(names) do
    local d = distance(name, candidate)
    if not best_d or d < best_d or (d == best_d and candidate < best) then best, best_d = candidate, d end
  end
  if best and best_d <= math.max(2, floor(#name / 4)) then return best end
  return nil
end

return checks
