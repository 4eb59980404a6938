-- net.TcpServer and net.TcpSocket as the docs present them. Run by the
-- bridge as chunk(native, M) after the object model, the read buffer and
-- dispatch; returns `net`.
--
-- Properties backed by Python, handler fields and constants come from the
-- schema (luanet/schema.py) through objects.define_class; what is defined
-- here is what lives in Lua: the read buffer's properties and the methods.

local native, M = ...
local objects, readbuf, dispatch, checks = M.objects, M.readbuf, M.dispatch, M.checks

local type, select, format, tostring = type, select, string.format, tostring
local raw_metatable = debug.getmetatable
local method, method_with_async, record_of = objects.method, objects.method_with_async, objects.record_of
local take, reset = readbuf.take, readbuf.reset
local schema = native.schema
local EV = schema.events
local OPEN_MODES = schema.open_modes
local raise = checks.raise

---------------------------------------------------------------- TcpSocket

-- bytes_written_handler costs an event per write: Python reports written
-- bytes only while someone listens (native.want tells it, as for every
-- handler; see bridge.py).
local TcpSocket = objects.define_class(schema.classes.TcpSocket)
local getters = TcpSocket.getters

local function wrap_socket(id, data)
  local obj, rec = objects.new(TcpSocket, id)
  local rbs = native.default_read_buffer_size
  if rbs ~= 0 then rec.rbs = rbs end  -- no key at all for 0 (most hosts)
  if data then readbuf.append(rec, data) end  -- arrived while it was queued
  return obj, rec
end

local length = readbuf.length
getters.bytes_available = function(rec) return length(rec) end
getters.at_end = function(rec) return length(rec) == 0 end
getters.can_read_line = function(rec) return readbuf.line_length(rec) ~= nil end
getters.pos = function() return 0 end
getters.sequential = function() return true end
-- read_buffer_size is Python's; the buffer here needs it at every append
local write_rbs = TcpSocket.setters.read_buffer_size
TcpSocket.setters.read_buffer_size = function(rec, value)
  write_rbs(rec, value)
  rec.rbs = value ~= 0 and value or nil
  readbuf.check_hold(rec)
end

dispatch.on_event[EV.READY_READ] = function(_, rec, data)
  if data ~= "" then readbuf.append(rec, data) end  -- "": bytes handed over already
end
-- The live servers (weak keys). A socket's record does not name its server
-- (one key less per connection: an echo connection's record stays within 8
-- slots); the few servers a script has are asked instead.
local servers = setmetatable({}, { __mode = "k" })
dispatch.on_event[EV.DISCONNECTED] = function(obj, rec)
  if rec.pending then
    -- the script never saw this attempt connect (its CONNECTED was cut by
    -- an abort() earlier in the batch): for it, there is nothing to end
    rec.pending = nil
    return true
  end
  -- A closed socket is no longer owned by its server (done before the
  -- handler runs, so a failing disconnected_handler cannot keep it owned).
  for server in pairs(servers) do
    local children = raw_metatable(server).children
    if children[obj] then
      children[obj] = nil
      return
    end
  end
end
-- rec.pending: connect() called, CONNECTED not delivered yet (client
-- sockets only: accepted ones are handed out connected, and keep no key)
dispatch.on_event[EV.CONNECTED] = function(_, rec) rec.pending = nil end

local function bytes_of(s) return readbuf.to_bytes(s) end
local function line(rec, max) return readbuf.take_line(rec, max) end

method_with_async(TcpSocket, "read_string", { "size" }, function(_, rec, max) return take(rec, max) end)
method_with_async(TcpSocket, "read_bytes", { "size" }, function(_, rec, max) return bytes_of(take(rec, max)) end)
method_with_async(TcpSocket, "read_line_string", { "size" }, function(_, rec, max) return line(rec, max) end)
method_with_async(TcpSocket, "read_line_bytes", { "size" }, function(_, rec, max) return bytes_of(line(rec, max)) end)
objects.async_twin(TcpSocket, "read_all_string", {}, function(_, rec) return take(rec, nil) end)
method_with_async(TcpSocket, "read_all_bytes", {}, function(_, rec) return bytes_of(take(rec, nil)) end)
method_with_async(TcpSocket, "peek_string", { "count" }, function(_, rec, max) return readbuf.peek(rec, max) end)
method_with_async(TcpSocket, "peek_bytes", { "count" }, function(_, rec, max) return bytes_of(readbuf.peek(rec, max)) end)
objects.async_twin(TcpSocket, "write_string", { "string" }, function(_, rec, data)
  return native.write(rec.id, data)
end)
method_with_async(TcpSocket, "write_bytes", { "table" }, function(_, rec, t)
  local data, bad, v = readbuf.from_bytes(t)
  if not data then
    raise(format("bad argument #1 to 'write_bytes' (byte value 0..255 expected at index %d, got %s)",
      bad, checks.shown(v)))
  end
  return native.write(rec.id, data)
end)

-- The echo path by hand: read_all_string and write_string run once per
-- message, so they are written out instead of made by objects.method (same
-- checks, same errors; their _async twins are made above as for the rest).
local read_all_index = TcpSocket.index
local delivered = dispatch.current
TcpSocket.methods.read_all_string = function(self)
  local rec = raw_metatable(self)
  if type(rec) ~= "table" or rec.__index ~= read_all_index then
    rec = record_of(self, TcpSocket, "read_all_string")
  end
  local s = rec.one  -- one chunk, all of it (see readbuf.lua)
  if s and not rec.held then
    rec.one = nil
    return s
  end
  local s = take(rec, nil)
  return s
