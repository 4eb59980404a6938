-- A busted-compatible spec runner: describe/it blocks, luassert-style
-- assertions with chaining, spies and stubs. Pure Lua 5.1 to 5.5 and LuaJIT.
--
-- Loading a spec file only registers its tests; Python (luanet/spec.py) then
-- runs them one at a time by id, so a test runner such as pytest can run any
-- single `it` on demand:
--
--   local busted = chunk(debug)      -- debug is optional, see below
--   busted.install(env)              -- describe, it, assert, spy, ... in env
--   busted.reset()                   -- empty tree, before each spec file
--   <run the spec file>              -- registers blocks and tests
--   busted.tests()                   -- { {id, name, full_name, line, pending}, ... }
--   busted.run(id)                   -- "success"|"failure"|"error"|"pending", message
--   busted.finish()                  -- remaining teardowns -> nil or message
--
-- A sandboxed host hides the debug library from scripts. The chunk takes it
-- as an optional argument (or finds it as a global when it is loaded before
-- the sandbox is set up); without it failures still name the spec's
-- file:line, but errors carry no stack traceback.

local debug_lib = ...
if type(debug_lib) ~= "table" then debug_lib = debug end
local getinfo = debug_lib and debug_lib.getinfo
local traceback = debug_lib and debug_lib.traceback

local type, tostring, tonumber, select, error, pcall, xpcall, next, ipairs =
      type, tostring, tonumber, select, error, pcall, xpcall, next, ipairs
local rawget, rawset, rawequal, setmetatable, getmetatable =
      rawget, rawset, rawequal, setmetatable, getmetatable
local max, min, insert = math.max, math.min, table.insert
local format, rep, concat, sort = string.format, string.rep, table.concat, table.sort
local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

local M = { _VERSION = "luanet-busted 1.0" }

-- Our own chunk name as tracebacks print it, to hide the runner's frames.
local own_source = getinfo and getinfo(1, "S").short_src

---------------------------------------------------------------- positions

-- "file:line: " of the current line of a function on the stack: where(1) is
-- the function calling where(), where(2) its caller, ...; "" when unknown.
-- The pcall(error) fallback works without the debug library: error() prefixes
-- the position Lua itself finds (its short_src, shortened past 60 chars).
local function where(level)
  if getinfo then
    local info = getinfo(level + 1, "Sl")
    if not info or info.currentline <= 0 then return "" end
    local source = info.source
    local name = (source:sub(1, 1) == "@" or source:sub(1, 1) == "=") and source:sub(2)
                 or info.short_src
    return name .. ":" .. info.currentline .. ": "
  end
  local _, message = pcall(error, "", level + 2)
  return message
end

---------------------------------------------------------------- outcomes

-- An assertion failure: raised as a table so the runner can tell it from any
-- other error. `where` is the spec line that made the assertion.
local Failure = {}
Failure.__index = Failure
function Failure.__tostring(f) return f.where .. f.message end

local function fail(message, position)
  error(setmetatable({ message = message, where = position }, Failure), 0)
end

local function is_failure(v) return getmetatable(v) == Failure end

-- pending("reason") inside a running test.
local Pending = {}
function Pending.__tostring(p) return p.message end

-- An error that is neither: message with traceback, made by on_error.
local Error = {}
function Error.__tostring(e) return e.message end

---------------------------------------------------------------- formatting

local MAX_DEPTH, MAX_KEYS = 5, 20

local escapes = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\\"] = "\\\\", ["'"] = "\\'" }

-- Strings are byte strings here (network data): show every byte unambiguously.
local function quote(s)
  return "'" .. s:gsub("[%c\128-\255\\']", function(c)
    return escapes[c] or format("\\%d", c:byte())
  end) .. "'"
end

local function number_text(n)
  local s = tostring(n)
  if n == n and tonumber(s) ~= n then s = format("%.17g", n) end
  return s
end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  return ok and s or "<__tostring failed: " .. tostring(s) .. ">"
end

-- Tables whose __tostring says what they are (net objects) print as that.
local function custom_tostring(t)
  local s = safe_tostring(t)
  if s:match("^table: ") then return nil end
  return s
end

