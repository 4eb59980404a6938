-- The busted 2.x runner: describe/it trees run in busted's order (a block's
-- body runs when the block's turn comes, then its children), hooks, insulate
-- and expose, randomize, tags and filters, a per-test timeout, and the
-- environment busted gives spec files (a global environment per block: what
-- a describe body assigns is seen by its children only).
--
-- luanet/spec.py drives it:
--   R.configure{...}               options (tags, filter, seed, timeout, list, ...)
--   R.run_helper(source, name)     a --helper file, in the real globals
--   R.run_file(source, name, report)
-- report(kind, status, name, file, line, message, trace, seconds) is called
-- for every test ("test", status success/failure/error/pending) and every
-- error outside a test ("error"); in list mode, once per test ("list").

local debug_lib, require_module = ...
local getinfo = debug_lib and debug_lib.getinfo
local sethook, gethook = debug_lib and debug_lib.sethook, debug_lib and debug_lib.gethook
local traceback = debug_lib and debug_lib.traceback
local getmt = debug_lib and debug_lib.getmetatable or getmetatable

local type, tostring, tonumber, pairs, ipairs, next, select, error, pcall, xpcall =
      type, tostring, tonumber, pairs, ipairs, next, select, error, pcall, xpcall
local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local insert, remove, concat, sort = table.insert, table.remove, table.concat, table.sort
local G = _G
local package = package
local load, loadstring, setfenv = load, loadstring, setfenv
local os_clock, os_time = os.clock, os.time
local jit = rawget(_G, "jit")
local unpack = table.unpack or unpack

local util = require_module("util")
local say = require_module("say")
local assert = require_module("assert")
require_module("assertions")
local match = require_module("match")
match._register_builtins(assert)
local format = require_module("format")
local spies = require_module("spy")
local spy, stub, mock = spies.spy, spies.stub, spies.mock

local R = {}

