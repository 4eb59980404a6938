-- The `luanet` helpers for scripts and specs: drive the event loop from
-- top-level code. Run by the bridge as `chunk(native)`.

local native = ...
local error, type, tostring, format = error, type, tostring, string.format

local luanet = {}

local function check_seconds(fname, n, v)
  if type(v) ~= "number" or v ~= v or v < 0 then
    error(format("bad argument #%d to '%s' (non-negative number expected, got %s)",
      n, fname, type(v) == "number" and tostring(v) or type(v)), 3)
  end
end

--- Run the event loop until predicate() returns true (-> true) or timeout
--- seconds pass (-> false).
function luanet.run_until(predicate, timeout)
  if type(predicate) ~= "function" then
    error(format("bad argument #1 to 'run_until' (function expected, got %s)", type(predicate)), 2)
  end
  check_seconds("run_until", 2, timeout)
  local ok, result = native.run_until(predicate, timeout)
  if ok == nil then error(result, 2) end
  return ok
end

--- Run the event loop for `seconds`.
function luanet.run_for(seconds)
  check_seconds("run_for", 1, seconds)
  local ok, err = native.run_for(seconds)
  if ok == nil then error(err, 2) end
end

-- print, as the standalone lua prints (tab-separated tostring of each
-- argument), but through the host's stdout so a line shows when printed and
-- Python can capture it.
local select, concat = select, table.concat
local function print(...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = tostring(parts[i]) end
  native.write_stdout(concat(parts, "\t", 1, n) .. "\n")
end

return luanet, print
