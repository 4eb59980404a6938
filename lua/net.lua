-- The Lua half of the binding: net.TcpServer and net.TcpSocket as the docs
-- present them (".new()", colon methods, properties as fields, handler fields).
--
-- Run once per host by luanet/bridge.py as `chunk(native)`. `native` holds the
-- Python calls this file may make (see Bridge.native_functions); they stay
-- upvalues here, so a script can never reach them. Returns `net` and the
-- dispatcher that Python calls with batches of events.
--
-- Objects are empty tables with one private record under the key PRIV, so
-- every field access from a script goes through __index/__newindex. The
-- record holds handlers, the read buffer and, for a server, the sockets it
-- handed out: all plain Lua, so handler closures that capture their socket
-- form cycles the Lua collector can free. Python holds ids only.

local native = ...

local type, error, select, tostring, tonumber, setmetatable, getmetatable, rawget, pairs =
      type, error, select, tostring, tonumber, setmetatable, getmetatable, rawget, pairs
local xpcall, pcall, ipairs, floor, huge = xpcall, pcall, ipairs, math.floor, math.huge
local concat, remove, char, byte, find, sub, format =
      table.concat, table.remove, string.char, string.byte, string.find, string.sub, string.format
local unpack = table.unpack or unpack
local traceback, raw_metatable = debug.traceback, debug.getmetatable
local sethook, getinfo = debug.sethook, debug.getinfo
local newproxy = newproxy

local PRIV = setmetatable({}, { __tostring = function() return "<private>" end })

-- id -> object, weak: dispatch finds live objects, and never keeps one alive.
local registry = setmetatable({}, { __mode = "v" })

---------------------------------------------------------------- error helpers

-- A handler is a function, or anything with a __call metamethod (a spy from
-- a test library, a callable object).
local function callable(v)
  if type(v) == "function" then return true end
  local mt = raw_metatable(v)
  return mt ~= nil and rawget(mt, "__call") ~= nil
end

local function typename(v, given)
  if not given then return "no value" end
  return type(v)
end

-- Argument kinds, checked the way luaL_check* / luaL_opt* do. Each returns
-- the normalised value, or nil and the reason.
local CHECK = {}

function CHECK.integer(v, given)
  if type(v) == "string" then v = tonumber(v) or v end
  if type(v) ~= "number" then return nil, "number expected, got " .. typename(v, given) end
  if v ~= v or v == huge or v == -huge or floor(v) ~= v then
    return nil, "number has no integer representation"
  end
  return v
end

function CHECK.opt_integer(v, given)
  if v == nil then return nil end
  return CHECK.integer(v, given)
end

function CHECK.count(v, given)  -- a required non-negative integer
  local n, why = CHECK.integer(v, given)
  if why then return nil, why end
  if n < 0 then return nil, "non-negative number expected, got " .. tostring(n) end
  return n
end

function CHECK.size(v, given)  -- an optional non-negative integer
  if v == nil then return nil end
  return CHECK.count(v, given)
end

function CHECK.string(v, given)
  local t = type(v)
  if t == "number" then return tostring(v) end
  if t ~= "string" then return nil, "string expected, got " .. typename(v, given) end
  return v
end

function CHECK.table(v, given)
  if type(v) ~= "table" then return nil, "table expected, got " .. typename(v, given) end
  return v
end

function CHECK.callback(v, given)
  if not callable(v) then return nil, "function expected, got " .. typename(v, given) end
  return v
end

-- Check arguments[first..last] against `kinds`; returns the checked values.
-- Raises at level 3: check_args <- method wrapper <- the script's call.
local function check_args(fname, kinds, given, args)
  local nk = #kinds
  for i = 1, nk do
    local v, why = CHECK[kinds[i]](args[i], i <= given)
    if why then error(format("bad argument #%d to '%s' (%s)", i, fname, why), 3) end
    args[i] = v
  end
  return args
end

