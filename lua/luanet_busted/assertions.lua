-- The built-in assertions and modifiers (is, not, message, array/holes ...)
-- with luassert's messages (registered in say's "en" namespace). Each
-- assertion takes (state, args, level) and returns whether it holds, plus
-- optionally the values the assertion call returns.

local debug_lib, require_module = ...
local assert = require_module("assert")
local util = require_module("util")
local astate = require_module("state")
local say = require_module("say")

local type, tostring, tonumber, pairs, error, floor = type, tostring, tonumber, pairs, error, math.floor
local pcall = pcall

say:set_namespace("en")
for key, text in pairs({
  ["assertion.same.positive"] = "Expected objects to be the same.\nPassed in:\n%s\nExpected:\n%s",
  ["assertion.same.negative"] = "Expected objects to not be the same.\nPassed in:\n%s\nDid not expect:\n%s",
  ["assertion.equals.positive"] = "Expected objects to be equal.\nPassed in:\n%s\nExpected:\n%s",
  ["assertion.equals.negative"] = "Expected objects to not be equal.\nPassed in:\n%s\nDid not expect:\n%s",
  ["assertion.near.positive"] = "Expected values to be near.\nPassed in:\n%s\nExpected:\n%s +/- %s",
  ["assertion.near.negative"] = "Expected values to not be near.\nPassed in:\n%s\nDid not expect:\n%s +/- %s",
  ["assertion.matches.positive"] = "Expected strings to match.\nPassed in:\n%s\nExpected:\n%s",
  ["assertion.matches.negative"] = "Expected strings not to match.\nPassed in:\n%s\nDid not expect:\n%s",
  ["assertion.unique.positive"] = "Expected object to be unique:\n%s",
  ["assertion.unique.negative"] = "Expected object to not be unique:\n%s",
  ["assertion.error.positive"] = "Expected a different error.\nCaught:\n%s\nExpected:\n%s",
  ["assertion.error.negative"] = "Expected no error, but caught:\n%s",
  ["assertion.truthy.positive"] = "Expected to be truthy, but value was:\n%s",
  ["assertion.truthy.negative"] = "Expected to not be truthy, but value was:\n%s",
  ["assertion.falsy.positive"] = "Expected to be falsy, but value was:\n%s",
  ["assertion.falsy.negative"] = "Expected to not be falsy, but value was:\n%s",
  ["assertion.called.positive"] = "Expected to be called %s time(s), but was called %s time(s)",
  ["assertion.called.negative"] = "Expected not to be called exactly %s time(s), but it was.",
  ["assertion.called_at_least.positive"] = "Expected to be called at least %s time(s), but was called %s time(s)",
  ["assertion.called_at_most.positive"] = "Expected to be called at most %s time(s), but was called %s time(s)",
  ["assertion.called_more_than.positive"] = "Expected to be called more than %s time(s), but was called %s time(s)",
  ["assertion.called_less_than.positive"] = "Expected to be called less than %s time(s), but was called %s time(s)",
  ["assertion.called_with.positive"] = "Function was never called with matching arguments.\nCalled with (last call if any):\n%s\nExpected:\n%s",
  ["assertion.called_with.negative"] = "Function was called with matching arguments at least once.\nCalled with (last matching call):\n%s\nDid not expect:\n%s",
  ["assertion.returned_with.positive"] = "Function never returned matching arguments.\nReturned (last call if any):\n%s\nExpected:\n%s",
  ["assertion.returned_with.negative"] = "Function returned matching arguments at least once.\nReturned (last matching call):\n%s\nDid not expect:\n%s",
  ["assertion.returned_arguments.positive"] = "Expected to be called with %s argument(s), but was called with %s",
  ["assertion.returned_arguments.negative"] = "Expected not to be called with %s argument(s), but was called with %s",
  ["assertion.internal.argtolittle"] = "the '%s' function requires a minimum of %s arguments, got: %s",
  ["assertion.internal.badargtype"] = "bad argument #%s to '%s' (%s expected, got %s)",
  ["assertion.array_holes.positive"] = "Expected array to have holes, but none was found.\n",
  ["assertion.array_holes.negative"] = "Expected array to not have holes, hole found at position: %s\n",
}) do say:set(key, text) end

local function shown(value) return astate.format_argument(value) or tostring(value) end