local options = {
  tags = {}, exclude_tags = {}, filter = {}, filter_out = {},
  shuffle = false, sort = false, seed = nil, timeout = 30, list = false,
  select = nil,   -- set of "line\tfull name" to run (pytest's selection), or nil: all
}

local function list_option(value)
  if type(value) == "table" then return value end
  local list = {}
  if type(value) == "string" then
    for piece in value:gmatch("[^,]+") do
      local item = piece:match("^%s*(.-)%s*$")
      if item ~= "" then list[#list + 1] = item end
    end
  end
  return list
end

function R.configure(name, value)
  if name == "tags" or name == "exclude_tags" or name == "filter" or name == "filter_out" then
    local list = options[name]
    for _, item in ipairs(list_option(value)) do list[#list + 1] = item end
  elseif name == "select" then
    options.select = options.select or {}
    options.select[value] = true
  else
    options[name] = value
  end
end

---------------------------------------------------------------- outcomes

local function errortype(err)
  local mt = getmt(err)
  if mt == util.FAILURE or mt == util.FAILURE_NOSTRING then return "failure" end
  if mt == util.PENDING then return "pending" end
  return "error"
end

local function pending_raise(message)
  error(setmetatable({ message = message }, util.PENDING))
end


-- A table as penlight's pretty.write shows it (what busted prints for an
-- error value that is a table without __tostring).
local function pretty(v, indent, seen)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  indent, seen = indent or "", seen or {}
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local inner, lines, n = indent .. "  ", {}, #v
  for i = 1, n do lines[#lines + 1] = inner .. pretty(v[i], inner, seen) end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. pretty(k, inner, seen) .. "]"
    lines[#lines + 1] = inner .. key .. " = " .. pretty(v[k], inner, seen)
  end
  seen[v] = nil
  if #lines == 0 then return "{}" end
  return "{\n" .. concat(lines, ",\n") .. "\n" .. indent .. "}"
end

local function message_of(err)
  if util.hastostring(err) then return tostring(err) end
  if err == nil then return "Nil error" end
  return pretty(err)
end

-- "file:line: " of the spec code that raised (the first frame outside the
-- runner and C), or of the element when there is none.
local function raise_position(el)
  if getinfo then
    local level = 3
    while true do
      local info = getinfo(level, "Sl")
      if not info then break end
      if not util.internal_frame(info) and info.what ~= "C" and (info.currentline or 0) > 0 then
        return info.short_src .. ":" .. info.currentline .. ": "
      end
      level = level + 1
    end
  end
  if el.trace then return el.trace.short_src .. ":" .. el.trace.currentline .. ": " end
  return ""
end

-- A traceback of the spec's own frames (the runner's, and C frames below
-- the spec, dropped).
local function spec_traceback(level)
  if not traceback then return "" end
  local text = traceback("", level + 1)
  local kept = {}
  for line in text:gmatch("[^\n]+") do
    if line ~= "stack traceback:" and not line:find("luanet/luanet_busted", 1, true)
       and not line:find("^%s*%[C%]: in function 'xpcall'") then
      kept[#kept + 1] = line
    end
  end
  while #kept > 0 and (kept[#kept]:find("^%s*%[C%]") or kept[#kept]:find("^%s*%.%.%.")
                       or kept[#kept]:find("^%s*%(%.%.%.tail calls%.%.%.%)")) do
    kept[#kept] = nil
  end
  if #kept == 0 then return "" end
  return "stack traceback:\n" .. concat(kept, "\n")
end

---------------------------------------------------------------- the tree

local root = { descriptor = "suite", attributes = {}, children = {}, env = {} }
local current = root
local state_stack = {}
local report = function() end
local file_name = ""

local function parent_of(el) return el.parent end

-- The describe path of el (files and the suite left out), then name.
local function full_name(el, name)
  local names = {}
  while el and el.descriptor ~= "file" and el.descriptor ~= "suite" do
    insert(names, 1, tostring(el.name or el.descriptor))
    el = el.parent
  end
  if name ~= nil then names[#names + 1] = name end
  return concat(names, " ")
end

-- Globals and package.loaded, saved by insulate and restored at its end.
local function save()
  local g = {}
  for k in next, G do g[k] = rawget(G, k) end
  local loaded = {}
  for k, v in next, package.loaded do loaded[k] = v end
  return { gmt = getmt(G), g = g, loaded = loaded }
end

local function restore(saved)
  setmetatable(G, saved.gmt)
  for k in next, G do rawset(G, k, saved.g[k]) end
  for k, v in next, saved.g do
    if rawget(G, k) == nil then rawset(G, k, v) end
  end
  for k in pairs(package.loaded) do package.loaded[k] = saved.loaded[k] end
end

local function env_target(el)
  -- hooks write into their block's environment, expose into its parent's
  local mode = el.attributes.envmode
  if mode == "unwrap" then
    local p = el.parent
    if not p then return G end
    p.env = p.env or {}
    return p.env
  elseif mode == "expose" then
    local p = el.parent and el.parent.parent
    if not p then return G end
    p.env = p.env or {}
    return p.env
  end
  el.env = el.env or {}
  return el.env
end

local function push(el)
  if el == current then return false end
  local saved = false
  if el.attributes.envmode == "insulate" then saved = save() end
  insert(state_stack, { el = current, saved = saved })
  current = el
  return true
end

local function pop(el, pushed)
  if not pushed then return end
  local entry = remove(state_stack)
  current = entry.el
  if el.attributes.envmode == "expose" then
    local top = state_stack[#state_stack]
    if top and top.saved then top.saved = save() end
  end
  if entry.saved then restore(entry.saved) end
end

local function lookup(el, key)
  while el do
    local env = el.env
    if env then
      local v = env[key]
      if v then return v end
    end
    el = el.parent
  end
  return G[key]
end

local spec_env = setmetatable({}, {
  __index = function(_, key) return lookup(current, key) end,
  __newindex = function(_, key, value) env_target(current)[key] = value end,
})

-- "file:line" of the registering call in the spec.
local function caller_trace()
  if not getinfo then return nil end
  local level = 3
  while true do
    local info = getinfo(level, "Sl")
    if not info then return nil end
    if not util.internal_frame(info) then return info end
    level = level + 1
  end
end

---------------------------------------------------------------- filters

local function has_tag(name, tag) return name:find("#" .. tag) ~= nil end

-- Whether a registration goes into the tree (busted filters when blocks
-- register, not when they run).
local function admitted(descriptor, name, trace)
  local text = tostring(name or "")
  local whole = full_name(current, text)
  for _, tag in ipairs(options.exclude_tags) do
    if has_tag(text, tag) then return false end
  end
  if descriptor == "it" or descriptor == "pending" or descriptor == "describe" then
    for _, pattern in ipairs(options.filter_out) do
      if whole:find(pattern) then return false end
    end
  end
  if descriptor == "it" or descriptor == "pending" then
    if #options.tags > 0 then
      local found = false
      for _, tag in ipairs(options.tags) do
        if has_tag(whole, tag) then found = true; break end
      end
      if not found then return false end
    end
    if #options.filter > 0 then
      local found = false
      for _, pattern in ipairs(options.filter) do
        if whole:find(pattern) then found = true; break end
      end
      if not found then return false end
    end
    if options.select then
      local line = trace and trace.currentline or 0
      if not options.select[line .. "\t" .. whole] then return false end
    end
  end
  return true
end

---------------------------------------------------------------- registration

local RUNNING = { it = true, pending = true, before_each = true, after_each = true,
                  lazy_setup = true, lazy_teardown = true, strict_setup = true,
                  strict_teardown = true }

local descriptors = {}

local function register(descriptor, alias, attributes)
  local publisher
  publisher = function(name, fn)
    if fn == nil and type(name) == "function" then
      fn, name = name, alias
    elseif fn == nil then
      fn = attributes and attributes.default_fn
    end
    local function attach(f)
      local target = current
      if RUNNING[target.descriptor] then
        error("'" .. (alias or descriptor) .. "' not supported inside current context block", 3)
      end
      local trace = caller_trace()
      local kind = (descriptor == "insulate" or descriptor == "expose") and "describe" or descriptor
      if (kind == "describe" or kind == "it" or kind == "pending")
         and not admitted(kind, name, trace) then
        return
      end
      local el = { descriptor = descriptor, alias = alias, name = name, run = f, parent = target,
                   children = {}, trace = trace, attributes = attributes or {} }
      insert(target.children, el)
      target[descriptor] = target[descriptor] or {}
      insert(target[descriptor], el)
    end
    if fn then attach(fn) else return attach end
  end
  descriptors[alias or descriptor] = publisher
  return publisher
end

---------------------------------------------------------------- running

-- The per-test timeout: a count hook that raises once the test (or hook, or
-- describe body) has run longer than options.timeout, CPU or wall clock.
-- LuaJIT runs no hooks in compiled code: its compiler is off meanwhile.
local function timer_start()
  local limit = tonumber(options.timeout)
  if not sethook or not limit or limit <= 0 then return nil end
  local start_clock, start_time = os_clock(), os_time()
  local timer = { saved = { gethook() }, jit_was_on = false }
  if jit and jit.status then
    timer.jit_was_on = jit.status()
    if timer.jit_was_on then jit.off(); jit.flush() end
  end
  sethook(function()
    if os_clock() - start_clock > limit or os_time() - start_time > limit + 1 then
      sethook()
      error(string.format("test timed out after %g seconds (luanet spec --timeout)", limit), 2)
    end
  end, "", 1000)
  return timer
end

local function timer_stop(timer)
  if not timer then return end
  local saved = timer.saved
  if saved[1] then sethook(saved[1], saved[2], saved[3]) else sethook() end
  if timer.jit_was_on then jit.on() end
end

local function with_timeout(fn)
  local timer = timer_start()
  local results = { pcall(fn) }
  timer_stop(timer)
  if not results[1] then error(results[2], 0) end
end

local TIMED = { describe = true, insulate = true, expose = true, file = true, before_each = true,
                after_each = true, lazy_setup = true, lazy_teardown = true, strict_setup = true,
                strict_teardown = true }

-- Runs fn for element el with el as the current block; returns the status
-- and, when not a success, the message and traceback.
local function safe(descriptor, fn, el)
  local pushed = push(el)
  local status, message, trace = "success", nil, nil
  local timer = TIMED[descriptor] and fn == el.run and timer_start()
  local ok = xpcall(fn, function(err)
    status = errortype(err)
    message = message_of(err)
    if err ~= nil or status ~= "pending" then
      if not message:match("^[^\n]-:%d+: ") then message = raise_position(el) .. message end
    end
    if status == "error" or status == "failure" then trace = spec_traceback(2) end
    return err
  end)
  timer_stop(timer)
  if not ok then
    if status == "success" then status = "error"; message = message or "Nil error" end
    if status == "failure" and descriptor ~= "it" then status = "error" end
  end
  pop(el, pushed)
  return status, message, trace
end

local function where(el)
  local trace = el.trace
  if trace then return trace.short_src, trace.currentline end
  return file_name, 0
end

local function report_error(el, descriptor, message, trace)
  local file, line = where(el)
  local name = full_name(el.parent or el, nil)
  if el.descriptor == "describe" or el.descriptor == "insulate" or el.descriptor == "expose"
     or el.descriptor == "file" then
    name = full_name(el, nil)
  end
  if el.descriptor == "file" then name = file_name
  elseif name == "" then name = descriptor
  elseif descriptor ~= "" then name = name .. " " .. descriptor end
  report("error", "error", name, file, line, message or "", trace or "", 0)
end

-- Inside a running test or hook, registering is an error ("'describe' not
-- supported inside current context block"); hooks get no finally/pending.
local function rejections(except)
  local env = {
    randomize = function() error("'randomize' not supported inside current context block", 2) end,
  }
  for d in pairs(descriptors) do
    if not except[d] then
      env[d] = function() error("'" .. d .. "' not supported inside current context block", 2) end
    end
  end
  return env
end

local function exec_hook(descriptor, el)
  if not el.env then el.env = rejections({}) end
  local status, message, trace = safe(descriptor, el.run, el)
  if status ~= "success" then
    report_error(el, el.alias or descriptor, message, trace)
    return false
  end
  return true
end

local function exec_all(descriptor, block, propagate)
  if propagate and block.parent then
    local ok, ancestor = exec_all(descriptor, block.parent, true)
    if not ok then return ok, ancestor end
  end
  local ok = true
  for _, el in ipairs(block[descriptor] or {}) do
    if not exec_hook(descriptor, el) then ok = nil end
  end
  return ok, block
end

local function dexec_all(descriptor, block, propagate)
  local ok = true
  local list = block[descriptor] or {}
  for _, el in ipairs(list) do
    if not exec_hook(descriptor, el) then ok = nil end
  end
  if propagate and block.parent then
    if not dexec_all(descriptor, block.parent, true) then ok = nil end
  end
  return ok
end

local function exec_once(descriptor, block)
  if block.parent then
    if not exec_once(descriptor, block.parent) then return false end
  end
  block[descriptor] = block[descriptor] or {}
  local list = block[descriptor]
  if list.success ~= nil then return list.success end
  local ok = true
  for _, el in ipairs(list) do
    if not exec_hook(descriptor, el) then ok = false end
  end
  list.success = ok
  return ok
end

local function shuffle(list, seed)
  if seed then math.randomseed(seed) end
  for i = #list, 2, -1 do
    local j = math.random(i)
    list[i], list[j] = list[j], list[i]
  end
end

local execute

-- Handler errors a running test declares it expects (luanet's extension:
-- require("busted").expect_handler_error(text)); reported with the test so
-- the host side does not count them against it.
local expected_handler_errors = {}

local function run_test(el)
  local parent = el.parent
  local file, line = where(el)
  local name = full_name(parent, el.name ~= nil and tostring(el.name) or "")
  if options.list then
    report("list", "pending", name, file, line, "", "", 0)
    return
  end
  if not exec_once("lazy_setup", parent) then return end
  local start = os_clock()
  expected_handler_errors = {}
  local finally
  el.env = rejections({ pending = true })
  el.env.finally = function(fn) finally = fn end
  el.env.pending = pending_raise
  local ok, ancestor = exec_all("before_each", parent, true)
  if ok then
    local status, message, trace = "success", nil, nil
    local function body()
      status, message, trace = safe("it", el.run, el)
      if finally then
        el.env.pending = function() error("'pending' not supported inside current context block", 2) end
        local s2, m2, t2 = safe("finally", finally, el)
        if status == "success" or (status == "pending" and s2 ~= "success") then
          status, message, trace = s2, m2, t2
        end
      end
    end
    local timed_ok, timed_err = pcall(with_timeout, body)
    if not timed_ok then
      status, message, trace = "error", message_of(timed_err), ""
    end
    if status == "pending" and message == nil then message = "" end
    report("test", status, name, file, line, message or "", trace or "", os_clock() - start,
           concat(expected_handler_errors, "\0"))
  end
  dexec_all("after_each", ancestor, true)
end

local function run_pending(el)
  local file, line = where(el)
  local name = full_name(el.parent, el.name ~= nil and tostring(el.name) or "")
  report(options.list and "list" or "test", "pending", name, file, line, "", "", 0)
end

local function execute_block(descriptor, el)
  local randomize, seed = options.shuffle, options.seed
  el.env = el.env or {}
  el.env.randomize = function(...)
    randomize = select("#", ...) == 0 or ...
    if randomize then
      seed = tonumber((select(1, ...))) or tonumber((select(2, ...))) or seed
    end
  end
  local status, message, trace = safe(descriptor, el.run, el)
  if status ~= "success" then
    report_error(el, "", message, trace)
    return
  end
  if options.sort then
    sort(el.children, function(a, b)
      if a.name and b.name then return tostring(a.name) < tostring(b.name) end
      return b.name ~= nil
    end)
  elseif randomize then
    el.randomseed = seed
    shuffle(el.children, seed)
  end
  local setup_ok = true
  if not options.list then setup_ok = exec_all("strict_setup", el) end
  if setup_ok then execute(el) end
  if not options.list then
    if el.lazy_setup and el.lazy_setup.success ~= nil then
      dexec_all("lazy_teardown", el)
      el.lazy_setup.success = nil
    end
    dexec_all("strict_teardown", el)
  end
end

local executors = {
  describe = function(el) execute_block("describe", el) end,
  it = run_test,
  pending = run_pending,
}
executors.insulate, executors.expose = executors.describe, executors.describe

execute = function(block)
  for _, child in ipairs(block.children) do
    local executor = executors[child.descriptor]
    if executor then
      local status, message, trace = safe(child.descriptor, function() executor(child) end, child)
      if status ~= "success" then report_error(child, child.descriptor, message, trace) end
    end
  end
end

---------------------------------------------------------------- the API

local describe = register("describe", nil, {})
local insulate = register("insulate", nil, { envmode = "insulate" })
local expose = register("expose", nil, { envmode = "expose" })
local it = register("it", nil, {})
local pending = register("pending", nil, { default_fn = function() end })
local before_each = register("before_each", nil, { envmode = "unwrap" })
local after_each = register("after_each", nil, { envmode = "unwrap" })
local lazy_setup = register("lazy_setup", nil, { envmode = "unwrap" })
local lazy_teardown = register("lazy_teardown", nil, { envmode = "unwrap" })
local strict_setup = register("strict_setup", nil, { envmode = "unwrap" })
local strict_teardown = register("strict_teardown", nil, { envmode = "unwrap" })
descriptors.setup = register("strict_setup", "setup", { envmode = "unwrap" })
descriptors.teardown = register("strict_teardown", "teardown", { envmode = "unwrap" })
descriptors.context = register("describe", "context", {})
descriptors.spec = register("it", "spec", {})
descriptors.test = register("it", "test", {})

local function fail(message, level)
  util.fail(message, level and level - 1 or nil)
end

local subscribers = {}

local busted_api = {
  version = "2.1.1",
  fail = fail,
  pending = pending_raise,
  gettime = os_clock, monotime = os_clock,
  sleep = function() end,
  publish = function(channel, ...)
    local key = concat(channel, "\0")
    for _, sub in ipairs(subscribers[key] or {}) do sub.fn(...) end
  end,
  subscribe = function(channel, fn, opts)
    local key = concat(channel, "\0")
    subscribers[key] = subscribers[key] or {}
    local sub = { id = {}, fn = fn, channel = channel, options = opts or {} }
    insert(subscribers[key], sub)
    return sub
  end,
  unsubscribe = function(id, channel)
    local list = subscribers[concat(channel, "\0")] or {}
    for i, sub in ipairs(list) do
      if sub.id == id then return remove(list, i) end
    end
  end,
  bindfenv = function(callable, var, value)
    if setfenv then
      local f = (getmt(callable) or {}).__call or callable
      local env = setmetatable({ [var] = value }, { __index = getfenv and getfenv(f) or G })
      setfenv(f, env)
    end
  end,
  parent = parent_of,
  children = function(el) return el.children or {} end,
  expect_handler_error = function(text)
    if type(text) ~= "string" then
      error("bad argument #1 to 'expect_handler_error' (string expected, got " .. type(text) .. ")", 2)
    end
    expected_handler_errors[#expected_handler_errors + 1] = text
  end,
}
for name, publisher in pairs(descriptors) do busted_api[name] = publisher end
busted_api.describe, busted_api.it, busted_api.pending = describe, it, pending
busted_api.assert, busted_api.spy, busted_api.stub, busted_api.mock, busted_api.match =
  assert, spy, stub, mock, match
busted_api.context = descriptors.context

-- require "busted" gives this: the api (describe, it, fail, ...) by key.
local busted_module = setmetatable({}, {
  __index = function(_, key) return busted_api[key] end,
  __newindex = function() error("Attempt to modify busted") end,
})

-- What spec files see as globals (busted exports them into its root).
local exports = {
  "describe", "context", "insulate", "expose", "it", "spec", "test", "pending",
  "before_each", "after_each", "lazy_setup", "lazy_teardown", "strict_setup",
  "strict_teardown", "setup", "teardown",
}
for _, name in ipairs(exports) do root.env[name] = descriptors[name] end
root.env.randomize = function() end
root.env.assert, root.env.spy, root.env.stub, root.env.mock, root.env.match =
  assert, spy, stub, mock, match

-- require answers: the runner's own luassert, busted and say, whatever
-- else is on package.path.
local own_modules = {
  busted = busted_module,
  ["busted.runner"] = function() return busted_module end,
  ["busted.core"] = busted_module,
  ["busted.init"] = busted_module,
  luassert = assert,
  ["luassert.assert"] = assert,
  ["luassert.assertions"] = true,
  ["luassert.modifiers"] = true,
  ["luassert.array"] = true,
  ["luassert.matchers"] = true,
  ["luassert.matchers.core"] = true,
  ["luassert.matchers.composite"] = true,
  ["luassert.formatters"] = true,
  ["luassert.formatters.binarystring"] = format.binarystring,
  ["luassert.languages.en"] = true,
  ["luassert.spy"] = spy,
  ["luassert.stub"] = stub,
  ["luassert.mock"] = mock,
  ["luassert.match"] = match,
  ["luassert.util"] = util,
  ["luassert.state"] = require_module("state"),
  ["luassert.namespaces"] = require_module("namespaces"),
  ["luassert.compatibility"] = { unpack = unpack, getfenv = getfenv, setfenv = setfenv },
  say = say,
}

-- lupa's Lua 5.2+ is built without LUA_USE_POSIX, so os.execute returns
-- the raw wait status (768 for exit code 3): decode it as the system's lua.
local function posix_execute()
  local os = rawget(G, "os")
  local execute = os and os.execute
  if not execute or G._VERSION == "Lua 5.1" or package.config:sub(1, 1) ~= "/" then return end
  os.execute = function(...)
    if select("#", ...) == 0 then return execute() end
    local ok, what, code = execute(...)
    if what == "exit" and type(code) == "number" and code > 255 or (what == "exit" and type(code) == "number" and code > 0 and code % 256 ~= 0 and code < 128) then
      local low = code % 128
      if low == 0 then
        code = math.floor(code / 256)
        return code == 0 or nil, "exit", code
      end
      return nil, "signal", low
    end
    return ok, what, code
  end
end

-- What specs find under busted on Lua 5.1-5.3 and LuaJIT although their Lua
-- lacks it: busted loads penlight, whose compat layer adds table.pack,
-- table.unpack, package.searchpath and warn to the shared globals.
local function busted_compat()
  local table = G.table
  table.pack = table.pack or function(...) return { n = select("#", ...), ... } end
  table.unpack = table.unpack or rawget(G, "unpack")
  local io = rawget(G, "io")
  if package.searchpath == nil and io and io.open then
    package.searchpath = function(name, path, sep, rep)
      for i, v in ipairs({ name, path }) do
        if type(v) ~= "string" then
          error(("bad argument #%d to 'searchpath' (string expected, got %s)"):format(i, type(v)), 2)
        end
      end
      sep, rep = sep or ".", rep or package.config:sub(1, 1)
      if sep ~= "" then name = name:gsub("%" .. sep:sub(1, 1) .. (sep:sub(2):gsub("%p", "%%%0")), rep) end
      local tried = {}
      for template in path:gmatch("[^;]+") do
        local candidate = template:gsub("%?", (name:gsub("%%", "%%%%")))
        local file = io.open(candidate, "r")
        if file then file:close(); return candidate end
        tried[#tried + 1] = "\n\tno file '" .. candidate .. "'"
      end
      return nil, concat(tried)
    end
  end
  if rawget(G, "warn") == nil then
    local on = false
    rawset(G, "warn", function(first, ...)
      if type(first) == "string" and first:sub(1, 1) == "@" then
        if first == "@on" then on = true elseif first == "@off" then on = false end
        return
      end
      if on and io and io.stderr then io.stderr:write("Lua warning: ", first, ...); io.stderr:write("\n") end
    end)
  end
end

-- LuaJIT's ffi refuses to define a C type twice, which specs that run a
-- definition in each test do; busted makes ffi.cdef, ffi.typeof and
-- ffi.metatype answer a repeated first argument from what it gave before.
local function ffi_repeatable()
  if not jit then return end
  local ok, ffi = pcall(G.require or function() end, "ffi")
  if not ok or type(ffi) ~= "table" then return end
  local function remembering(name, keep_result)
    local original, seen = ffi[name], {}
    ffi[name] = function(first, ...)
      local known = seen[first]
      if known ~= nil then
        if keep_result then return known end
        return
      end
      local called, result, message = pcall(original, first, ...)
      if not called then error(result, 2) end
      if keep_result and not result then return result, message end
      seen[first] = keep_result and result or true
      return result
    end
  end
  remembering("cdef", false)
  remembering("typeof", true)
  remembering("metatype", true)
end

--- Puts the runner's modules in package.loaded. A trusted run (not
--- --sandbox) also gets what specs find under busted on the system's lua
--- (the host side adds the system lua's compat functions and io.popen); a
--- sandboxed run gets exactly what a sandboxed plugin host has.
function R.install(trusted)
  if trusted then
    ffi_repeatable()
    busted_compat()
    posix_execute()
  end
  local loaded = package.loaded
  for name, value in pairs(own_modules) do loaded[name] = value end
end

---------------------------------------------------------------- files

local function compile(source, name, env)
  if source:sub(1, 1) == "#" then source = "--" .. source end
  local chunk, message
  if setfenv and loadstring then
    chunk, message = loadstring(source, "@" .. name)
    if chunk and env then setfenv(chunk, env) end
  elseif env then
    chunk, message = load(source, "@" .. name, "t", env)
  else
    chunk, message = load(source, "@" .. name, "t")
  end
  return chunk, message
end

--- Runs a --helper file once, in the real globals (as busted's dofile).
function R.run_helper(source, name)
  local chunk, message = compile(source, name, nil)
  if not chunk then error(message, 0) end
  return chunk()
end

--- Runs one spec file: registers its blocks, then runs them in busted's order.
function R.run_file(source, name, reporter)
  report, file_name = reporter, name
  local chunk, message = compile(source, name, spec_env)
  local file_el = { descriptor = "file", name = name, parent = root, children = {},
                    attributes = { envmode = "insulate" }, trace = nil }
  insert(root.children, file_el)
  if not chunk then
    report("error", "error", name, name, 0, message or "cannot load " .. name, "", 0)
    return
  end
  file_el.run = chunk
  local status, err, trace = safe("file", function() execute_block("file", file_el) end, file_el)
  if status ~= "success" then report_error(file_el, "file", err, trace) end
end

R.assert, R.spy, R.stub, R.mock, R.match, R.say = assert, spy, stub, mock, match, say
R.busted = busted_module
return R