-- The record of `self`, or an error that says how the method should be called.
local function self_record(self, class, fname)
  local rec = type(self) == "table" and rawget(self, PRIV)
  if not rec or rec.class ~= class then
    error(format("bad self to '%s' (%s expected, got %s); call it as %s:%s(...), not %s.%s(...)",
      fname, class.name, type(self), class.var, fname, class.var, fname), 3)
  end
  return rec
end

---------------------------------------------------------------- handlers

local function report(err)
  native.report_error(tostring(err))
end

local function on_error(err)
  return traceback(tostring(err), 2)
end

-- The time limit of LuaHost(handler_time_limit=...): while a handler or
-- callback runs, a count hook looks at the CPU clock every HOOK_EVERY
-- instructions and stops it with an error once it has run too long. Past its
-- deadline the hook fires on every instruction, so a pcall inside the
-- handler cannot keep it going. Coroutines made by scripts get the hook too.
-- (LuaJIT runs no hooks in compiled code: the host turns its JIT off.)
local time_limit = native.handler_time_limit
local clock = os.clock
local HOOK_EVERY = 10000
local deadline, hook_every = nil, HOOK_EVERY
-- The hook raises only in the scripts' code, never in this file's: not in
-- the dispatcher between two handlers, nor in a finaliser that runs meanwhile.
local THIS_FILE = getinfo(1, "S").source

local function over_time()
  if deadline and clock() > deadline then
    local running = getinfo(2, "S")
    if running and running.source == THIS_FILE then return end
    if hook_every ~= 1 then
      hook_every = 1
      sethook(over_time, "", 1)
    end
    error(format("handler stopped: it ran longer than %g s (handler_time_limit)", time_limit), 2)
  end
end

local function start_clock()
  deadline = clock() + time_limit
end

local function stop_clock()
  deadline = nil
  if hook_every ~= HOOK_EVERY then
    hook_every = HOOK_EVERY
    sethook(over_time, "", HOOK_EVERY)
  end
end

if time_limit then
  sethook(over_time, "", HOOK_EVERY)
  local create, resume = coroutine.create, coroutine.resume
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
  if jit then jit.off() end
end

-- Deferred calls: callbacks of the _async methods run from the loop, later.
local deferred, next_token = {}, 0
local function defer(fn)
  next_token = next_token + 1
  deferred[next_token] = fn
  native.defer(next_token)
end

---------------------------------------------------------------- sentinels

-- Lua 5.1 and LuaJIT run no __gc for tables: a userdata from newproxy carries
-- the finaliser there; 5.2+ take a table with __gc.
local function gc_sentinel(fn)
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = fn
    return proxy
  end
  return setmetatable({}, { __gc = fn })
end

---------------------------------------------------------------- classes

-- False once the host closes: finalisers that run while the runtime is torn
-- down must not call into Python any more.
local host_open = true

-- Event codes: luanet/core/constants.py (Event).
local NEW_CONNECTION, ACCEPT_ERROR = 1, 2
local READY_READ, BYTES_WRITTEN, ABOUT_TO_CLOSE, CONNECTED, DISCONNECTED, ERROR,
      STATE_CHANGED, HOST_FOUND = 10, 11, 12, 13, 14, 15, 16, 17
local CALL = 30

local HANDLER_OF = {
  [NEW_CONNECTION] = "new_connection_handler", [ACCEPT_ERROR] = "accept_error_handler",
  [READY_READ] = "ready_read_handler", [BYTES_WRITTEN] = "bytes_written_handler",
  [ABOUT_TO_CLOSE] = "about_to_close_handler", [CONNECTED] = "connected_handler",
  [DISCONNECTED] = "disconnected_handler", [ERROR] = "error_handler",
  [STATE_CHANGED] = "state_changed_handler", [HOST_FOUND] = "host_found_handler",
}

