-- The time limit of LuaHost(handler_time_limit=...). Run by the bridge as
-- chunk(native, M); sets M.limits.
--
-- While a handler, callback or top-level chunk runs, a count hook looks at
-- the CPU clock every HOOK_EVERY instructions and stops it with an error once
-- it has run too long. Past the deadline the hook fires on every instruction,
-- so a pcall that swallows the error cannot keep the code going. Scripts'
-- coroutines get the hook too, and xpcall message handlers are not run for
-- the limit's own error: Lua runs a message handler with hooks off when the
-- error came from a hook, so a looping one could never be stopped.
-- (LuaJIT runs no hooks in compiled code: the JIT is turned off here.)

local native, M = ...
local limits = {}
M.limits = limits

local error, format, sub, type, tostring, pcall = error, string.format, string.sub, type, tostring, pcall
local sethook, getinfo = debug.sethook, debug.getinfo
local clock = os.clock

local time_limit = native.handler_time_limit
local HOOK_EVERY = 10000
local deadline, hook_every = nil, HOOK_EVERY

-- Files whose loops are bounded by what they hold (the read buffer, the
-- dispatcher between handlers, finalisers): the hook never raises there, so
-- an object is never left half-updated. Every other frame, the scripts' own
-- and net.lua's methods they call, can be stopped.
local UNSTOPPABLE = {
  ["@luanet/objects.lua"] = true, ["@luanet/dispatch.lua"] = true,
  ["@luanet/readbuf.lua"] = true, ["@luanet/limits.lua"] = true,
}

local function over_time()
  if deadline and clock() > deadline then
    local running = getinfo(2, "S")
    if running and UNSTOPPABLE[running.source] then return end
    if hook_every ~= 1 then
      hook_every = 1
      sethook(over_time, "", 1)
    end
    error(format("stopped: ran longer than %g s (the host's time limit)", time_limit), 2)
  end
end

--- Is the running code past its deadline?
function limits.over()
  return deadline ~= nil and clock() > deadline
end

function limits.start()
  if time_limit then deadline = clock() + time_limit end
end

function limits.stop()
  deadline = nil
  if hook_every ~= HOOK_EVERY then
    hook_every = HOOK_EVERY
    sethook(over_time, "", HOOK_EVERY)
  end
end

--- The clock stops while the event loop runs (luanet.run_for at top level):
--- only Lua's own running counts. Returns what resume() takes.
function limits.pause()
  if not deadline then return nil end
  local left = deadline - clock()
  limits.stop()
  return left
end

function limits.resume(left)
  if left then deadline = clock() + left end
end

--- Start the clock for code Python calls (a top-level chunk), unless a
--- deadline runs already; true when it started one. The bridge stops it
--- however the call ends, so errors keep their own traceback.
function limits.begin()
  if not time_limit or deadline then return false end
  limits.start()
  return true
end

--- tostring for error values: a __tostring of the script's own runs under
--- the limit like any script code; past the deadline it is not run at all.
function limits.message(err)
  if type(err) == "string" then return err end
  if deadline and clock() > deadline then return "(error object: " .. type(err) .. ")" end
  local ok, text = pcall(tostring, err)
  if ok and type(text) == "string" then return text end
  return "(error object: " .. type(err) .. ", its __tostring failed)"
end

if time_limit then
  sethook(over_time, "", HOOK_EVERY)
  local create, resume, raw_xpcall = coroutine.create, coroutine.resume, xpcall
  local function hooked_create(fn)
    local co = create(fn)
    sethook(co, over_time, "", HOOK_EVERY)
    return co
  end
  coroutine.create = hooked_create
  local function checked(ok, ...)
    if not ok then error((...), 0) end
    return ...
  end
  coroutine.wrap = function(fn)
    local co = hooked_create(fn)
    return function(...) return checked(resume(co, ...)) end
  end
  xpcall = function(fn, handler, ...)
    if type(handler) ~= "function" and handler ~= nil then
      -- as the real xpcall would complain
      return raw_xpcall(fn, handler, ...)
    end
    return raw_xpcall(fn, function(err)
      if deadline and clock() > deadline then return err end
      return handler(err)
    end, ...)
  end
  if jit then jit.off() end
end

limits.enabled = time_limit ~= nil
limits.is_ours = function(source) return sub(source, 1, 8) == "@luanet/" end

return limits
