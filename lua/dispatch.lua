-- Events up from Python, and deferred calls. Run by the bridge as
-- chunk(native, M); sets M.dispatch. Python calls dispatch(...) with a flat
-- batch: kind, id, a, kind, id, a, ...
--
-- One protected run delivers the whole batch; a handler error ends that run,
-- is reported with the handler's name, and the next run resumes with the
-- event after it. Every handler runs under the time limit (limits.lua).

local native, M = ...
local dispatch = {}
M.dispatch = dispatch

local objects, limits, readbuf = M.objects, M.limits, M.readbuf
-- Without a time limit, starting and stopping the clock does nothing: skip
-- the two calls per handler.
local timed, start_clock, stop_clock = limits.enabled, limits.start, limits.stop
local registry = objects.registry
local select, xpcall, format, type, pairs, gsub = select, xpcall, string.format, type, pairs, string.gsub
local traceback, getmetatable_raw = debug.traceback, debug.getmetatable
local schema = native.schema
local EV = schema.events
local CALL, READY_READ, DISCONNECTED, TIMEOUT = EV.CALL, EV.READY_READ, EV.DISCONNECTED, EV.TIMEOUT

-- event -> handler field and the arguments it takes, from the schema
local HANDLER_OF, ARITY = {}, {}
for _, spec in pairs(schema.classes) do
  for field, info in pairs(spec.handlers) do
    HANDLER_OF[info.event], ARITY[info.event] = field, info.arity
  end
end

-- What the object must do when an event arrives, whether or not it has a
-- handler (net.lua and timer.lua register these).
local on_event = {}
dispatch.on_event = on_event

-- Deferred calls: callbacks of the _async methods run from the loop, later.
local deferred, next_token = {}, 0
function dispatch.defer(fn)
  next_token = next_token + 1
  deferred[next_token] = fn
  native.defer(next_token)
end

local running_name  -- the handler being run, for error reports

-- The bytes a ready_read_handler runs for, their object's id, and where
-- they are in the batch Python is dispatching: a write_string of an equal
-- string (an echo) has Python write its own bytes object (native.write_at)
-- instead of lupa copying the string back into a new one. Set only while
-- the handler runs; net.lua reads it.
local current = { data = nil, id = 0, at = 0 }
dispatch.current = current

-- Deliver one event. Runs unprotected: dispatch below catches errors.
local function deliver(kind, id, a, at)
  if kind == CALL then
    local fn = deferred[id]
    deferred[id] = nil
    if fn then
      running_name = "an _async callback"
      if timed then start_clock() end
      fn()
      if timed then stop_clock() end
    end
    return
  end
  local obj = registry[id]
  if not obj then return end  -- collected meanwhile
  local rec = getmetatable_raw(obj)
  if rec.cut == objects.serial then return end  -- its connection ended in this batch
  if kind == READY_READ then
    if rec.closed_read then return end  -- close() dropped the input
    -- readbuf.append's usual case written out (bytes into an empty buffer
    -- with no read_buffer_size): one chunk, held as rec.one
    local rlen = rec.rlen
    if not rec.one and (rlen == nil or rlen == 0) and not rec.rbs then
      if a ~= "" then rec.one = a end
    else
      on_event[kind](obj, rec, a)
    end
  else
    local react = on_event[kind]
    -- true: the event is the object's own business, no handler runs
    if react and react(obj, rec, a) then return end
  end
  local name = HANDLER_OF[kind]
  local handler = rec[name]
  if handler then
    running_name = name
    if timed then start_clock() end
    if kind == READY_READ then
      current.data, current.id, current.at = a, id, at
      handler(obj)
      current.data = nil
    -- exactly the documented arguments: varargs and spies see no trailing nil
    elseif ARITY[kind] == 1 then handler(obj) else handler(obj, a) end
    if timed then stop_clock() end
  end
end

local batch, batch_n, next_i = nil, 0, 1
local batches = 0

local function deliver_rest()
  -- locals for the loop; next_i is kept up to date for the run that
  -- resumes after a handler error
  local items, n, i = batch, batch_n, next_i
  while i <= n do
    next_i = i + 3
    deliver(items[i], items[i + 1], items[i + 2], i + 2)
    i = i + 3
  end
end

-- The traceback of a handler error, without luanet's own frames: the
-- script's frames are what its author can act on.
local function on_error(err)
  local text = traceback(limits.message(err), 2)
  text = gsub(text, "\n\t[^\n]*luanet/[%w_]+%.lua:%d+:[^\n]*", "")
  text = gsub(text, "\n\t%[C%]: in function 'xpcall'", "")
  return text
end

--- Called when a nested dispatch ends (net.lua sets it). None can happen
--- today, since no handler can run the event loop; this keeps what Lua
--- caches per dispatch exact if one ever does.
function dispatch.after_nested() end

local OOM = "not enough memory"

local function report(err)
  -- Lua 5.1 and LuaJIT collect no garbage when an allocation fails: the
  -- handler's garbage must go before the report can be written.
  if err == OOM then collectgarbage("collect") end
  native.report_error(running_name and format("in %s: %s", running_name, err) or err)
end

local function run(...)
  local items = { ... }  -- (may fail for memory: nothing has changed yet)
  local outer, outer_n, outer_i, outer_serial = batch, batch_n, next_i, objects.serial
  local outer_data, outer_id, outer_at = current.data, current.id, current.at
  batches = batches + 1
  objects.serial = batches
  batch, batch_n, next_i = items, select("#", ...), 1
  while next_i <= batch_n do
    running_name = nil
    local ok, err = xpcall(deliver_rest, on_error)
    if timed then stop_clock() end
    -- nothing between here and the restore below may raise: a report that
    -- cannot be written says only that memory ran out
    if not ok and not pcall(report, err) then pcall(native.report_error, OOM) end
  end
  batch, batch_n, next_i = outer, outer_n, outer_i
  objects.serial = outer_serial
  current.data, current.id, current.at = outer_data, outer_id, outer_at
  if outer_serial ~= 0 then dispatch.after_nested() end
  if objects.queued > 0 then objects.flush_released() end
end
dispatch.run = run

return dispatch