end
TcpSocket.methods.write_string = function(self, ...)
  local rec = raw_metatable(self)
  if type(rec) ~= "table" or rec.__index ~= read_all_index then
    rec = record_of(self, TcpSocket, "write_string")
  end
  local data = ...
  if type(data) ~= "string" then
    local why
    data, why = checks.KIND.string(data, select("#", ...) > 0)
    if why then raise(format("bad argument #1 to 'write_string' (%s)", why)) end
  end
  -- an echo of the bytes being delivered: Python writes its own copy of
  -- them (equal strings, so the same bytes), lupa converts none back; back
  -- to where they came from, only their place in the batch crosses
  local n
  if data == delivered.data then
    local id = rec.id
    if id == delivered.id then
      n = native.write_at(delivered.at)
    else
      n = native.write_at(delivered.at, id)
    end
  else
    n = native.write(rec.id, data)
  end
  return n
end

-- Sockets are sequential devices, opened by connect(): as in Qt, these fail.
method_with_async(TcpSocket, "seek", { "integer" }, function() return false end)
method_with_async(TcpSocket, "reset", {}, function() return false end)
method_with_async(TcpSocket, "open", { "integer" }, function() return false end)

-- A new connection, an abort and a close drop the unread bytes.
local function drop_input(rec)
  if rec.one or rec.chunks then reset(rec) end
  if rec.held then readbuf.check_hold(rec) end
end

-- A new connection and an abort end what the socket had: its unread bytes,
-- and the events of the old connection still in this batch.
local function end_connection(rec)
  drop_input(rec)
  objects.cut(rec)
end

method(TcpSocket, "connect", { "string", "integer", "opt_integer" }, function(_, rec, host, port, mode)
  if mode ~= nil and not OPEN_MODES[mode] then
    raise(format("bad argument #3 to 'connect' (invalid open mode %s)", tostring(mode)))
  end
  local ok, why = native.connect(rec.id, host, port, mode or 3)
  if not ok then return false, why end  -- a refused call changes nothing
  end_connection(rec)
  rec.closed_read = nil
  rec.pending = true
  return true
end)
method(TcpSocket, "disconnect", {}, function(_, rec) native.disconnect(rec.id) end)
method(TcpSocket, "abort", {}, function(_, rec)
  end_connection(rec)
  native.abort(rec.id)
end)
method(TcpSocket, "close", {}, function(_, rec)
  drop_input(rec)
  -- the device is closed: bytes that travel with a ready_read still in this
  -- batch arrived before close() and are dropped with the rest (the close
  -- itself goes on: its other events still come)
  rec.closed_read = true
  native.close(rec.id)
end)
method_with_async(TcpSocket, "bind", { "integer" }, function(_, rec, port)
  return native.bind(rec.id, port)
end)

TcpSocket.static.new = function()
  return (wrap_socket(native.socket_new()))
end

---------------------------------------------------------------- TcpServer

local TcpServer = objects.define_class(schema.classes.TcpServer)

method_with_async(TcpServer, "listen", { "integer" }, function(_, rec, port)
  return native.listen(rec.id, port)
end)
method(TcpServer, "pause_accepting", {}, function(_, rec) native.pause(rec.id) end)
method(TcpServer, "resume_accepting", {}, function(_, rec) native.resume(rec.id) end)
method(TcpServer, "close", {}, function(_, rec)
  rec.known_in = nil  -- the queue is emptied
  native.server_close(rec.id)
end)

-- has_pending_connections without a trip to Python where the answer is
-- known: next_pending_connection() says whether more wait, and the queue
-- grows only while the event loop runs, which it does not during a batch's
-- dispatch (objects.serial: 0 outside one; dispatch.lua restores it however
-- the batch ends). So the documented loop (`while s.has_pending_connections
-- do`) crosses once per batch, not twice per connection. Top-level code,
-- which runs between runs of the loop, always asks Python.
local read_has_pending = TcpServer.getters.has_pending_connections
TcpServer.getters.has_pending_connections = function(rec)
  local serial = objects.serial
  if serial ~= 0 and rec.known_in == serial then return rec.more end
  return read_has_pending(rec)
end
dispatch.after_nested = function()
  for server in pairs(servers) do raw_metatable(server).known_in = nil end
end

local function take_pending(_, rec)
  rec.known_in = nil  -- (the time limit may stop a handler between the two)
  local sid, data, more = native.next_pending(rec.id)
  rec.more, rec.known_in = more or false, objects.serial
  if not sid then return nil end
  local sock = wrap_socket(sid, data)
  rec.children[sock] = true -- the server keeps its sockets alive (not the reverse)
  return sock
end
method(TcpServer, "next_pending_connection", {}, take_pending)
TcpServer.methods.next_pending_connection_async = function(self, ...)
  local rec = record_of(self, TcpServer, "next_pending_connection_async")
  local cb = checks.args("next_pending_connection_async", { "callback" }, select("#", ...), { ... })[1]
  dispatch.defer(function() cb(self, take_pending(self, rec)) end)
end

TcpServer.static.new = function()
  local obj, rec = objects.new(TcpServer, native.server_new())
  rec.children = {}
  servers[obj] = true
  return obj
end

return {
  TcpServer = objects.public(TcpServer),
  TcpSocket = objects.public(TcpSocket),
}
