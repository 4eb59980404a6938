-- luassert's spy, stub and mock (this module returns the three as one
-- table: { spy = ..., stub = ..., mock = ... }; the runner gives each its
-- luassert name). A spy records every call (deep-copied arguments and return
-- values, as luassert keeps them) and passes it on; a stub replaces the
-- function and answers with returns/invokes/on_call_with; mock spies or stubs
-- every function of a table. Stub methods work with a dot and with a colon.

local debug_lib, require_module = ...
local assert = require_module("assert")
local util = require_module("util")

local type, tostring, pairs, ipairs, rawget, rawequal, setmetatable, getmetatable, error, select =
      type, tostring, pairs, ipairs, rawget, rawequal, setmetatable, getmetatable, error, select
local insert = table.insert
local pack, unpack = util.pack, util.unpack

local SPY = {}

function SPY.__call(self, ...)
  local args = util.make_arglist(...)
  insert(self.calls, util.copyargs(args))
  local function record(...)
    insert(self.returnvals, util.copyargs(util.make_arglist(...)))
    return ...
  end
  return record(self.callback(...))
end

local spy = {}

local function spy_revert(self)
  if not self.reverted then
    if self.target_table and self.target_key then
      self.target_table[self.target_key] = self.callback
    end
    self.reverted = true
  end
  return self.callback
end

local function spy_clear(self)
  self.calls, self.returnvals = {}, {}
  return self
end

