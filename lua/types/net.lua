---@meta net

-- LuaLS (sumneko) annotations for the `net` library that luanet provides.
-- This file is never run: it only tells the editor what `net` holds.
-- See README.md in this folder for how to point VS Code at it.

---The networking library: `net.TcpServer` and `net.TcpSocket`.
---Available as the global `net` and as `require("net")`.
---@class net
---@field TcpServer net.TcpServerClass
---@field TcpSocket net.TcpSocketClass
net = {}

-------------------------------------------------------------------------------
-- Value sets
-------------------------------------------------------------------------------

---A socket state (`net.TcpSocket.*_STATE`).
---@alias net.SocketState
---| 0 # UNCONNECTED_STATE: not connected.
---| 1 # HOST_LOOKUP_STATE: looking up the host name.
---| 2 # CONNECTING_STATE: the host was found, the connection is being made.
---| 3 # CONNECTED_STATE: connected.
---| 4 # BOUND_STATE: bound to a local port (`bind()`), not connected.
---| 5 # CLOSING_STATE: closing; written bytes are still being sent.

---A socket error code (`net.TcpSocket.*_ERROR`).
---@alias net.SocketError
---| 0  # CONNECTION_REFUSED_ERROR: the peer refused the connection (or it timed out).
---| 1  # REMOTE_HOST_CLOSED_ERROR: the remote host closed the connection.
---| 2  # HOST_NOT_FOUND_ERROR: the host name could not be resolved.
---| 3  # SOCKET_ACCESS_ERROR: the operation needs privileges the process lacks.
---| 4  # SOCKET_RESOURCE_ERROR: out of resources (e.g. too many open files).
---| 5  # SOCKET_TIMEOUT_ERROR: the operation timed out.
---| 6  # DATAGRAM_TOO_LARGE_ERROR: the datagram was larger than the OS allows.
---| 7  # NETWORK_ERROR: a network error (e.g. the cable was unplugged).
---| 8  # ADDRESS_IN_USE_ERROR: the address (port) is already in use.
---| 9  # SOCKET_ADDRESS_NOT_AVAILABLE_ERROR: the address does not belong to this host.
---| 10 # UNSUPPORTED_SOCKET_OPERATION_ERROR: the OS does not support the operation.
---| 11 # UNFINISHED_SOCKET_OPERATION_ERROR: the last operation has not finished yet.
---| 19 # OPERATION_ERROR: the operation is not allowed in the socket's current state.
---| 22 # TEMPORARY_ERROR: a temporary error (e.g. the call would block); try again.
---| -1 # UNKNOWN_ERROR: an unidentified error.

---An open mode (`net.TcpSocket.*_MODE`), as passed to `connect()` / `open()`.
---@alias net.OpenMode
---| 0 # NOT_OPEN_MODE
---| 1 # READ_ONLY_MODE
---| 2 # WRITE_ONLY_MODE
---| 3 # READ_WRITE_MODE
---| 4 # APPEND_MODE
---| 8 # TRUNCATE_MODE

-------------------------------------------------------------------------------
-- net.TcpServer
-------------------------------------------------------------------------------

