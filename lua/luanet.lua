-- The `luanet` helpers for scripts and specs: drive the event loop from
-- top-level code, timers, print. Run by the bridge as chunk(native, M,
-- Timer, after, every); returns `luanet` and the print that replaces Lua's.

local native, M, Timer, after, every = ...
local limits, checks = M.limits, M.checks
local error, type, tostring, format, select, concat =
      error, type, tostring, string.format, select, table.concat

local luanet = { Timer = Timer, after = after, every = every }

local function check_seconds(fname, n, v)
  local s, why = checks.KIND.seconds(v, v ~= nil)
  if why then checks.raise(format("bad argument #%d to '%s' (%s)", n, fname, why)) end
  return s
end

-- The time limit does not count time spent running the loop: handlers that
-- run meanwhile have their own.
local function looping(fn, ...)
  local left = limits.pause()
  local ok, result, why = pcall(fn, ...)
  limits.resume(left)
  if not ok then error(result, 0) end
  return result, why
end

--- Run the event loop until predicate() returns true (-> true) or timeout
--- seconds pass (-> false).
function luanet.run_until(predicate, timeout)
  if not checks.callable(predicate) then
    checks.raise(format("bad argument #1 to 'run_until' (function expected, got %s)",
      checks.typename(predicate, predicate ~= nil)))
  end
  timeout = check_seconds("run_until", 2, timeout)
  local ok, result = looping(native.run_until, predicate, timeout)
  if ok == nil then checks.raise(result) end
  return ok
end

--- Run the event loop for `seconds`.
function luanet.run_for(seconds)
  seconds = check_seconds("run_for", 1, seconds)
  local ok, err = looping(native.run_for, seconds)
  if ok == nil then checks.raise(err) end
end

-- print, as the standalone lua prints (tab-separated tostring of each
-- argument), but through the host's stdout, which never blocks the loop.
local function print(...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = tostring(parts[i]) end
  native.write_stdout(concat(parts, "\t", 1, n) .. "\n")
end

return luanet, print