local function spy_called(self, times, compare)
  if times or compare then
    compare = compare or function(count, expected) return count == expected end
    return compare(#self.calls, times), #self.calls
  end
  return #self.calls > 0, #self.calls
end

local function matching(list, specs)
  local last = #list > 0 and list[#list].vals or nil
  local found = util.matchargs(list, specs)
  if found then return true, found.vals end
  return false, last
end

function spy.new(callback)
  callback = callback or function() end
  if not util.callable(callback) then
    error("Cannot spy on type '" .. type(callback) .. "', only on functions or callable elements",
          util.errorlevel())
  end
  local s = setmetatable({
    calls = {}, returnvals = {}, callback = callback,
    target_table = nil, target_key = nil,
    revert = spy_revert, clear = spy_clear, called = spy_called,
    called_with = function(self, args) return matching(self.calls, args) end,
    returned_with = function(self, args) return matching(self.returnvals, args) end,
  }, SPY)
  assert:add_spy(s)
  return s
end

function spy.is_spy(v) return type(v) == "table" and getmetatable(v) == SPY end

function spy.on(target, key)
  local s = spy.new(target[key])
  target[key] = s
  s.target_table, s.target_key = target, key
  return s
end

setmetatable(spy, { __call = function(_, ...) return spy.new(...) end })

---------------------------------------------------------------- stub

local stub = {}

function stub.new(object, key, ...)
  if object == nil and key == nil then object, key = {}, "" end
  local results = pack(...)
  assert(type(object) == "table" and key ~= nil,
         "stub.new(): Can only create stub on a table key, call with 2 params; table, key",
         assert:level(1))
  assert(object[key] == nil or util.callable(object[key]),
         "stub.new(): The element for which to create a stub must either be callable, or be nil",
         assert:level(1))
  local original = object[key]
  local default
  if results.n == 1 and util.callable(results[1]) then
    default = results[1]
  else
    default = function() return unpack(results) end
  end
  local oncalls, answers = {}, {}
  object[key] = function(...)
    local found = util.matchoncalls(oncalls, util.make_arglist(...))
    if found then return answers[found](...) end
    return default(...)
  end
  local s = spy.on(object, key)
  local revert_spy = s.revert
  s.revert = function(self)
    if not self.reverted then
      revert_spy(self)
      object[key] = original
      self.reverted = true
    end
    return original
  end
  -- s.returns(...) as luassert has it, and s:returns(...) as people write it.
  local function args_of(...)
    if rawequal((...), s) then return pack(select(2, ...)) end
    return pack(...)
  end
  s.returns = function(...)
    local values = args_of(...)
    default = function() return unpack(values) end
    return s
  end
  s.invokes = function(...)
    local fn = args_of(...)[1]
    default = function(...) return fn(...) end
    return s
  end
  s.by_default = { returns = s.returns, invokes = s.invokes }
  s.on_call_with = function(...)
    local expected = util.copyargs(util.make_arglist(unpack(args_of(...))))
    return {
      returns = function(...)
        local values = pack(...)
        insert(oncalls, expected)
        answers[expected] = function() return unpack(values) end
        return s
      end,
      invokes = function(fn)
        insert(oncalls, expected)
        answers[expected] = function(...) return fn(...) end
        return s
      end,
    }
  end
  return s
end

setmetatable(stub, { __call = function(_, ...) return stub.new(...) end })

---------------------------------------------------------------- mock

local function apply(object, action)
  if type(object) ~= "table" then return end
  if spy.is_spy(object) then return object[action](object) end
  for _, v in pairs(object) do apply(v, action) end
  return object
end

local mock = {}

function mock.new(object, dostub, fn, self, key)
  local visited = {}
  local function walk(value, parent, k)
    local kind = type(value)
    if kind == "table" then
      if spy.is_spy(value) or visited[value] then return value end
      visited[value] = true
      for name, v in pairs(value) do value[name] = walk(v, value, name) end
      return value
    elseif kind == "function" then
      if dostub then return stub(parent, k, fn) end
      if parent == nil then return spy.new(value) end
      return spy.on(parent, k)
    end
    return value
  end
  return walk(object, self, key)
end

function mock.clear(object) return apply(object, "clear") end
function mock.revert(object) return apply(object, "revert") end

setmetatable(mock, { __call = function(_, ...) return mock.new(...) end })

---------------------------------------------------------------- assertions

local function set_payload(state, args)
  state.payload = args[1]
  if args[2] ~= nil then state.failure_message = args[2] end
end
assert:register("modifier", "spy", set_payload)
assert:register("modifier", "stub", set_payload)

local function with_values(name, method)
  return function(state, args, level)
    local payload = rawget(state, "payload")
    if not (payload and payload[method]) then
      error("'" .. name .. "' must be chained after 'spy(aspy)'", util.errorlevel())
    end
    local held, shown = payload[method](payload, args)
    local expected = util.shallowcopy(args)
    util.cleararglist(args)
    util.tinsert(args, 1, shown)
    util.tinsert(args, 2, expected)
    return held
  end
end

local function called(compare)
  return function(state, args)
    local times = args[1]
    if not times and not state.mod then
      state.mod = true
      times = 0
    end
    local payload = rawget(state, "payload")
    if payload and type(payload) == "table" and payload.called then
      local held, count = payload:called(times, compare)
      args[1] = tostring(times or ">0")
      util.tinsert(args, 2, tostring(count))
      args.nofmt = args.nofmt or {}
      args.nofmt[1], args.nofmt[2] = true, true
      return held
    elseif payload and type(payload) == "function" then
      error("When calling 'spy(aspy)', 'aspy' must not be the original function, but the spy function replacing the original",
            util.errorlevel())
    end
    error("'called' must be chained after 'spy(aspy)'", util.errorlevel())
  end
end

local function messages(name, positive, negative)
  return "assertion." .. positive .. ".positive", "assertion." .. negative .. ".positive"
end

assert:register("assertion", "returned_with", with_values("returned_with", "returned_with"),
                "assertion.returned_with.positive", "assertion.returned_with.negative")
assert:register("assertion", "called_with", with_values("called_with", "called_with"),
                "assertion.called_with.positive", "assertion.called_with.negative")
assert:register("assertion", "called", called(nil),
                "assertion.called.positive", "assertion.called.negative")
assert:register("assertion", "called_at_least", called(function(c, n) return c >= n end),
                messages(nil, "called_at_least", "called_less_than"))
assert:register("assertion", "called_at_most", called(function(c, n) return c <= n end),
                messages(nil, "called_at_most", "called_more_than"))
assert:register("assertion", "called_more_than", called(function(c, n) return c > n end),
                messages(nil, "called_more_than", "called_at_most"))
assert:register("assertion", "called_less_than", called(function(c, n) return c < n end),
                messages(nil, "called_less_than", "called_at_least"))

return { spy = spy, stub = stub, mock = mock }