-- Events Python sends only to objects with a handler for them (told through
-- native.want when a handler field changes); READY_READ and DISCONNECTED
-- always come, as they change the object's state here.
local FILTERED_EVENT = {}
for kind, name in pairs(HANDLER_OF) do
  if kind ~= READY_READ and kind ~= DISCONNECTED then FILTERED_EVENT[name] = kind end
end

local function define_class(name, var)
  local class = {
    name = name, var = var,
    methods = {}, getters = {}, setters = {}, handlers = {},
    static = {},
  }
  local methods, getters, setters, handlers = class.methods, class.getters, class.setters, class.handlers
  class.mt = {
    __index = function(obj, key)
      local m = methods[key]
      if m then return m end
      local g = getters[key]
      if g then return g(obj[PRIV]) end
      if handlers[key] then return obj[PRIV][key] end
      return class.static[key]
    end,
    __newindex = function(obj, key, value)
      if handlers[key] then
        if value ~= nil and not callable(value) then
          error(format("bad value for '%s' (function or nil expected, got %s)", tostring(key), type(value)), 2)
        end
        local rec = obj[PRIV]
        local old = rec[key]
        rec[key] = value
        local kind = FILTERED_EVENT[key]
        if kind and (old == nil) ~= (value == nil) then native.want(rec.id, kind, value ~= nil) end
        local hook = handlers[key]
        if hook ~= true then hook(rec, value) end
      elseif setters[key] then
        setters[key](obj[PRIV], value)
      elseif getters[key] or methods[key] then
        error(format("cannot assign to read-only property '%s' of %s", tostring(key), name), 2)
      else
        error(format("cannot assign to unknown field '%s' of %s", tostring(key), name), 2)
      end
    end,
    __tostring = function(obj) return native.describe(obj[PRIV].id) end,
    __metatable = name,
  }
  if not newproxy then  -- Lua 5.2+: one shared finaliser, nothing per object
    class.mt.__gc = function(obj)
      local rec = rawget(obj, PRIV)
      if host_open and rec then native.release(rec.id) end
    end
  end
  return class
end

local function new_object(class, id)
  -- The record also holds the handlers, under their field names.
  local rec = { id = id, class = class }
  if newproxy then  -- Lua 5.1, LuaJIT: a table cannot have a finaliser
    rec.sentinel = gc_sentinel(function() if host_open then native.release(id) end end)
  end
  local obj = setmetatable({ [PRIV] = rec }, class.mt)
  registry[id] = obj
  return obj, rec
end

-- A method, with its arguments checked against `kinds`.
local function method(class, fname, kinds, body)
  local nk = #kinds
  if nk == 0 then  -- the hot path (read_all_string): no argument table
    class.methods[fname] = function(self)
      local rec = self_record(self, class, fname)
      local result = body(self, rec)
      return result
    end
    return
  elseif nk == 1 then  -- the other hot path (write_string)
    local check = CHECK[kinds[1]]
    class.methods[fname] = function(self, ...)
      local rec = self_record(self, class, fname)
      local v, why = check((...), select("#", ...) > 0)
      if why then error(format("bad argument #1 to '%s' (%s)", fname, why), 2) end
      local result = body(self, rec, v)
      return result
    end
    return
  end
  class.methods[fname] = function(self, ...)
    local rec = self_record(self, class, fname)
    local args = check_args(fname, kinds, select("#", ...), { ... })
    local result = body(self, rec, unpack(args, 1, nk))
    return result  -- not a tail call: errors raised in body count this frame
  end
end

-- method + its _async twin, whose last argument is cb(self, result, error),
-- run later from the loop. Optional arguments before cb may be left out.
local function method_with_async(class, fname, kinds, body)
  method(class, fname, kinds, body)
  local async_name = fname .. "_async"
  local nk = #kinds
  class.methods[async_name] = function(self, ...)
    local rec = self_record(self, class, async_name)
    local n = select("#", ...)
    local cb = (select(n > 0 and n or 1, ...))
    if not callable(cb) then
      error(format("bad argument #%d to '%s' (function expected as the last argument, got %s)",
        n > 0 and n or 1, async_name, typename(cb, n > 0)), 2)
    end
    local args = { ... }
    args[n] = nil  -- the callback is not one of the operation's arguments
    check_args(async_name, kinds, n - 1, args)
    defer(function()
      local ok, result = pcall(body, self, rec, unpack(args, 1, nk))
      if ok then cb(self, result, nil) else cb(self, nil, tostring(result)) end
    end)
  end