---A TCP server: accepts incoming TCP connections.
---
---Call `listen()` to start listening; `new_connection_handler` is then called
---each time a client connects. Call `next_pending_connection()` to take the
---connection as a `TcpSocket` in `CONNECTED_STATE`. On failure `error_string`
---says what happened. `close()` stops listening.
---
---The server stays alive only while Lua can reach it: keep it in a global or
---a live table, not in a local that goes out of scope. The sockets it hands
---out are owned by it and are closed when it is garbage-collected.
---
---Fields are read as properties (`server.port`) and handlers are assigned as
---fields (`server.new_connection_handler = function(server) ... end`).
---Assigning to a read-only property or to an unknown key raises an error.
---@class net.TcpServer
---@field listening boolean # Read only. True if the server is listening for connections.
---@field port integer # Read only. The port on which the server is listening, or 0 if it is not listening.
---@field max_pending_connections integer # Read/write. The maximum number of pending connections the server will accept (default 30). While the queue is full the server stops accepting; further clients wait in the kernel's backlog. A non-negative integer; anything else raises.
---@field has_pending_connections boolean # Read only. True if the server has any pending connections.
---@field error_string string # Read only. A human-readable description of the last error; "" until an error happens.
---@field error net.SocketError|nil # Read only (luanet extension). The last error as a `net.TcpSocket.*_ERROR` code, or nil.
---@field new_connection_handler fun(server: net.TcpServer)|nil # Called every time a new connection joins the pending queue, once per connection. Assign a function or nil (nil removes it); anything else raises.
---@field accept_error_handler fun(server: net.TcpServer, error: net.SocketError)|nil # Called when accepting a connection failed with a non-temporary socket error (e.g. `SOCKET_RESOURCE_ERROR` when out of file descriptors). The server then pauses accepting until `resume_accepting()` is called.
local TcpServer = {}

---The `net.TcpServer` class table.
---@class net.TcpServerClass
local TcpServerClass = {}

---Creates a new TcpServer: not listening, `port` 0, `error_string` "".
---@return net.TcpServer
function TcpServerClass.new() end

---Tells the server to start listening for incoming connections on `port`
---(all interfaces, IPv6 and IPv4, unless the host confines it). If `port` is 0,
---a free port is chosen automatically; read it from `server.port`.
---Returns true on success; false and the error string (also in
---`error_string`) when the port is in use, out of range, not permitted, or
---the server is already listening, so `assert(server:listen(p))` says why.
---@param port integer
---@return boolean ok
---@return string? error
function TcpServer:listen(port) end

---Asynchronous version of `listen()`, which must be used outside of the
---server's event handlers. `callback(server, result, error)` is called later:
---`result` is true on success, false otherwise (see `error_string`); `error`
---is nil unless something internal failed.
---@param port integer
---@param callback fun(server: net.TcpServer, result: boolean, error: any)
function TcpServer:listen_async(port, callback) end

---Pauses accepting new connections. Queued connections remain in the queue;
---connecting clients wait in the kernel's backlog until `resume_accepting()`.
function TcpServer:pause_accepting() end

---Resumes accepting new connections.
function TcpServer:resume_accepting() end

---Returns the next pending connection as a `TcpSocket` in `CONNECTED_STATE`,
---or nil when there is none.
---
---The socket belongs to the server: it stays alive while the server does and
---is closed when the server is garbage-collected, so don't use it after
---discarding the server.
---@return net.TcpSocket|nil socket
function TcpServer:next_pending_connection() end

---Asynchronous version of `next_pending_connection()`, which must be used
---outside of the server's event handlers. `callback(server, socket)` is called
---later with the next pending connection, or with nil when there is none.
---@param callback fun(server: net.TcpServer, socket: net.TcpSocket|nil)
function TcpServer:next_pending_connection_async(callback) end

---Closes the server: it no longer listens (`listening` false, `port` 0).
---Queued connections not yet taken are closed; sockets already taken are not
---touched. Closing twice is harmless, and `listen()` works again afterwards.
function TcpServer:close() end

net.TcpServer = TcpServerClass

-------------------------------------------------------------------------------
-- net.TcpSocket
-------------------------------------------------------------------------------

