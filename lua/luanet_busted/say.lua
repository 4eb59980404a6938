-- The "say" module: namespaced message strings (luassert's messages live
-- here, under keys like "assertion.same.positive"). s(key, {values}) formats.

local tostring, type, error, setmetatable, max = tostring, type, error, setmetatable, math.max
local unpack = table.unpack or unpack

local registry, current, fallback = {}, nil, nil

local say = { _VERSION = "Say 1.3", _registry = registry }

function say:set_namespace(name)
  current = name
  registry[name] = registry[name] or {}
end

function say:set_fallback(name)
  fallback = name
  registry[name] = registry[name] or {}
end

function say:set(key, value)
  registry[current][key] = value
end

setmetatable(say, {
  __call = function(_, key, values)
    if values ~= nil and type(values) ~= "table" then
      error(("expected parameter table to be a table, got '%s'"):format(type(values)), 2)
    end
    values = values or {}
    local count = max(values.n or 0, #values)
    local text = registry[current][key]
    if text == nil then text = registry[fallback][key] end
    if text == nil then return nil end
    text = tostring(text)
    if count == 0 then return text end
    local strings = {}
    for i = 1, count do strings[i] = tostring(values[i]) end
    return text:format(unpack(strings, 1, count))
  end,
  __index = function(_, key) return registry[key] end,
})

say:set_fallback("en")
say:set_namespace("en")

return say
