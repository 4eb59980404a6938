-- luanet.Timer: a QTimer for scripts, with the object rules of net's
-- classes. Run by the bridge as chunk(native, M); returns the Timer class
-- table scripts see, and the after/every helpers.
--
-- An active timer stays alive without a reference (like setTimeout): it is
-- kept in `running` until it stops; a stopped one is collected like any
-- object (its finaliser releases the Python Timer).

local native, M = ...
local objects, dispatch, checks = M.objects, M.dispatch, M.checks
local method = objects.method
local raw_metatable = debug.getmetatable
local schema = native.schema

local Timer = objects.define_class(schema.classes.Timer)
local running = {}  -- active timers: obj -> true

local function keep(obj, rec)
  if native.timer_active(rec.id) then running[obj] = true else running[obj] = nil end
end

method(Timer, "start", { "opt_seconds" }, function(self, rec, interval)
  native.timer_start(rec.id, interval)
  objects.cut(rec)  -- a firing of the previous run still in this batch is void
  running[self] = true
end)
method(Timer, "stop", {}, function(self, rec)
  native.timer_stop(rec.id)
  objects.cut(rec)
  running[self] = nil
end)

-- a single-shot timer that fired is stopped: let it go (its handler, which
-- runs next, may start it again)
dispatch.on_event[schema.events.TIMEOUT] = keep

local function new_timer()
  local obj = objects.new(Timer, native.timer_new())
  return obj
end
Timer.static.new = new_timer

local function started(fname, seconds, fn, single)
  local s, why = checks.KIND.seconds(seconds, seconds ~= nil)
  if why then checks.raise(string.format("bad argument #1 to '%s' (%s)", fname, why)) end
  if not checks.callable(fn) then
    checks.raise(string.format("bad argument #2 to '%s' (function expected, got %s)",
      fname, checks.typename(fn, fn ~= nil)))
  end
  local t = new_timer()
  t.single_shot = single
  t.timeout_handler = fn
  t:start(s)
  return t
end

local function after(seconds, fn) return started("after", seconds, fn, true) end
local function every(seconds, fn) return started("every", seconds, fn, false) end

return objects.public(Timer), after, every