end

local function native_getter(class, prop)
  local read = native.getter(class.name, prop)
  class.getters[prop] = function(rec) return read(rec.id) end
end

---------------------------------------------------------------- TcpSocket

local TcpSocket = define_class("TcpSocket", "socket")
local SOCKET_STATIC = {
  UNCONNECTED_STATE = 0, HOST_LOOKUP_STATE = 1, CONNECTING_STATE = 2,
  CONNECTED_STATE = 3, BOUND_STATE = 4, CLOSING_STATE = 5,
  CONNECTION_REFUSED_ERROR = 0, REMOTE_HOST_CLOSED_ERROR = 1, HOST_NOT_FOUND_ERROR = 2,
  SOCKET_ACCESS_ERROR = 3, SOCKET_RESOURCE_ERROR = 4, SOCKET_TIMEOUT_ERROR = 5,
  DATAGRAM_TOO_LARGE_ERROR = 6, NETWORK_ERROR = 7, ADDRESS_IN_USE_ERROR = 8,
  SOCKET_ADDRESS_NOT_AVAILABLE_ERROR = 9, UNSUPPORTED_SOCKET_OPERATION_ERROR = 10,
  UNFINISHED_SOCKET_OPERATION_ERROR = 11, OPERATION_ERROR = 19, TEMPORARY_ERROR = 22,
  UNKNOWN_ERROR = -1,
  NOT_OPEN_MODE = 0, READ_ONLY_MODE = 1, WRITE_ONLY_MODE = 2, READ_WRITE_MODE = 3,
  APPEND_MODE = 4, TRUNCATE_MODE = 8,
}
for k, v in pairs(SOCKET_STATIC) do TcpSocket.static[k] = v end
local VALID_MODES = { [1] = true, [2] = true, [3] = true, [4] = true, [6] = true, [8] = true, [10] = true }

-- The read buffer lives here, in Lua: bytes arrive with READY_READ, and reads
-- are answered without crossing to Python. chunks[1] is consumed from `off`.
local function buf_reset(rec)  -- the chunk table is made once, on first data, and reused
  local chunks = rec.chunks
  if chunks then
    for i = 1, rec.nchunks do chunks[i] = nil end
  end
  rec.nchunks, rec.off, rec.rlen = 0, 0, 0
end

local function buf_append(rec, data)
  local n = rec.nchunks + 1
  local chunks = rec.chunks
  if not chunks then
    chunks = {}
    rec.chunks = chunks
  end
  chunks[n] = data
  rec.nchunks = n
  rec.rlen = rec.rlen + #data
end

local function buf_flatten(rec)  -- one chunk holding exactly what is unread
  if rec.nchunks == 0 then return "" end
  if rec.nchunks > 1 or rec.off > 0 then
    local chunks = rec.chunks
    chunks[1] = sub(chunks[1], rec.off + 1)
    local s = concat(chunks, "", 1, rec.nchunks)
    rec.chunks, rec.nchunks, rec.off = { s }, 1, 0
  end
  return rec.chunks[1]
end

local function buf_peek(rec, n)
  if n == nil or n >= rec.rlen then n = rec.rlen end
  if n == 0 then return "" end
  local first = rec.chunks[1]
  if #first - rec.off >= n then return sub(first, rec.off + 1, rec.off + n) end
  return sub(buf_flatten(rec), 1, n)
end