-- A misused assertion: raised through assert (a failure at the spec's line).
local function check(ok, key, values)
  if not ok then assert(false, say(key, values)) end
end

local function too_few(name, needed, args)
  check(args.n >= needed, "assertion.internal.argtolittle", { name, needed, tostring(args.n) })
end

local function message_from(state, value)
  if value ~= nil then state.failure_message = value end
end

-- Moves the actual value (second argument) first, for "Passed in: / Expected:".
local function actual_first(args) util.tinsert(args, 1, util.tremove(args, 2)) end

local function equals(state, args)
  too_few("equals", 2, args)
  local held = args[1] == args[2]
  actual_first(args)
  message_from(state, args[3])
  return held
end

local function same(state, args)
  too_few("same", 2, args)
  if type(args[1]) == "table" and type(args[2]) == "table" then
    local held, crumbs = util.deepcompare(args[1], args[2], true)
    actual_first(args)
    args.fmtargs = args.fmtargs or {}
    args.fmtargs[1], args.fmtargs[2] = { crumbs = crumbs }, { crumbs = crumbs }
    message_from(state, args[3])
    return held
  end
  local held = args[1] == args[2]
  actual_first(args)
  message_from(state, args[3])
  return held
end

local function truthy(state, args)
  too_few("truthy", 1, args)
  message_from(state, args[2])
  return args[1] ~= false and args[1] ~= nil
end

local function falsy(state, args)
  too_few("falsy", 1, args)
  return not truthy(state, args)
end

local function near(state, args)
  too_few("near", 3, args)
  local expected, actual, tolerance = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  local kind = "number or object convertible to a number"
  check(expected, "assertion.internal.badargtype", { 1, "near", kind, shown(args[1]) })
  check(actual, "assertion.internal.badargtype", { 2, "near", kind, shown(args[2]) })
  check(tolerance, "assertion.internal.badargtype", { 3, "near", kind, shown(args[3]) })
  actual_first(args)
  args[3] = tolerance
  args.nofmt = args.nofmt or {}
  args.nofmt[3] = true
  message_from(state, args[4])
  return actual >= expected - tolerance and actual <= expected + tolerance
end

-- Takes the custom message out of (init, plain, message) arguments from 3 on.
local function take_message(args)
  local message, init_position = nil, 3
  for i = 3, args.n do
    local v = args[i]
    if v and type(v) ~= "boolean" and not tonumber(v) then
      if i == 3 then init_position = 4 end
      message = util.tremove(args, i)
      break
    end
  end
  return message, init_position
end

local function matches(state, args)
  too_few("matches", 2, args)
  local pattern, actual = args[1], nil
  if util.hastostring(args[2]) or type(args[2]) == "number" then actual = tostring(args[2]) end
  local message, init_position = take_message(args)
  local init, plain = args[3], args[4]
  check(type(pattern) == "string", "assertion.internal.badargtype",
        { 1, "matches", "string", type(args[1]) })
  check(actual, "assertion.internal.badargtype",
        { 2, "matches", "string or object convertible to a string", shown(args[2]) })
  check(init == nil or tonumber(init), "assertion.internal.badargtype",
        { init_position, "matches", "number", type(args[3]) })
  actual_first(args)
  message_from(state, message)
  if plain then
    local held = actual:find(pattern, init, plain) ~= nil
    return held, held and { pattern } or {}
  end
  local captures = { actual:match(pattern, init) }
  return captures[1] ~= nil, captures
end

local function unique(state, args)
  local list, deep = args[1], nil
  if type(args[2]) == "boolean" or (args[2] == nil and args.n > 2) then
    deep = args[2]
    message_from(state, args[3])
  else
    if type(args[3]) == "boolean" then deep = args[3] end
    message_from(state, args[2])
  end
  return util.unique(list, deep)
end

-- Strips the "file:line: " Lua puts before an error message.
local function strip_position(err)
  if type(err) == "string" then err = err:gsub("^.-:%d+: ", "", 1) end
  return err
end

local function has_error(state, args)
  local returned = util.shallowcopy(args)
  local fn, expected, message = args[1], args[2], args[3]
  check(util.callable(fn), "assertion.internal.badargtype",
        { 1, "error", "function or callable object", type(fn) })
  local ok, actual = pcall(fn)
  actual = strip_position(actual)
  returned[1] = actual
  args.nofmt = { ok, expected == nil }
  args.n = 2
  args[1] = ok and "(no error)" or actual
  args[2] = expected == nil and "(error)" or expected
  message_from(state, message)
  if ok or expected == nil then return not ok, returned end
  if type(expected) == "string" then
    if util.hastostring(actual) then
      actual = tostring(actual)
      returned[1] = actual
    end
    if type(actual) == "string" then return expected == actual, returned end
  elseif type(expected) == "number" and type(actual) == "string" then
    return tostring(expected) == tostring(tonumber(actual)), returned
  end
  return same(state, { expected, actual, n = 2 }), returned
end

local function error_matches(state, args)
  local returned = util.shallowcopy(args)
  local fn, pattern = args[1], args[2]
  too_few("error_matches", 2, args)
  check(util.callable(fn), "assertion.internal.badargtype",
        { 1, "error_matches", "function or callable object", type(fn) })
  check(pattern == nil or type(pattern) == "string", "assertion.internal.badargtype",
        { 2, "error", "string", type(pattern) })
  local message, init_position = take_message(args)
  local init, plain = args[3], args[4]
  check(init == nil or tonumber(init), "assertion.internal.badargtype",
        { init_position, "matches", "number", type(args[3]) })
  local ok, actual = pcall(fn)
  actual = strip_position(actual)
  returned[1] = actual
  args.nofmt = { ok, false }
  args.n = 2
  args[1] = ok and "(no error)" or actual
  args[2] = pattern
  message_from(state, message)
  if ok then return false, returned end
  if actual == nil and pattern == nil then return true, {} end
  if util.hastostring(actual) or type(actual) == "number" or type(actual) == "boolean" then
    actual = tostring(actual)
    returned[1] = actual
  end
  if type(actual) == "string" then
    if plain then
      if actual:find(pattern, init, plain) ~= nil then return true, { pattern } end
      return false, returned
    end
    local captures = { actual:match(pattern, init) }
    if captures[1] ~= nil then return true, captures end
  end
  return false, returned
end

local function constant(value)
  return function(state, args)
    util.tinsert(args, 2, value)
    message_from(state, args[3])
    return args[1] == args[2]
  end
end

local function of_type(kind)
  return function(state, args)
    util.tinsert(args, 2, "type " .. kind)
    args.nofmt = args.nofmt or {}
    args.nofmt[2] = true
    message_from(state, args[3])
    return args.n > 1 and type(args[1]) == kind
  end
end

local function returned_arguments(state, args)
  args[1] = tostring(args[1])
  args[2] = tostring(args.n - 1)
  args.nofmt = args.nofmt or {}
  args.nofmt[1], args.nofmt[2] = true, true
  if args.n < 2 then args.n = 2 end
  return args[1] == args[2]
end

local function identity(state) return state end
local function negate(state) state.mod = not state.mod; return state end

-- "a", "an" and "the" read well (assert.is_a_string, assert.are_the_same)
-- and change nothing, as in luassert 1.9.
for _, name in pairs({ "is", "are", "was", "has", "does", "a", "an", "the" }) do
  assert:register("modifier", name, identity)
end
assert:register("modifier", "not", negate)
assert:register("modifier", "no", negate)
assert:register("modifier", "message", function(state, args) state.failure_message = args[1] end)

local function register(names, fn, kind)
  for name in names:gmatch("%S+") do
    assert:register("assertion", name, fn, "assertion." .. kind .. ".positive",
                    "assertion." .. kind .. ".negative")
  end
end

register("true", constant(true), "same")
register("false", constant(false), "same")
for _, kind in pairs({ "boolean", "number", "string", "table", "nil", "userdata", "function", "thread" }) do
  register(kind, of_type(kind), "same")
end
register("returned_arguments", returned_arguments, "returned_arguments")
register("same", same, "same")
register("matches match", matches, "matches")
register("near", near, "near")
register("equals equal", equals, "equals")
register("unique", unique, "unique")
register("error errors", has_error, "error")
register("error_matches error_match matches_error match_error", error_matches, "error")
register("truthy", truthy, "truthy")
register("falsy", falsy, "falsy")

-- assert.array(t).has.no.holes([length]): the first index that is nil.
local ARRAY = "__array_state"
assert:register("modifier", "array", function(state, args)
  assert(args.n > 0, "No array provided to the array-modifier")
  assert(rawget(state, ARRAY) == nil, "Array already set")
  rawset(state, ARRAY, args[1])
  return state
end)
assert:register("assertion", "holes", function(state, args)
  local length, array = args[1], rawget(state, ARRAY)
  assert(array ~= nil, "No array set, please use the array modifier to set the array to validate")
  if length == nil then
    length = 0
    for i in pairs(array) do
      if type(i) == "number" and i > length and floor(i) == i then length = i end
    end
  end
  assert(type(length) == "number", "expected array length to be of type 'number', got: " .. tostring(length))
  local missing
  for i = 1, length do
    if array[i] == nil then missing = i; break end
  end
  args[1] = missing
  args.n = missing and 1 or 0
  return missing ~= nil, { missing }
end, "assertion.array_holes.positive", "assertion.array_holes.negative")

return true