local function scalar_text(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then return number_text(v) end
  return safe_tostring(v)
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. scalar_text(k) .. "]"
end

local function path_text(path)
  local parts = {}
  for i = 1, #path do
    local k = key_text(path[i])
    parts[i] = (k:sub(1, 1) == "[" or i == 1) and k or "." .. k
  end
  return concat(parts)
end

local function sorted_keys(t)
  local keys = {}
  for k in next, t do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

-- The slice of sorted keys to print: all of a small table; of a big one the
-- first MAX_KEYS, or the few around the marked key.
local function shown_range(keys, marked_key)
  if #keys <= MAX_KEYS then return 1, #keys end
  if marked_key ~= nil then
    for i = 1, #keys do
      if rawequal(keys[i], marked_key) then
        return max(1, i - 3), min(#keys, i + 3)
      end
    end
  end
  return 1, MAX_KEYS
end

-- One line per key, luassert style; the keys along `path` (where two tables
-- differ) are marked with a "*".
local function table_text(t, path, on_path, level, seen)
  if seen[t] then return "{ <cycle> }" end
  if level > MAX_DEPTH then return "{ ... }" end
  local keys = sorted_keys(t)
  if #keys == 0 then return "{ }" end
  seen[t] = true
  local marked_key
  if on_path then marked_key = path[level] end
  local first, last = shown_range(keys, marked_key)
  local indent = rep("  ", level - 1)
  local lines = {}
  if first > 1 then lines[1] = indent .. "  ... (" .. (first - 1) .. " keys before)" end
  for i = first, last do
    local k = keys[i]
    local marked = marked_key ~= nil and rawequal(k, marked_key)
    local v = rawget(t, k)
    local text = type(v) == "table" and not custom_tostring(v)
                 and table_text(v, path, marked, level + 1, seen) or scalar_text(v)
    lines[#lines + 1] = indent .. (marked and " *" or "  ") .. key_text(k) .. " = " .. text
  end
  if last < #keys then lines[#lines + 1] = indent .. "  ... (" .. (#keys - last) .. " more keys)" end
  seen[t] = nil
  return "{\n" .. concat(lines, "\n") .. " }"
end

-- "(type) value", the way luassert shows a value in a message.
local function value_text(v, path)
  if v == nil then return "(nil)" end
  local t = type(v)
  if t == "table" then
    local custom = custom_tostring(v)
    if custom then return "(table) " .. custom end
    return "(table) " .. table_text(v, path or {}, path ~= nil, 1, {})
  end
  return "(" .. t .. ") " .. scalar_text(v)
end

local function values_text(args, first)
  local parts = {}
  for i = first or 1, args.n do parts[#parts + 1] = value_text(args[i]) end
  if #parts == 0 then return "(no arguments)" end
  return concat(parts, ", ")
end

---------------------------------------------------------------- deep compare

-- Structural equality; on a difference `path` is left holding the keys that
-- lead to it. NaN is the same as NaN; __eq is honoured, as in luassert.
local function deep_equal(a, b, path, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return a ~= a and b ~= b end
  local seen_a = seen[a]
  if not seen_a then seen_a = {}; seen[a] = seen_a end
  if seen_a[b] then return true end
  seen_a[b] = true
  for k, va in next, a do
    path[#path + 1] = k
    if not deep_equal(va, rawget(b, k), path, seen) then return false end
    path[#path] = nil
  end
  for k in next, b do
    if rawget(a, k) == nil then path[#path + 1] = k; return false end
  end
  return true
end

local function value_at(t, path)
  for i = 1, #path do
    if type(t) ~= "table" then return nil end
    t = rawget(t, path[i])
  end
  return t
end

---------------------------------------------------------------- matchers

-- Arguments for called_with / returned_with: match._ and friends.
local Matcher = {}
Matcher.__index = Matcher
function Matcher.__tostring(m) return "matcher " .. m.name end

local function is_matcher(v) return getmetatable(v) == Matcher end

local function new_matcher(name, test)
  return setmetatable({ name = name, test = test }, Matcher)
end

local function matches_value(expected, actual)
  if is_matcher(expected) then return expected.test(actual) and true or false end
  return deep_equal(expected, actual, {}, {})
end

local function matches_arguments(expected, actual)
  if expected.n ~= actual.n then return false end
  for i = 1, expected.n do
    if not matches_value(expected[i], actual[i]) then return false end
  end
  return true
end

local matcher_factories = {
  ref = function(x) return function(v) return rawequal(v, x) end end,
  same = function(x) return function(v) return deep_equal(x, v, {}, {}) end end,
  equal = function(x) return function(v) return v == x end end,
  truthy = function() return function(v) return v ~= nil and v ~= false end end,
  falsy = function() return function(v) return v == nil or v == false end end,
  type = function(t) return function(v) return type(v) == t end end,
  matches = function(p, init, plain)
    return function(v) return type(v) == "string" and v:find(p, init, plain) ~= nil end
  end,
}
matcher_factories.equals, matcher_factories.match = matcher_factories.equal, matcher_factories.matches
for _, t in ipairs({ "nil", "boolean", "number", "string", "table", "function", "userdata", "thread" }) do
  matcher_factories[t] = function() return function(v) return type(v) == t end end
end

local match = setmetatable({ _ = new_matcher("_", function() return true end) }, {
  -- match.is_string(), match.is_not_nil(), match.is_ref(x), match.same(t), ...
  __index = function(_, key)
    if type(key) ~= "string" then return nil end
    local negated, words = false, {}
    for word in key:lower():gmatch("[^_]+") do
      if word == "not" or word == "no" then negated = not negated
      elseif word ~= "is" and word ~= "are" and word ~= "has" then words[#words + 1] = word end
    end
    local factory = matcher_factories[concat(words, "_")]
    if not factory then return nil end
    return function(...)
      local test = factory(...)
      return new_matcher(key, negated and function(v) return not test(v) end or test)
    end
  end,
})
match.is_matcher = is_matcher

---------------------------------------------------------------- spies

local Spy = {}
Spy.__index = Spy

function Spy.__call(self, ...)
  local args = pack(...)
  local calls = self.calls
  -- luassert keeps .vals (values) and .refs; we keep the values themselves.
  calls[#calls + 1] = { vals = args, refs = args }
  local results = pack(self.callback(...))
  self.returnvals[#self.returnvals + 1] = results
  return unpack(results, 1, results.n)
end

function Spy.__tostring(self) return "spy(" .. (self.name or "?") .. ")" end

local function is_spy(v) return getmetatable(v) == Spy end

local function new_spy(callback, name)
  if callback == nil then callback = function() end end
  return setmetatable({ callback = callback, name = name, calls = {}, returnvals = {} }, Spy)
end

function Spy:clear()
  self.calls, self.returnvals = {}, {}
  return self
end

function Spy:revert()
  if self.target then
    self.target[self.key] = self.original
    self.target = nil
  end
  return self
end

function Spy:called(times)
  if times == nil then return #self.calls > 0 end
  return #self.calls == times
end

function Spy:called_with(...)
  local expected = pack(...)
  for _, call in ipairs(self.calls) do
    if matches_arguments(expected, call.vals) then return true end
  end
  return false
end

function Spy:returned_with(...)
  local expected = pack(...)
  for _, results in ipairs(self.returnvals) do
    if matches_arguments(expected, results) then return true end
  end
  return false
end

-- stub-only: change what the stub does.
function Spy:returns(...)
  local results = pack(...)
  self.callback = function() return unpack(results, 1, results.n) end
  return self
end

function Spy:invokes(fn)
  self.callback = fn
  return self
end

local function install_spy(s, target, key)
  s.target, s.key, s.original = target, key, target[key]
  target[key] = s
  return s
end

local spy = {
  new = function(callback) return new_spy(callback) end,
  on = function(target, key)
    if type(target) ~= "table" then error("spy.on: expected a table, got " .. type(target), 2) end
    return install_spy(new_spy(target[key], tostring(key)), target, key)
  end,
  is_spy = is_spy,
}
setmetatable(spy, { __call = function(_, callback) return new_spy(callback) end })

local function new_stub(target, key, ...)
  local s = new_spy(nil, key and tostring(key)):returns(...)
  if target == nil then return s end
  if type(target) ~= "table" then error("stub: expected a table, got " .. type(target), 3) end
  return install_spy(s, target, key)
end

local stub = setmetatable({
  new = function(target, key, ...) return new_stub(target, key, ...) end,
  is_stub = is_spy,
}, { __call = function(_, target, key, ...) return new_stub(target, key, ...) end })

---------------------------------------------------------------- assertions

-- Each assertion: check(args) -> boolean (may leave details in args for the
-- message), message(args, negated) -> text, and optionally message_arg: the
-- position of an optional custom message. args is packed, with `n`.
local assertions = {}

-- Chain words that change nothing (is, are, ...) or negate (not, no), and
-- words that take a payload: assert.spy(s).was.called().
local modifiers = {
  is = true, are = true, was = true, were = true, has = true, have = true, does = true,
  ["do"] = true, to = true, be = true, been = true,
  ["not"] = "negate", no = "negate",
  spy = "payload", stub = "payload",
}

-- A misused assertion (too few arguments, not a spy...): raised from any
-- depth inside a check, re-raised by the chain's __call as an error (not a
-- failure) at the spec's line.
local Usage = {}

local function usage_error(message)
  error(setmetatable({ message = "luassert: " .. message }, Usage), 0)
end

local function register(names, assertion)
  for _, name in ipairs(names) do assertions[name] = assertion end
end

local function need_args(a, count, name)
  if a.n < count then
    usage_error(format("'%s' needs at least %d arguments, got %d", name, count, a.n))
  end
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

register({ "equal", "equals" }, {
  message_arg = 3,
  check = function(a) need_args(a, 2, "equals"); return a[1] == a[2] end,
  message = function(a, negated)
    if negated then
      return "Expected objects to not be equal.\nPassed in:\n" .. value_text(a[2])
             .. "\nDid not expect:\n" .. value_text(a[1])
    end
    return "Expected objects to be equal.\nPassed in:\n" .. value_text(a[2])
           .. "\nExpected:\n" .. value_text(a[1])
  end,
})

register({ "same" }, {
  message_arg = 3,
  check = function(a)
    need_args(a, 2, "same")
    a.path = {}
    return deep_equal(a[1], a[2], a.path, {})
  end,
  message = function(a, negated)
    if negated then
      return "Expected objects to not be the same.\nPassed in:\n" .. value_text(a[2])
             .. "\nDid not expect:\n" .. value_text(a[1])
    end
    local text = "Expected objects to be the same.\nPassed in:\n" .. value_text(a[2], a.path)
                 .. "\nExpected:\n" .. value_text(a[1], a.path)
    if #a.path > 0 then
      text = text .. "\nFirst difference at " .. path_text(a.path) .. ":\n  passed in: "
             .. value_text(value_at(a[2], a.path)) .. "\n  expected: "
             .. value_text(value_at(a[1], a.path))
    end
    return text
  end,
})

local function unary(names, description, test)
  register(names, {
    message_arg = 2,
    check = function(a) return test(a[1]) end,
    message = function(a, negated)
      return "Expected value " .. (negated and "not " or "") .. "to be " .. description
             .. ".\nPassed in:\n" .. value_text(a[1])
    end,
  })
end

unary({ "true" }, "true", function(v) return v == true end)
unary({ "false" }, "false", function(v) return v == false end)
unary({ "truthy" }, "truthy", function(v) return v ~= nil and v ~= false end)
unary({ "falsy", "falsey" }, "falsy", function(v) return v == nil or v == false end)
unary({ "nil" }, "nil", function(v) return v == nil end)
unary({ "callable" }, "callable", is_callable)
for _, t in ipairs({ "boolean", "number", "string", "table", "function", "userdata", "thread" }) do
  unary({ t }, "of type " .. t, function(v) return type(v) == t end)
end

register({ "near" }, {
  message_arg = 4,
  check = function(a)
    need_args(a, 3, "near")
    for i = 1, 3 do
      if type(a[i]) ~= "number" then
        usage_error(format("'near' needs numbers, argument #%d is %s", i, type(a[i])))
      end
    end
    return a[2] >= a[1] - a[3] and a[2] <= a[1] + a[3]
  end,
  message = function(a, negated)
    return "Expected values " .. (negated and "not " or "") .. "to be near.\nPassed in:\n"
           .. value_text(a[2]) .. "\nExpected:\n" .. value_text(a[1]) .. " +/- "
           .. number_text(a[3])
  end,
})

register({ "matches", "match" }, {
  check = function(a)
    need_args(a, 2, "matches")
    local actual = a[2]
    if type(actual) == "number" then actual = tostring(actual) end
    return type(actual) == "string" and actual:find(a[1], a[3], a[4]) ~= nil
  end,
  message = function(a, negated)
    return "Expected strings " .. (negated and "not " or "") .. "to match.\nPassed in:\n"
           .. value_text(a[2]) .. "\nExpected:\n" .. value_text(a[1])
  end,
})

-- Errors compare without Lua's "file:line: " prefix, as in luassert.
local function strip_position(message)
  return (message:gsub("^.-:%d+: ", "", 1))
end

local function caught_error(a, name)
  if not is_callable(a[1]) then
    usage_error(format("'%s' needs a function, got %s", name, type(a[1])))
  end
  local ok, err = pcall(a[1])
  a.raised, a.caught = not ok, err
  if is_failure(err) then err = err.message end
  return not ok, err
end

local function error_caught_text(a)
  if not a.raised then return "no error was raised" end
  return value_text(a.caught)
end

register({ "error", "errors" }, {
  check = function(a)
    local raised, err = caught_error(a, "error")
    if not raised then return false end
    local expected = a[2]
    if expected == nil then return true end
    if type(err) == "string" and type(expected) == "string" then
      return strip_position(err) == expected
    end
    return deep_equal(expected, err, {}, {})
  end,
  message = function(a, negated)
    if negated then
      if a[2] ~= nil then
        return "Expected an error other than:\n" .. value_text(a[2])
      end
      return "Expected no error, but caught:\n" .. value_text(a.caught)
    end
    if not a.raised then return "Expected an error, but no error was raised." end
    return "Expected a different error.\nCaught:\n" .. value_text(a.caught)
           .. "\nExpected:\n" .. value_text(a[2])
  end,
})

register({ "error_matches", "error_match", "matches_error", "match_error" }, {
  check = function(a)
    need_args(a, 2, "error_matches")
    local raised, err = caught_error(a, "error_matches")
    if not raised or type(err) ~= "string" then return false end
    return strip_position(err):find(a[2], a[3], a[4]) ~= nil
  end,
  message = function(a, negated)
    return "Expected an error " .. (negated and "not " or "") .. "matching the pattern.\nCaught:\n"
           .. error_caught_text(a) .. "\nPattern:\n" .. value_text(a[2])
  end,
})

local function times(n) return number_text(n) .. " time(s)" end

local function spy_argument(a)
  local s = a[1]
  if not is_spy(s) then usage_error("expected a spy or stub, got " .. value_text(s)) end
  return s
end

local function call_count_assertion(names, description, test)
  register(names, {
    check = function(a)
      local count = #spy_argument(a).calls
      if description ~= "" then need_args(a, 2, names[1]) end
      return test(count, a[2])
    end,
    message = function(a, negated)
      local count, n = #a[1].calls, a[2]
      if n == nil then
        return negated and "Expected not to be called, but was called " .. times(count)
               or "Expected to be called, but was never called"
      end
      return "Expected " .. (negated and "not " or "") .. "to be called " .. description
             .. times(n) .. ", but was called " .. times(count)
    end,
  })
end

call_count_assertion({ "called" }, "", function(count, n)
  if n == nil then return count > 0 end
  return count == n
end)
call_count_assertion({ "called_at_least" }, "at least ", function(count, n) return count >= n end)
call_count_assertion({ "called_at_most" }, "at most ", function(count, n) return count <= n end)
call_count_assertion({ "called_more_than" }, "more than ", function(count, n) return count > n end)
call_count_assertion({ "called_less_than" }, "less than ", function(count, n) return count < n end)

local function with_arguments_assertion(name, field, verb)
  register({ name }, {
    check = function(a)
      local s = spy_argument(a)
      return Spy[name](s, unpack(a, 2, a.n))
    end,
    message = function(a, negated)
      local list = a[1][field]
      local last = list[#list]
      last = last and (last.vals or last)
      if negated then
        return "Function was " .. verb .. " matching arguments:\n" .. values_text(a, 2)
      end
      return "Function was never " .. verb .. " matching arguments.\n"
             .. (field == "calls" and "Called with" or "Returned") .. " (last call if any):\n"
             .. (last and values_text(last) or "(never called)")
             .. "\nExpected:\n" .. values_text(a, 2)
    end,
  })
end

with_arguments_assertion("called_with", "calls", "called with")
with_arguments_assertion("returned_with", "returnvals", "returned")

-- Splits chain tokens into known words, longest first, so "error_matches" is
-- one word while "has_no_error" is three.
local function resolve(tokens)
  local words, i = {}, 1
  while i <= #tokens do
    local found
    for j = #tokens, i, -1 do
      local word = concat(tokens, "_", i, j)
      if assertions[word] or modifiers[word] then
        words[#words + 1], found = word, j
        break
      end
    end
    if not found then return nil, tokens[i] end
    i = found + 1
  end
  return words
end

-- A chain in progress (assert.are.not...): private fields under table keys,
-- so no assertion name can collide with them.
local TOKENS, PAYLOAD = {}, {}
local State = {}

local function new_state(tokens, payload)
  return setmetatable({ [TOKENS] = tokens, [PAYLOAD] = payload }, State)
end

-- Each step makes a new state, so a saved chain can be extended twice.
function State.__index(self, key)
  if type(key) ~= "string" then return nil end
  local tokens = {}
  for i, token in ipairs(self[TOKENS]) do tokens[i] = token end
  for token in key:lower():gmatch("[^_]+") do tokens[#tokens + 1] = token end
  return new_state(tokens, rawget(self, PAYLOAD))
end

function State.__call(self, ...)
  local tokens = self[TOKENS]
  local words, unknown = resolve(tokens)
  if not words then
    error(format("luassert: unknown modifier or assertion '%s' in assert.%s", unknown,
      concat(tokens, ".")), 2)
  end
  local negated, assertion = false, nil
  for _, word in ipairs(words) do
    if modifiers[word] == "negate" then negated = not negated
    elseif assertions[word] then assertion = assertions[word] end
  end
  if not assertion then
    if modifiers[words[#words]] == "payload" then return new_state(tokens, (...)) end
    error("luassert: no assertion in assert." .. concat(tokens, "."), 2)
  end
  local payload = self[PAYLOAD]
  local args = payload ~= nil and pack(payload, ...) or pack(...)
  local checked, passed = pcall(assertion.check, args)
  if not checked then
    if getmetatable(passed) == Usage then error(passed.message, 2) end
    error(passed, 0)
  end
  if (passed and true or false) == negated then
    local message = assertion.message(args, negated)
    local custom = assertion.message_arg and args[assertion.message_arg]
    if custom ~= nil then message = tostring(custom) .. "\n" .. message end
    fail(message, where(2))
  end
  return ...
end

-- Set by the plain assert(v, msg) just before it raises, so the runner can
-- report that error as a failure at the spec's line.
local plain_failure

local assert_table = setmetatable({}, {
  __index = State.__index,
  -- Plain assert(v, msg, ...) behaves as Lua's own: it returns its arguments,
  -- or raises msg (a string gets the caller's "file:line: ", as Lua adds).
  __call = function(_, ...)
    if ... then return ... end
    if select("#", ...) == 0 then error("bad argument #1 to 'assert' (value expected)", 2) end
    local message = select(2, ...)
    if message == nil then message = "assertion failed!" end
    local position = where(2)
    if type(message) == "string" then message, position = position .. message, "" end
    plain_failure = { value = message, where = position }
    error(message, 0)
  end,
})
rawset(assert_table, TOKENS, {})

-- assert:register("assertion", name, check(state, args), positive, negative):
-- the luassert way to add an assertion (messages are plain text here).
function assert_table:register(kind, name, check, positive, negative)
  if kind ~= "assertion" then error("assert:register: only assertions can be registered", 2) end
  register({ name }, {
    check = function(a) return check(nil, a) end,
    message = function(_, negated)
      return tostring((negated and negative or positive) or "assertion '" .. name .. "' failed")
    end,
  })
end

---------------------------------------------------------------- the tree

local session

local function new_block(name, parent, line)
  return {
    name = name, parent = parent, line = line,
    setup = {}, teardown = {}, before_each = {}, after_each = {},
    first = nil, last = nil, -- ids of the first and last test inside
    active = false,          -- set up and not yet torn down
  }
end

function M.reset()
  local root = new_block(nil, nil, 0)
  session = { root = root, current = root, tests = {}, active = {}, running = nil }
end

local function full_name(block, name)
  local parts = { name }
  while block and block.name do
    insert(parts, 1, block.name)
    block = block.parent
  end
  return concat(parts, " ")
end

-- Line of the registering call in the spec (level 2 above the caller).
local function call_line()
  local position = where(3)
  return tonumber(position:match(":(%d+): $")) or 0
end

local function check_loading(what)
  if session.running then error(what .. "() cannot be used inside a running test", 3) end
end

local function add_test(test)
  local tests = session.tests
  test.id = #tests + 1
  tests[test.id] = test
  local block = test.block
  while block do
    block.first = block.first or test.id
    block.last = test.id
    block = block.parent
  end
end

-- The xpcall message handler: sorts what was raised into failure, pending
-- or error, and gives errors a traceback without the runner's own frames.
local function clean_traceback(text)
  local message, trace = text:match("^(.-\nstack traceback:\n)(.*)$")
  if not message then return text end
  local lines = {}
  for line in (trace .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local function ours(line)
    return own_source and line:find(own_source, 1, true)
  end
  -- Drop the runner's frames below the test (xpcall, run, the host's call)...
  local last = #lines
  while last > 0 and (ours(lines[last]) or lines[last]:find("[C]:", 1, true)) do
    last = last - 1
  end
  -- ...and the assertion internals above it.
  local kept = {}
  for i = 1, last do
    if not ours(lines[i]) then kept[#kept + 1] = lines[i] end
  end
  return message .. concat(kept, "\n")
end

local function on_error(err)
  local mt = getmetatable(err)
  if mt == Failure or mt == Pending or mt == Error then return err end
  local plain = plain_failure
  plain_failure = nil
  if plain and rawequal(plain.value, err) then
    return setmetatable({ message = safe_tostring(err), where = plain.where }, Failure)
  end
  local message = safe_tostring(err)
  if traceback then message = clean_traceback(traceback(message, 2)) end
  return setmetatable({ message = message }, Error)
end

local function protect(fn)
  plain_failure = nil
  return xpcall(fn, on_error)
end

local function describe(name, fn)
  check_loading("describe")
  if type(fn) ~= "function" then
    error("describe: expected a function as argument #2, got " .. type(fn), 2)
  end
  local block = new_block(tostring(name), session.current, call_line())
  session.current = block
  local ok, err = protect(fn)
  session.current = block.parent
  if not ok then
    -- The block's body failed: report it as one erroring test.
    add_test({ block = block.parent, name = block.name, full_name = full_name(block.parent, block.name),
               line = block.line, load_error = tostring(err) })
  end
end

local function it(name, fn)
  check_loading("it")
  if fn ~= nil and not is_callable(fn) then
    error("it: expected a function as argument #2, got " .. type(fn), 2)
  end
  name = tostring(name)
  add_test({ block = session.current, name = name, full_name = full_name(session.current, name),
             line = call_line(), fn = fn, pending = fn == nil })
end

local function pending(name)
  if session.running then
    error(setmetatable({ message = name ~= nil and tostring(name) or "" }, Pending), 2)
  end
  name = tostring(name)
  add_test({ block = session.current, name = name, full_name = full_name(session.current, name),
             line = call_line(), pending = true })
end

local function hook(list_name)
  return function(fn)
    check_loading(list_name)
    if not is_callable(fn) then
      error(list_name .. ": expected a function, got " .. type(fn), 2)
    end
    local list = session.current[list_name]
    list[#list + 1] = fn
  end
end

local function finally(fn)
  local run = session.running
  if not run then error("finally() can only be used inside a running test", 2) end
  if not is_callable(fn) then error("finally: expected a function, got " .. type(fn), 2) end
  run.finallies[#run.finallies + 1] = fn
end

function M.install(env)
  env = env or _G
  local setup, teardown = hook("setup"), hook("teardown")
  env.describe, env.context, env.insulate, env.expose = describe, describe, describe, describe
  env.it, env.test, env.spec = it, it, it
  env.pending = pending
  env.setup, env.lazy_setup, env.strict_setup = setup, setup, setup
  env.teardown, env.lazy_teardown, env.strict_teardown = teardown, teardown, teardown
  env.before_each, env.after_each = hook("before_each"), hook("after_each")
  env.finally = finally
  env.randomize = function() end
  env.assert, env.spy, env.stub, env.match = assert_table, spy, stub, match
  return env
end

---------------------------------------------------------------- running

-- Collects what happened while running one test: the first problem decides
-- the status, later ones are appended to the message.
local function new_outcome() return { status = "success", messages = {} } end

local function record(outcome, err, context)
  local mt, status, text = getmetatable(err), "error", nil
  if mt == Pending then
    if outcome.status == "success" then outcome.status = "pending" end
    outcome.messages[#outcome.messages + 1] = err.message
    return
  elseif mt == Failure then
    status, text = "failure", tostring(err)
  else
    text = tostring(err)
  end
  if outcome.status == "success" or outcome.status == "pending" then
    outcome.status = status
  end
  outcome.messages[#outcome.messages + 1] = context and context .. ":\n" .. text or text
end

local function block_label(kind, block)
  return block.name and format("%s of describe '%s'", kind, full_name(block.parent, block.name))
         or kind .. " of the file"
end

local function run_hooks(list, outcome, context)
  local ok_all = true
  for _, fn in ipairs(list) do
    local ok, err = protect(fn)
    if not ok then record(outcome, err, context); ok_all = false end
  end
  return ok_all
end

local function set_up(block)
  block.active = true
  block.setup_error = nil
  session.active[#session.active + 1] = block
  for _, fn in ipairs(block.setup) do
    local ok, err = protect(fn)
    if not ok then block.setup_error = err; return end
  end
end

local function tear_down_top(outcome)
  local active = session.active
  local block = active[#active]
  active[#active] = nil
  block.active = false
  for i = #block.teardown, 1, -1 do
    local ok, err = protect(block.teardown[i])
    if not ok then record(outcome, err, block_label("teardown", block)) end
  end
end

local function chain_of(block)
  local chain = {}
  while block do
    insert(chain, 1, block)
    block = block.parent
  end
  return chain
end

local function run_test(test, chain, outcome)
  -- setup of every enclosing block not yet set up, outermost first.
  for _, block in ipairs(chain) do
    if not block.active then set_up(block) end
    if block.setup_error then
      record(outcome, block.setup_error, block_label("setup", block))
      return
    end
  end
  local run = { test = test, finallies = {} }
  session.running = run
  local entered = 0
  for i, block in ipairs(chain) do
    entered = i
    if not run_hooks(block.before_each, outcome, "before_each") then break end
  end
  if outcome.status == "success" then
    local ok, err = protect(test.fn)
    if not ok then record(outcome, err) end
  end
  for i = #run.finallies, 1, -1 do
    local ok, err = protect(run.finallies[i])
    if not ok then record(outcome, err, "finally") end
  end
  for i = entered, 1, -1 do run_hooks(chain[i].after_each, outcome, "after_each") end
  session.running = nil
end

--- Runs test `id`: returns status ("success", "failure", "error",
--- "pending") and message ("" on success).
function M.run(id)
  if session.running then error("busted.run: a test is already running", 2) end
  local test = session.tests[id]
  if not test then error("busted.run: no test with id " .. tostring(id), 2) end
  if test.load_error then return "error", test.load_error end
  local outcome = new_outcome()
  local chain = chain_of(test.block)
  local in_chain = {}
  for _, block in ipairs(chain) do in_chain[block] = true end
  -- Leave blocks this test is not in (pytest may skip around).
  local active = session.active
  while #active > 0 and not in_chain[active[#active]] do tear_down_top(outcome) end
  if test.pending then
    outcome.status = "pending"
  else
    run_test(test, chain, outcome)
  end
  -- teardown right after the last test of a block, innermost first.
  while #active > 0 and active[#active].last == id do tear_down_top(outcome) end
  return outcome.status, concat(outcome.messages, "\n\n")
end

--- Runs the teardowns still due (tests after the last one run were skipped):
--- nil, or the message of what failed.
function M.finish()
  local outcome = new_outcome()
  while #session.active > 0 do tear_down_top(outcome) end
  if outcome.status ~= "success" then return concat(outcome.messages, "\n\n") end
  return nil
end

--- The registered tests, in file order.
function M.tests()
  local list = {}
  for i, test in ipairs(session.tests) do
    list[i] = { id = test.id, name = test.name, full_name = test.full_name, line = test.line,
                pending = test.pending or false }
  end
  return list
end

--- Registers the tests of a spec chunk (a function): reset, run it, list them.
function M.load(chunk)
  M.reset()
  chunk()
  return M.tests()
end

M.assert, M.spy, M.stub, M.match = assert_table, spy, stub, match
M.reset()

return M