local function buf_take(rec, n)
  if n == nil or n >= rec.rlen then
    local s
    if rec.nchunks == 1 and rec.off == 0 then s = rec.chunks[1] else s = buf_flatten(rec) end
    if rec.rlen > 0 then buf_reset(rec) end
    return s or ""
  end
  if n == 0 then return "" end
  local s = buf_peek(rec, n)
  local off = rec.off + n
  rec.rlen = rec.rlen - n
  if off >= #rec.chunks[1] then  -- first chunk used up exactly
    remove(rec.chunks, 1)
    rec.nchunks, rec.off = rec.nchunks - 1, 0
  else
    rec.off = off
  end
  return s
end

local function buf_line_length(rec)  -- bytes up to and including "\n", or nil
  if rec.rlen == 0 then return nil end
  local first = rec.chunks[1]
  local e = find(first, "\n", rec.off + 1, true)
  if e then return e - rec.off end
  if rec.nchunks == 1 then return nil end
  e = find(buf_flatten(rec), "\n", 1, true)
  return e
end

local function to_bytes(s)
  local t, n = {}, #s
  for i = 1, n, 4096 do
    local j = i + 4095
    if j > n then j = n end
    local part = { byte(s, i, j) }
    for k = 1, #part do t[i + k - 1] = part[k] end
  end
  return t
end

