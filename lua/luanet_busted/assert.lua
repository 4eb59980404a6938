-- luassert's assert object: assert(v, msg) as Lua's own, and chains
-- assert.is_not.same(a, b) whose tokens resolve against the registry of
-- namespaces.lua (assertions, modifiers). The registration API
-- (register/unregister, formatters, parameters, snapshots, level) is
-- luassert's, so custom assertions written for luassert work unchanged.
-- A failing assertion raises a failure object (util.fail), as busted's
-- bound `error` does.

local debug_lib, require_module = ...
local util = require_module("util")
local astate = require_module("state")
local namespaces = require_module("namespaces")
local say = require_module("say")

local type, tostring, ipairs, rawget, setmetatable, getmetatable, error =
      type, tostring, ipairs, rawget, setmetatable, getmetatable, error
local unpack = util.unpack

local obj
local LEVEL = {}

local function failure_text(key, failure_message, args)
  if util.hastostring(failure_message) then
    failure_message = tostring(failure_message)
  elseif failure_message ~= nil then
    failure_message = astate.format_argument(failure_message)
  end
  local message = key and say(key, obj:format(args))
  if message and failure_message then return failure_message .. "\n" .. message end
  return message or failure_message
end

local STATE = {}

function STATE.__index(self, key)
  util.add_tokens(self.tokens, key)
  return self
end

function STATE.__call(self, ...)
  local keys = util.extract_keys("assertion", self.tokens)
  local assertion
  for _, key in ipairs(keys) do assertion = namespaces.assertion[key] or assertion end
  if assertion then
    for _, key in ipairs(keys) do
      local modifier = namespaces.modifier[key]
      if modifier then modifier.callback(self) end
    end
    local args = util.make_arglist(...)
    local held, returned = assertion.callback(self, args, util.errorlevel())
    if (not held) == self.mod then
      local key = self.mod and assertion.positive_message or assertion.negative_message
      util.fail(failure_text(key, rawget(self, "failure_message"), args) or "assertion failed!")
    end
    if returned then return unpack(returned) end
    return ...
  end
  local args = util.make_arglist(...)
  self.tokens = {}
  for _, key in ipairs(keys) do
    local modifier = namespaces.modifier[key]
    if modifier then modifier.callback(self, args, util.errorlevel()) end
  end
  return self
end

obj = {
  state = function() return setmetatable({ mod = true, tokens = {} }, STATE) end,

  register = function(self, space, name, callback, positive, negative)
    local key = name:lower()
    namespaces[space] = namespaces[space] or {}
    namespaces[space][key] = { callback = callback, name = key,
                               positive_message = positive, negative_message = negative }
  end,

  unregister = function(self, space, name)
    namespaces[space] = namespaces[space] or {}
    namespaces[space][name:lower()] = nil
  end,

  add_formatter = function(self, fn) astate.add_formatter(fn) end,
  remove_formatter = function(self, fn) astate.remove_formatter(fn) end,

  format = function(self, args)
    local nofmt, extra = args.nofmt or {}, args.fmtargs or {}
    for i = 1, args.n or #args do
      if not nofmt[i] then
        local value = args[i]
        local text = astate.format_argument(value, nil, extra[i])
        if text == nil then text = tostring(value) end
        args[i] = text
      end
    end
    return args
  end,

  set_parameter = function(self, name, value) astate.set_parameter(name, value) end,
  get_parameter = function(self, name) return astate.get_parameter(name) end,
  add_spy = function(self, s) astate.add_spy(s) end,
  snapshot = function(self) return astate.snapshot() end,
  level = function(self, level) return setmetatable({ level = level }, LEVEL) end,
  get_level = function(self, level)
    if getmetatable(level) ~= LEVEL then return nil end
    return level.level
  end,
}

setmetatable(obj, {
  __call = function(self, value, message, level, ...)
    if not value then
      local extra = (self:get_level(level) or 1) - 1
      if message == nil then message = "assertion failed!" end
      util.fail(message, extra)
    end
    return value, message, level, ...
  end,
  __index = function(self, key)
    return rawget(self, key) or self.state()[key]
  end,
})

obj._COPYRIGHT = "luanet"
obj._DESCRIPTION = "luassert-compatible assertions of luanet's spec runner"
obj._VERSION = "Luassert 1.8.0"

return obj
