-- The object model scripts see: ".new()", colon methods, properties as
-- fields, handler fields, unknown keys refused. Run by the bridge as
-- chunk(native, M); sets M.objects.
--
-- An object is an empty table whose metatable is its private record: the
-- record holds the object's id, its handlers and (for sockets) the read
-- buffer, next to the metamethods. `__metatable` hides it, so a script can
-- neither reach it (getmetatable, next, pairs, rawget all show nothing) nor
-- forge it. Handler closures that capture their object form cycles through
-- the record that Lua's collector frees as usual. Python holds ids only.

local native, M = ...
local objects = {}
M.objects = objects

local checks = M.checks
-- events Python hands over whether or not a handler is set: setting one of
-- their handlers need not tell Python (no native.want crossing)
local ALWAYS = native.schema.always_delivered
local type, tostring, setmetatable, rawget, pairs, select, format =
      type, tostring, setmetatable, rawget, pairs, select, string.format
local unpack = table.unpack or unpack
local raw_metatable = debug.getmetatable
local newproxy = newproxy
local raise, callable, KIND = checks.raise, checks.callable, checks.KIND

-- id -> object, weak: dispatch finds live objects, and never keeps one alive.
local registry = setmetatable({}, { __mode = "v" })
objects.registry = registry

-- False once the host closes: finalisers that run while the runtime is torn
-- down must not call into Python any more.
local host_open = true
function objects.shutdown() host_open = false end

-- Finalisers mostly run inside a dispatch (handlers allocate): those queue
-- their ids, and the dispatch hands them to Python together when it ends
-- (objects.flush_released), one crossing for many. released[1..queued]
-- are the ids; Python has had those up to `handed`.
objects.queued = 0
local released, handed = {}, 0
local slots = 0  -- released[1..slots] exist: storing there allocates nothing
local RELEASE_CALL = 100  -- ids per call: well inside every version's C stack

local function queue(id)
  local n = objects.queued + 1
  released[n] = id  -- may fail (a new slot, out of memory): then nothing is counted
  objects.queued = n
  if n > slots then slots = n end
end

local function release(id)
  if not host_open then return end
  -- inside a dispatch, queued; outside one, or if the queue cannot grow, at once
  if objects.serial ~= 0 then
    if objects.queued < slots then queue(id) return end  -- a slot used before: cannot fail
    if pcall(queue, id) then return end
  end
  native.release(id)
end

function objects.flush_released()
  while handed < objects.queued and host_open do
    local first, n = handed + 1, objects.queued
    local last = n - first < RELEASE_CALL and n or first + RELEASE_CALL - 1
    native.release(unpack(released, first, last))
    handed = last  -- only once Python has them: an error here loses none
  end
  if handed >= objects.queued then handed, objects.queued = 0, 0 end
end

-- The serial of the batch being dispatched (dispatch.lua sets it; 0 outside
-- a dispatch). An object whose connection ended, or whose timer restarted,
-- while a batch runs is "cut": the rest of that batch's events for it belong
-- to what ended.
objects.serial = 0
function objects.cut(rec) rec.cut = objects.serial end

local OOM = "not enough memory"

-- name -> class, for describe() (the stubs test asks what each class has)
objects.classes = {}