local function from_bytes(fname, t)
  local n = #t
  for i = 1, n do
    local v = t[i]
    if type(v) ~= "number" or v < 0 or v > 255 or floor(v) ~= v then
      error(format("bad argument #1 to '%s' (byte value 0..255 expected at index %d, got %s)",
        fname, i, type(v) == "number" and tostring(v) or type(v)), 4)
    end
  end
  local parts = {}
  for i = 1, n, 4096 do
    local j = i + 4095
    if j > n then j = n end
    parts[#parts + 1] = char(unpack(t, i, j))
  end
  return concat(parts)
end

for _, prop in ipairs({ "state", "error", "error_string", "valid", "local_address", "local_port",
                        "remote_address", "remote_port", "is_open", "open_mode", "bytes_to_write",
                        "readable", "writeable" }) do
  native_getter(TcpSocket, prop)
end
TcpSocket.getters.bytes_available = function(rec) return rec.rlen end
TcpSocket.getters.at_end = function(rec) return rec.rlen == 0 end
TcpSocket.getters.can_read_line = function(rec) return buf_line_length(rec) ~= nil end
TcpSocket.getters.pos = function() return 0 end
TcpSocket.getters.sequential = function() return true end

for _, h in ipairs({ "ready_read_handler", "about_to_close_handler", "connected_handler",
                     "disconnected_handler", "error_handler", "state_changed_handler",
                     "host_found_handler" }) do
  TcpSocket.handlers[h] = true
end
-- Reporting written bytes costs an event per write: only when someone listens.
TcpSocket.handlers.bytes_written_handler = function(rec, fn)
  native.watch_written(rec.id, fn ~= nil)
end

local function wrap_socket(id)
  local obj, rec = new_object(TcpSocket, id)
  buf_reset(rec)
  return obj, rec
end

local function read_line(rec, max)
  local n = buf_line_length(rec) or rec.rlen
  if max and max < n then n = max end
  return buf_take(rec, n)
end

method_with_async(TcpSocket, "read_string", { "size" }, function(_, rec, max) return buf_take(rec, max) end)
method_with_async(TcpSocket, "read_bytes", { "size" }, function(_, rec, max) return to_bytes(buf_take(rec, max)) end)
method_with_async(TcpSocket, "read_line_string", { "size" }, function(_, rec, max) return read_line(rec, max) end)
method_with_async(TcpSocket, "read_line_bytes", { "size" }, function(_, rec, max) return to_bytes(read_line(rec, max)) end)
method_with_async(TcpSocket, "read_all_string", {}, function(_, rec) return buf_take(rec, nil) end)
method_with_async(TcpSocket, "read_all_bytes", {}, function(_, rec) return to_bytes(buf_take(rec, nil)) end)
method_with_async(TcpSocket, "peek_string", { "count" }, function(_, rec, max) return buf_peek(rec, max) end)
method_with_async(TcpSocket, "peek_bytes", { "count" }, function(_, rec, max) return to_bytes(buf_peek(rec, max)) end)
method_with_async(TcpSocket, "write_string", { "string" }, function(_, rec, data)
  return native.write(rec.id, data)
end)
method_with_async(TcpSocket, "write_bytes", { "table" }, function(_, rec, t)
  return native.write(rec.id, from_bytes("write_bytes", t))
end)
-- The echo path by hand: read_all_string and write_string run once per
-- message, so they skip the generic wrapper's calls (same checks, same errors).
TcpSocket.methods.read_all_string = function(self)
  local rec = type(self) == "table" and rawget(self, PRIV)
  if not rec or rec.class ~= TcpSocket then self_record(self, TcpSocket, "read_all_string") end
  if rec.nchunks == 1 and rec.off == 0 then
    local s = rec.chunks[1]
    rec.chunks[1] = nil
    rec.nchunks, rec.rlen = 0, 0
    return s
  end
  local s = buf_take(rec, nil)
  return s
end
TcpSocket.methods.write_string = function(self, ...)
  local rec = type(self) == "table" and rawget(self, PRIV)
  if not rec or rec.class ~= TcpSocket then self_record(self, TcpSocket, "write_string") end
  local data = ...
  if type(data) ~= "string" then
    local why
    data, why = CHECK.string(data, select("#", ...) > 0)
    if why then error(format("bad argument #1 to 'write_string' (%s)", why), 2) end
  end
  local n = native.write(rec.id, data)
  return n
end

-- Sockets are sequential devices, opened by connect(): as in Qt, these fail.
method_with_async(TcpSocket, "seek", { "integer" }, function() return false end)
method_with_async(TcpSocket, "reset", {}, function() return false end)
method_with_async(TcpSocket, "open", { "integer" }, function() return false end)

method(TcpSocket, "connect", { "string", "integer", "opt_integer" }, function(_, rec, host, port, mode)
  if mode ~= nil and not VALID_MODES[mode] then
    error(format("bad argument #3 to 'connect' (invalid open mode %s)", tostring(mode)), 3)
  end
  buf_reset(rec)
  return native.connect(rec.id, host, port, mode or 3)
end)
method(TcpSocket, "disconnect", {}, function(_, rec) native.disconnect(rec.id) end)
method(TcpSocket, "abort", {}, function(_, rec)
  buf_reset(rec)
  native.abort(rec.id)
end)
method(TcpSocket, "close", {}, function(_, rec)
  buf_reset(rec)
  native.close(rec.id)
end)
method_with_async(TcpSocket, "bind", { "integer" }, function(_, rec, port) return native.bind(rec.id, port) end)

TcpSocket.static.new = function()
  return (wrap_socket(native.socket_new()))
end

---------------------------------------------------------------- TcpServer

local TcpServer = define_class("TcpServer", "server")

for _, prop in ipairs({ "listening", "port", "max_pending_connections", "has_pending_connections",
                        "error_string", "error" }) do
  native_getter(TcpServer, prop)
end
TcpServer.setters.max_pending_connections = function(rec, value)
  if type(value) ~= "number" or floor(value) ~= value or value < 0 or value == huge then
    error(format("bad value for 'max_pending_connections' (non-negative integer expected, got %s)",
      type(value) == "number" and tostring(value) or type(value)), 3)
  end
  native.set_max_pending(rec.id, value)
end
TcpServer.handlers.new_connection_handler = true
TcpServer.handlers.accept_error_handler = true

method_with_async(TcpServer, "listen", { "integer" }, function(_, rec, port)
  return native.listen(rec.id, port)
end)
method(TcpServer, "pause_accepting", {}, function(_, rec) native.pause(rec.id) end)
method(TcpServer, "resume_accepting", {}, function(_, rec) native.resume(rec.id) end)
method(TcpServer, "close", {}, function(_, rec) native.server_close(rec.id) end)

local function take_pending(self, rec)
  local sid = native.next_pending(rec.id)
  if not sid then return nil end
  local sock, srec = wrap_socket(sid)
  srec.server_id = rec.id  -- by id: a socket must not keep its server alive
  rec.children[sock] = true  -- ...but the server keeps its sockets alive
  return sock
end
method(TcpServer, "next_pending_connection", {}, take_pending)
TcpServer.methods.next_pending_connection_async = function(self, ...)
  local rec = self_record(self, TcpServer, "next_pending_connection_async")
  local cb = check_args("next_pending_connection_async", { "callback" }, select("#", ...), { ... })[1]
  defer(function() cb(self, take_pending(self, rec)) end)
end

TcpServer.static.new = function()
  local obj, rec = new_object(TcpServer, native.server_new())
  rec.children = {}
  return obj
end

---------------------------------------------------------------- dispatch


-- Arguments each handler takes: (object) or (object, value).
local ARITY = {
  [NEW_CONNECTION] = 1, [ACCEPT_ERROR] = 2, [READY_READ] = 1, [BYTES_WRITTEN] = 2,
  [ABOUT_TO_CLOSE] = 1, [CONNECTED] = 1, [DISCONNECTED] = 1, [ERROR] = 2,
  [STATE_CHANGED] = 2, [HOST_FOUND] = 1,
}

-- Deliver one event. Runs unprotected: dispatch below catches errors.
local function deliver(kind, id, a)
  if kind == CALL then
    local fn = deferred[id]
    deferred[id] = nil
    if fn then
      if time_limit then start_clock() end
      fn()
      deadline = nil
    end
    return
  end
  local obj = registry[id]
  if not obj then return end  -- collected meanwhile
  local rec = obj[PRIV]
  if kind == READY_READ then
    buf_append(rec, a)
  elseif kind == DISCONNECTED and rec.server_id then
    -- A closed socket is no longer owned by its server (done first, so a
    -- failing disconnected_handler cannot keep it owned).
    local server = registry[rec.server_id]
    if server then server[PRIV].children[obj] = nil end
  end
  local handler = rec[HANDLER_OF[kind]]
  if handler then
    if time_limit then start_clock() end
    -- exactly the documented arguments: varargs and spies see no trailing nil
    if ARITY[kind] == 1 then handler(obj) else handler(obj, a) end
    deadline = nil
  end
end

-- The batch being dispatched and the index of its next event. One protected
-- run delivers the whole batch; a handler error ends that run, is reported,
-- and the next run resumes with the event after it.
local batch, batch_n, next_i = nil, 0, 1

local function deliver_rest()
  while next_i <= batch_n do
    local i = next_i
    next_i = i + 3
    deliver(batch[i], batch[i + 1], batch[i + 2])
  end
end

-- Python calls this with a flat batch: kind, id, a, kind, id, a, ...
-- Re-entrant: a handler that runs the loop (luanet.run_until) dispatches a
-- nested batch, and the outer one carries on where it was afterwards.
local function dispatch(...)
  local outer, outer_n, outer_i = batch, batch_n, next_i
  batch, batch_n, next_i = { ... }, select("#", ...), 1
  while next_i <= batch_n do
    local ok, err = xpcall(deliver_rest, on_error)
    if time_limit then stop_clock() end
    if not ok then report(err) end
  end
  batch, batch_n, next_i = outer, outer_n, outer_i
end

local net = {
  TcpServer = setmetatable({}, { __index = TcpServer.static, __newindex = function(_, k)
    error(format("cannot assign to net.TcpServer.%s", tostring(k)), 2) end, __metatable = false }),
  TcpSocket = setmetatable({}, { __index = TcpSocket.static, __newindex = function(_, k)
    error(format("cannot assign to net.TcpSocket.%s", tostring(k)), 2) end, __metatable = false }),
}
local function shutdown()
  host_open = false
end

return net, dispatch, shutdown
