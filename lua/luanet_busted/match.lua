-- luassert.match: matchers for spy arguments (match._, match.is_string(),
-- match.is_not.same(t), match.all_of(...), custom ones registered with
-- assert:register("matcher", name, factory)). A matcher is callable:
-- m(value) -> boolean.

local debug_lib, require_module = ...
local util = require_module("util")
local namespaces = require_module("namespaces")
local say = require_module("say")

local type, tostring, tonumber, pairs, ipairs, rawget, setmetatable, getmetatable =
      type, tostring, tonumber, pairs, ipairs, rawget, setmetatable, getmetatable

local MATCHER = {
  __call = function(self, value) return self.callback(value) == self.mod end,
}

local STATE = {}

function STATE.__index(self, key)
  util.add_tokens(self.tokens, key)
  return self
end

function STATE.__call(self, ...)
  local keys = util.extract_keys("matcher", self.tokens)
  self.tokens = {}
  local matcher
  for _, key in ipairs(keys) do matcher = namespaces.matcher[key] or matcher end
  local args = util.make_arglist(...)
  if matcher then
    for _, key in ipairs(keys) do
      local modifier = namespaces.modifier[key]
      if modifier then modifier.callback(self) end
    end
    local test = matcher.callback(self, args, util.errorlevel())
    return setmetatable({ name = matcher.name, mod = self.mod, callback = test, arguments = args },
                        MATCHER)
  end
  for _, key in ipairs(keys) do
    local modifier = namespaces.modifier[key]
    if modifier then modifier.callback(self, args, util.errorlevel()) end
  end
  return self
end

local match = {
  _ = setmetatable({ mod = true, callback = function() return true end, name = "_",
                     arguments = { n = 0 } }, MATCHER),
  state = function() return setmetatable({ mod = true, tokens = {} }, STATE) end,
  is_matcher = function(v) return type(v) == "table" and getmetatable(v) == MATCHER end,
  is_ref_matcher = function(v)
    return type(v) == "table" and getmetatable(v) == MATCHER and v.name == "ref"
  end,
}

setmetatable(match, {
  __index = function(self, key) return rawget(self, key) or self.state()[key] end,
})

-- The matchers themselves, registered once the assert module exists (it
-- requires this module for its formatters).
function match._register_builtins(assert)
  local astate = require_module("state")
  local function shown(v) return astate.format_argument(v) or tostring(v) end
  local function check(ok, key, values) if not ok then assert(false, say(key, values)) end end
  local function too_few(name, needed, args)
    check(args.n >= needed, "assertion.internal.argtolittle", { name, needed, tostring(args.n) })
  end
  local function register(names, factory)
    for name in names:gmatch("%S+") do assert:register("matcher", name, factory) end
  end

  register("true", function() return function(v) return v == true end end)
  register("false", function() return function(v) return v == false end end)
  for _, kind in ipairs({ "nil", "boolean", "number", "string", "table", "function", "userdata", "thread" }) do
    register(kind, function() return function(v) return type(v) == kind end end)
  end
  register("truthy", function() return function(v) return v ~= false and v ~= nil end end)
  register("falsy", function() return function(v) return v == false or v == nil end end)
  register("ref", function(_, args)
    local kind = type(args[1])
    too_few("ref", 1, args)
    check(kind == "table" or kind == "function" or kind == "thread" or kind == "userdata",
          "assertion.internal.badargtype", { 1, "ref", "object", kind })
    return function(v) return v == args[1] end
  end)
  register("same", function(_, args)
    too_few("same", 1, args)
    return function(v)
      if type(v) == "table" and type(args[1]) == "table" then
        return (util.deepcompare(v, args[1], true))
      end
      return v == args[1]
    end
  end)
  register("equals equal", function(_, args)
    too_few("equals", 1, args)
    return function(v) return v == args[1] end
  end)
  register("matches match", function(_, args)
    too_few("matches", 1, args)
    local pattern, init, plain = args[1], args[2], args[3]
    check(type(pattern) == "string", "assertion.internal.badargtype",
          { 1, "matches", "string", type(args[1]) })
    check(init == nil or tonumber(init), "assertion.internal.badargtype",
          { 2, "matches", "number", type(args[2]) })
    return function(v)
      local kind, text = type(v), nil
      if kind == "string" or kind == "number"
         or (kind == "table" and (getmetatable(v) or {}).__tostring) then
        text = tostring(v)
      end
      return text ~= nil and text:find(pattern, init, plain) ~= nil
    end
  end)
  register("near", function(_, args)
    too_few("near", 2, args)
    local expected, tolerance = tonumber(args[1]), tonumber(args[2])
    local kind = "number or object convertible to a number"
    check(expected, "assertion.internal.badargtype", { 1, "near", kind, shown(args[1]) })
    check(tolerance, "assertion.internal.badargtype", { 2, "near", kind, shown(args[2]) })
    return function(v)
      local actual = tonumber(v)
      return actual ~= nil and actual >= expected - tolerance and actual <= expected + tolerance
    end
  end)
  register("unique", function(_, args)
    local deep = args[1]
    return function(list) return util.unique(list, deep) end
  end)
  -- all_of: false at the first matcher that fails; any_of: true at the first
  -- that holds; none_of: false at the first that holds.
  register("all_of", function(_, args)
    too_few("all", 1, args)
    for i = 1, args.n do
      check(match.is_matcher(args[i]), "assertion.internal.badargtype", { 1, "all", "matcher", type(args[i]) })
    end
    return function(v)
      for i = 1, args.n do if not args[i](v) then return false end end
      return true
    end
  end)
  register("any_of", function(_, args)
    too_few("any", 1, args)
    for i = 1, args.n do
      check(match.is_matcher(args[i]), "assertion.internal.badargtype", { 1, "any", "matcher", type(args[i]) })
    end
    return function(v)
      for i = 1, args.n do if args[i](v) then return true end end
      return false
    end
  end)
  register("none_of", function(_, args)
    too_few("none", 1, args)
    for i = 1, args.n do
      check(match.is_matcher(args[i]), "assertion.internal.badargtype", { 1, "none", "matcher", type(args[i]) })
    end
    return function(v)
      for i = 1, args.n do if args[i](v) then return false end end
      return true
    end
  end)
end

return match