---A TCP connection: either handed out by `TcpServer:next_pending_connection()`
---or made with `net.TcpSocket.new()` and `connect()`.
---
---Strings are byte strings: every byte value 0..255 passes through unchanged.
---Properties are read as fields (`socket.bytes_available`); all of them are
---read only. Handlers are assigned as fields
---(`socket.ready_read_handler = function(socket) ... end`); a function or nil.
---
---Every read/write/peek/seek/reset/open method has an `_async` twin taking a
---trailing `callback(socket, result, error)`, called later from the event loop.
---@class net.TcpSocket
---@field state net.SocketState # Read only. The socket's state (`net.TcpSocket.*_STATE`).
---@field error net.SocketError|nil # Read only. The last error (`net.TcpSocket.*_ERROR`), or nil.
---@field error_string string # Read only. A human-readable description of the last error; "" until an error happens.
---@field valid boolean # Read only. True when the socket is connected and usable.
---@field local_address string # Read only. The local address ("127.0.0.1" style for IPv4), or "" when not available.
---@field local_port integer # Read only. The local port, or 0 when not available.
---@field remote_address string # Read only. The peer's address (IPv4 in dotted form, never "::ffff:..."), or "" when not available.
---@field remote_port integer # Read only. The peer's port, or 0 when not available.
---@field is_open boolean # Read only. True when the socket is open for reading and/or writing.
---@field open_mode net.OpenMode # Read only. The open mode (`net.TcpSocket.*_MODE`).
---@field bytes_available integer # Read only. Number of received bytes waiting in the read buffer.
---@field bytes_to_write integer # Read only. Number of written bytes not yet sent.
---@field at_end boolean # Read only. True when there is nothing left to read.
---@field pos integer # Read only. Always 0 (sockets are sequential).
---@field readable boolean # Read only. True when the socket was opened for reading.
---@field writeable boolean # Read only. True when the socket was opened for writing.
---@field sequential boolean # Read only. Always true (sockets are sequential).
---@field can_read_line boolean # Read only. True when a complete line (ending in "\n") is in the read buffer.
---@field read_buffer_size integer # Read/write. The most unread bytes the socket buffers (Qt's readBufferSize); 0 means no limit. At the limit luanet stops reading the connection (TCP holds the peer back) until the script reads. Its default comes from the host (0).
---@field ready_read_handler fun(socket: net.TcpSocket)|nil # Called when new data was appended to the read buffer. Data not read stays buffered and new data is appended behind it.
---@field bytes_written_handler fun(socket: net.TcpSocket, bytes: integer)|nil # Called when `bytes` written bytes were sent.
---@field about_to_close_handler fun(socket: net.TcpSocket)|nil # Called when `close()` is about to close the socket.
---@field connected_handler fun(socket: net.TcpSocket)|nil # Called when `connect()` succeeded (the socket is now `CONNECTED_STATE`).
---@field disconnected_handler fun(socket: net.TcpSocket)|nil # Called once the connection is gone (the socket is now `UNCONNECTED_STATE`).
---@field error_handler fun(socket: net.TcpSocket, error: net.SocketError)|nil # Called when an error happens, e.g. `CONNECTION_REFUSED_ERROR`, or `REMOTE_HOST_CLOSED_ERROR` (while `state` is still `CONNECTED_STATE`, after every byte that arrived before the close was delivered).
---@field state_changed_handler fun(socket: net.TcpSocket, state: net.SocketState)|nil # Called whenever `state` changes, with the new state.
---@field host_found_handler fun(socket: net.TcpSocket)|nil # Called when the host name given to `connect()` was resolved.
local TcpSocket = {}

