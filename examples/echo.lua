--[[
echo.lua - a TCP echo server: every byte a client sends comes straight back.

Written only from the documented net API: TcpServer.new, listen,
new_connection_handler, next_pending_connection, and on each connection
ready_read_handler, read_all_string / write_string and disconnected_handler.

Run it (the port is optional; without one a free port is picked):

    luanet run examples/echo.lua          -- or: make run
    luanet run examples/echo.lua 7000

Talk to it from another terminal (use the port it prints):

    nc 127.0.0.1 7000
    python3 -c "import socket; s = socket.create_connection(('127.0.0.1', 7000)); s.sendall(b'hello\n'); print(s.recv(100))"

Stop it with Ctrl-C.
]]

local port = tonumber(arg and arg[1] or nil) or 0

-- A global, not a local: the server lives only while Lua can reach it, and
-- the locals of this chunk are gone once the script has run to its end.
server = net.TcpServer.new()
local clients = 0

local function serve(socket)
  -- Read the peer's address now: once the connection is gone it reads "" / 0.
  local peer = string.format("%s:%d", socket.remote_address, socket.remote_port)
  clients = clients + 1
  print(string.format("connect    %s (%d connected)", peer, clients))

  socket.ready_read_handler = function(sock)
    sock:write_string(sock:read_all_string())
  end

  socket.disconnected_handler = function(sock)
    clients = clients - 1
    print(string.format("disconnect %s (%d connected)", peer, clients))
  end
end

server.new_connection_handler = function(srv)
  -- The handler runs once per queued connection; draining the queue here
  -- as well is harmless and keeps nothing waiting.
  while srv.has_pending_connections do
    local socket = srv:next_pending_connection()
    if not socket then break end
    serve(socket)
  end
end

if not server:listen(port) then
  error(string.format("echo: cannot listen on port %d: %s", port, server.error_string), 0)
end

print(string.format("echo server listening on port %d", server.port))
print(string.format("talk to it:  nc 127.0.0.1 %d", server.port))
print(string.format(
  [[       or:  python3 -c "import socket; s = socket.create_connection(('127.0.0.1', %d)); s.sendall(b'hello\n'); print(s.recv(100))"]],
  server.port))
print("Ctrl-C stops it")
