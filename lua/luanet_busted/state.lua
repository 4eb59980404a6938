-- luassert.state: a stack of snapshots, each holding formatters, parameters
-- and the spies made while it was the newest. Reverting a snapshot reverts
-- the ones made after it, drops its formatters and parameters, and reverts
-- its spies and stubs (busted snapshots around every test).

local type, ipairs, pairs, next, setmetatable, getmetatable, error, remove, insert =
      type, ipairs, pairs, next, setmetatable, getmetatable, error, table.remove, table.insert

local state = {}
local SNAPSHOT = { __call = function(self) self:revert() end }
local NIL = {}
local current

function state.revert(self)
  if not self then
    self = current
    if not self.previous then return end
  end
  if getmetatable(self) ~= SNAPSHOT then error("Value provided is not a valid snapshot", 2) end
  if self.next then self.next:revert() end
  self.formatters, self.parameters = {}, {}
  for s in pairs(self.spies) do
    self.spies[s] = nil
    s:revert()
  end
  setmetatable(self, nil)
  current = self.previous
  current.next = nil
end

function state.snapshot()
  local new = setmetatable({
    formatters = {}, parameters = {}, spies = setmetatable({}, { __mode = "kv" }),
    previous = current, revert = state.revert,
  }, SNAPSHOT)
  if current then current.next = new end
  current = new
  return new
end

function state.add_formatter(fn) insert(current.formatters, 1, fn) end

function state.remove_formatter(fn, s)
  s = s or current
  for i, f in ipairs(s.formatters) do
    if f == fn then remove(s.formatters, i); break end
  end
  if s.previous then state.remove_formatter(fn, s.previous) end
end

function state.format_argument(value, s, extra)
  s = s or current
  while s do
    for _, fmt in ipairs(s.formatters) do
      local text = fmt(value, extra)
      if text ~= nil then return text end
    end
    s = s.previous
  end
  return nil
end

function state.set_parameter(name, value)
  if value == nil then value = NIL end
  current.parameters[name] = value
end

function state.get_parameter(name, s)
  s = s or current
  while s do
    local value = s.parameters[name]
    if value ~= nil then
      if value == NIL then return nil end
      return value
    end
    s = s.previous
  end
  return nil
end

function state.add_spy(s) current.spies[s] = true end

state.snapshot()
return state