---The `net.TcpSocket` class table: `new()` and the constants.
---@class net.TcpSocketClass
local TcpSocketClass = {
  -- States
  ---Not connected.
  UNCONNECTED_STATE = 0,
  ---Looking up the host name.
  HOST_LOOKUP_STATE = 1,
  ---The host was found, the connection is being made.
  CONNECTING_STATE = 2,
  ---Connected.
  CONNECTED_STATE = 3,
  ---Bound to a local port (`bind()`), not connected.
  BOUND_STATE = 4,
  ---Closing; written bytes are still being sent.
  CLOSING_STATE = 5,

  -- Errors
  ---The peer refused the connection (or it timed out).
  CONNECTION_REFUSED_ERROR = 0,
  ---The remote host closed the connection.
  REMOTE_HOST_CLOSED_ERROR = 1,
  ---The host name could not be resolved.
  HOST_NOT_FOUND_ERROR = 2,
  ---The operation needs privileges the process lacks.
  SOCKET_ACCESS_ERROR = 3,
  ---Out of resources (e.g. too many open files).
  SOCKET_RESOURCE_ERROR = 4,
  ---The operation timed out.
  SOCKET_TIMEOUT_ERROR = 5,
  ---The datagram was larger than the OS allows.
  DATAGRAM_TOO_LARGE_ERROR = 6,
  ---A network error (e.g. the cable was unplugged).
  NETWORK_ERROR = 7,
  ---The address (port) is already in use.
  ADDRESS_IN_USE_ERROR = 8,
  ---The address does not belong to this host.
  SOCKET_ADDRESS_NOT_AVAILABLE_ERROR = 9,
  ---The OS does not support the operation.
  UNSUPPORTED_SOCKET_OPERATION_ERROR = 10,
  ---The last operation has not finished yet.
  UNFINISHED_SOCKET_OPERATION_ERROR = 11,
  ---The operation is not allowed in the socket's current state.
  OPERATION_ERROR = 19,
  ---A temporary error (e.g. the call would block); try again.
  TEMPORARY_ERROR = 22,
  ---An unidentified error.
  UNKNOWN_ERROR = -1,

  -- Open modes
  ---Not open.
  NOT_OPEN_MODE = 0,
  ---Open for reading.
  READ_ONLY_MODE = 1,
  ---Open for writing.
  WRITE_ONLY_MODE = 2,
  ---Open for reading and writing (the default of `connect()`).
  READ_WRITE_MODE = 3,
  ---Append (Qt flag; no effect on sockets).
  APPEND_MODE = 4,
  ---Truncate (Qt flag; no effect on sockets).
  TRUNCATE_MODE = 8,
}

---Creates a new, unconnected TcpSocket. It is closed when garbage-collected.
---@return net.TcpSocket
function TcpSocketClass.new() end

---Connects to `hostname` (a name or an address) on `port`. The socket goes
---`HOST_LOOKUP_STATE`, then (`host_found_handler`) `CONNECTING_STATE`, then
---(`connected_handler`) `CONNECTED_STATE`. Failures arrive through
---`error_handler` (`HOST_NOT_FOUND_ERROR`, `CONNECTION_REFUSED_ERROR`, ...) and
---leave the socket in `UNCONNECTED_STATE`.
---@param hostname string
---@param port integer
---@param openmode? net.OpenMode defaults to `READ_WRITE_MODE`
function TcpSocket:connect(hostname, port, openmode) end

---Graceful close: `CLOSING_STATE` until every written byte is sent, then
---`UNCONNECTED_STATE` and `disconnected_handler`.
function TcpSocket:disconnect() end

---Immediate close; unsent data is discarded.
function TcpSocket:abort() end

---Binds the socket to a local `port` (0 = any) for an outgoing connection;
---`BOUND_STATE` on success; false and the error string otherwise.
---@param port integer
---@return boolean ok
---@return string? error
function TcpSocket:bind(port) end

---Asynchronous version of `bind()`.
---@param port integer
---@param callback fun(socket: net.TcpSocket, result: boolean, error: any)
function TcpSocket:bind_async(port, callback) end

---Reads up to `max` bytes (everything buffered without `max`) as a string;
---"" when nothing is buffered.
---@param max? integer
---@return string data
function TcpSocket:read_string(max) end

---Asynchronous version of `read_string()`.
---@overload fun(self: net.TcpSocket, callback: fun(socket: net.TcpSocket, result: string, error: any))
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: string, error: any)
function TcpSocket:read_string_async(max, callback) end

---Reads up to `max` bytes (everything buffered without `max`) as a table of
---byte numbers (0..255); {} when nothing is buffered.
---@param max? integer
---@return integer[] bytes
function TcpSocket:read_bytes(max) end

---Asynchronous version of `read_bytes()`.
---@overload fun(self: net.TcpSocket, callback: fun(socket: net.TcpSocket, result: integer[], error: any))
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: integer[], error: any)
function TcpSocket:read_bytes_async(max, callback) end