--- What each class offers scripts: names only, for tools and tests.
function objects.describe()
  local out = {}
  for name, class in pairs(objects.classes) do
    local entry = { methods = {}, properties = {}, writable = {}, handlers = {}, constants = {} }
    for k in pairs(class.methods) do entry.methods[#entry.methods + 1] = k end
    for k in pairs(class.getters) do entry.properties[#entry.properties + 1] = k end
    for k in pairs(class.setters) do entry.writable[#entry.writable + 1] = k end
    for k in pairs(class.handlers) do entry.handlers[#entry.handlers + 1] = k end
    for k, v in pairs(class.static) do
      if type(v) == "number" then entry.constants[k] = v else entry.methods[#entry.methods + 1] = k end
    end
    out[name] = entry
  end
  return out
end

--- The class of every object: names, schema-made properties and handlers.
--- `spec` is the bridge's schema entry for the class (luanet/schema.py).
function objects.define_class(spec, handler_hook)
  local name, var = spec.name, spec.var
  local class = { name = name, var = var, methods = {}, getters = {}, setters = {},
                  handlers = {}, static = {} }
  local methods, getters, setters, handlers, static =
        class.methods, class.getters, class.setters, class.handlers, class.static

  for prop, info in pairs(spec.props) do
    local read = native.getter(name, prop)
    if info.kind == "string" then
      -- false: the string did not fit in the memory budget (see bridge.py)
      getters[prop] = function(rec)
        local v = read(rec.id)
        if v == false then raise(OOM) end
        return v
      end
    else
      getters[prop] = function(rec) return read(rec.id) end
    end
    if info.writable then
      local write, kind = native.setter(name, prop), info.kind
      setters[prop] = function(rec, value) write(rec.id, checks.value(prop, kind, value)) end
    end
  end
  for field, info in pairs(spec.handlers) do handlers[field] = info.event end
  for k, v in pairs(spec.constants) do static[k] = v end
  objects.classes[name] = class

  local function known_names()
    local names = {}
    for _, t in pairs({ methods, getters, handlers }) do for k in pairs(t) do names[k] = true end end
    return names
  end

  function class.index(obj, key)
    local m = methods[key]
    if m then return m end
    local rec = raw_metatable(obj)
    local g = getters[key]
    if g then return g(rec) end
    if handlers[key] then return rec[key] end
    return static[key]
  end

  function class.newindex(obj, key, value)
    local rec = raw_metatable(obj)
    local event = handlers[key]
    if event then
      if value ~= nil and not callable(value) then
        raise(format("bad value for '%s' (function or nil expected, got %s)", tostring(key), type(value)))
      end
      local old = rec[key]
      rec[key] = value
      if (old == nil) ~= (value == nil) and not ALWAYS[event] then
        native.want(rec.id, event, value ~= nil)
      end
      if handler_hook then handler_hook(rec, key, value) end
    elseif setters[key] then
      setters[key](rec, value)
    elseif getters[key] or methods[key] then
      raise(format("cannot assign to read-only property '%s' of %s", tostring(key), name))
    else
      local near = checks.closest(key, known_names())
      raise(format("cannot assign to unknown field '%s' of %s%s", tostring(key), name,
        near and format(" (did you mean '%s'?)", near) or ""))
    end
  end

  function class.tostring(obj)
    local text = native.describe(raw_metatable(obj).id)
    if text == false then return name end
    return text
  end

  if not newproxy then  -- Lua 5.2+: one shared finaliser, nothing per object
    function class.gc(obj)
      -- a weak-keyed table can still reach the object after this (5.2+):
      -- from now on it answers as released, before Python has the id
      local rec = raw_metatable(obj)
      local id = rec.id
      rec.id = 0
      release(id)
    end
  end
  return class
end

--- A new object of `class` for the Python object `id`; returns it and its record.
function objects.new(class, id)
  local rec = { id = id, __index = class.index, __newindex = class.newindex,
                __tostring = class.tostring, __metatable = class.name, __gc = class.gc }
  if newproxy then  -- Lua 5.1, LuaJIT: a table cannot have a finaliser
    local proxy = newproxy(true)
    raw_metatable(proxy).__gc = function() release(id) end
    rec.sentinel = proxy
  end
  local obj = setmetatable({}, rec)
  registry[id] = obj
  return obj, rec
end

--- The record of `self` if it is an object of `class`, else an error that
--- says how the method should be called.
local function record_of(self, class, fname)
  local rec = raw_metatable(self)
  if type(rec) ~= "table" or rec.__index ~= class.index then
    raise(format("bad self to '%s' (%s expected, got %s); call it as %s:%s(...), not %s.%s(...)",
      fname, class.name, type(self), class.var, fname, class.var, fname))
  end
  return rec
end
objects.record_of = record_of

--- A method whose arguments are checked against `kinds` (checks.KIND names).
function objects.method(class, fname, kinds, body)
  local nk = #kinds
  local fn
  if nk == 0 then
    fn = function(self)
      local rec = record_of(self, class, fname)
      return body(self, rec)
    end
  elseif nk == 1 then
    local check = KIND[kinds[1]]
    fn = function(self, ...)
      local rec = record_of(self, class, fname)
      local v, why = check((...), select("#", ...) > 0)
      if why then raise(format("bad argument #1 to '%s' (%s)", fname, why)) end
      return body(self, rec, v)
    end
  else
    fn = function(self, ...)
      local rec = record_of(self, class, fname)
      local args = checks.args(fname, kinds, select("#", ...), { ... })
      return body(self, rec, unpack(args, 1, nk))
    end
  end
  class.methods[fname] = fn
  return fn
end

--- The _async twin of a method: its last argument is cb(self, result,
--- error), run later from the loop. Optional arguments before cb may be
--- left out.
function objects.async_twin(class, fname, kinds, body)
  local async_name = fname .. "_async"
  local nk = #kinds
  local defer = M.dispatch.defer
  class.methods[async_name] = function(self, ...)
    local rec = record_of(self, class, async_name)
    local n = select("#", ...)
    local cb = (select(n > 0 and n or 1, ...))
    if not callable(cb) then
      raise(format("bad argument #%d to '%s' (function expected as the last argument, got %s)",
        n > 0 and n or 1, async_name, checks.typename(cb, n > 0)))
    end
    local args = { ... }
    args[n] = nil  -- the callback is not one of the operation's arguments
    checks.args(async_name, kinds, n - 1, args)
    defer(function()
      local ok, result = pcall(body, self, rec, unpack(args, 1, nk))
      if ok then cb(self, result, nil) else cb(self, nil, M.limits.message(result)) end
    end)
  end
end

--- A method and its _async twin.
function objects.method_with_async(class, fname, kinds, body)
  objects.method(class, fname, kinds, body)
  objects.async_twin(class, fname, kinds, body)
end

--- The table scripts see as net.X: static fields, read only.
function objects.public(class)
  return setmetatable({}, {
    __index = class.static,
    __newindex = function(_, k) raise(format("cannot assign to %s.%s", class.name, tostring(k))) end,
    __metatable = false,
  })
end

return objects