---Reads one line including its "\n" (or at most `max` bytes of it) as a string.
---Check `can_read_line` first.
---@param max? integer
---@return string line
function TcpSocket:read_line_string(max) end

---Asynchronous version of `read_line_string()`.
---@overload fun(self: net.TcpSocket, callback: fun(socket: net.TcpSocket, result: string, error: any))
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: string, error: any)
function TcpSocket:read_line_string_async(max, callback) end

---Reads one line including its "\n" (or at most `max` bytes of it) as a table
---of byte numbers.
---@param max? integer
---@return integer[] bytes
function TcpSocket:read_line_bytes(max) end

---Asynchronous version of `read_line_bytes()`.
---@overload fun(self: net.TcpSocket, callback: fun(socket: net.TcpSocket, result: integer[], error: any))
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: integer[], error: any)
function TcpSocket:read_line_bytes_async(max, callback) end

---Reads everything buffered as a string.
---@return string data
function TcpSocket:read_all_string() end

---Asynchronous version of `read_all_string()`.
---@param callback fun(socket: net.TcpSocket, result: string, error: any)
function TcpSocket:read_all_string_async(callback) end

---Reads everything buffered as a table of byte numbers.
---@return integer[] bytes
function TcpSocket:read_all_bytes() end

---Asynchronous version of `read_all_bytes()`.
---@param callback fun(socket: net.TcpSocket, result: integer[], error: any)
function TcpSocket:read_all_bytes_async(callback) end

---Returns up to `max` buffered bytes as a string without consuming them.
---@param max integer
---@return string data
function TcpSocket:peek_string(max) end

---Asynchronous version of `peek_string()`.
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: string, error: any)
function TcpSocket:peek_string_async(max, callback) end

---Returns up to `max` buffered bytes as a table of byte numbers without
---consuming them.
---@param max integer
---@return integer[] bytes
function TcpSocket:peek_bytes(max) end

---Asynchronous version of `peek_bytes()`.
---@param max integer
---@param callback fun(socket: net.TcpSocket, result: integer[], error: any)
function TcpSocket:peek_bytes_async(max, callback) end

---Queues `data` for sending. Returns the number of bytes queued, or -1 with
---`error_string` set (not connected, not writeable).
---@param data string
---@return integer count
function TcpSocket:write_string(data) end

---Asynchronous version of `write_string()`.
---@param data string
---@param callback fun(socket: net.TcpSocket, result: integer, error: any)
function TcpSocket:write_string_async(data, callback) end

---Queues the bytes of `bytes` (integers 0..255; anything else raises) for
---sending. Returns the number of bytes queued, or -1 with `error_string` set.
---@param bytes integer[]
---@return integer count
function TcpSocket:write_bytes(bytes) end

---Asynchronous version of `write_bytes()`.
---@param bytes integer[]
---@param callback fun(socket: net.TcpSocket, result: integer, error: any)
function TcpSocket:write_bytes_async(bytes, callback) end

---Returns false: sockets are sequential.
---@param pos integer
---@return boolean ok
function TcpSocket:seek(pos) end

---Asynchronous version of `seek()`.
---@param pos integer
---@param callback fun(socket: net.TcpSocket, result: boolean, error: any)
function TcpSocket:seek_async(pos, callback) end

---Returns false: sockets are sequential.
---@return boolean ok
function TcpSocket:reset() end

---Asynchronous version of `reset()`.
---@param callback fun(socket: net.TcpSocket, result: boolean, error: any)
function TcpSocket:reset_async(callback) end

---Returns false: a socket opens through `connect()`.
---@param mode net.OpenMode
---@return boolean ok
function TcpSocket:open(mode) end

---Asynchronous version of `open()`.
---@param mode net.OpenMode
---@param callback fun(socket: net.TcpSocket, result: boolean, error: any)
function TcpSocket:open_async(mode, callback) end

---Calls `about_to_close_handler`, then closes like `disconnect()`.
---Bytes left unread after a remote close stay readable until `close()`.
function TcpSocket:close() end

net.TcpSocket = TcpSocketClass

return net
