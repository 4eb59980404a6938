--[[
chat.lua - a line-based chat server.

Every line a client sends goes to every other connected client, prefixed
with the sender's nick. Commands:

    /nick NAME    change your nick (letters, digits, _ and -, at most 20)
    /who          list who is here
    /quit         leave (the server says goodbye and closes the connection)

Joins, leaves and nick changes are announced to everyone else.

A member that stops reading (a stalled client, a laptop gone to sleep) is
dropped once more than MAX_BACKLOG bytes wait to be sent to it: the server
never buffers without end for one slow reader, so its memory stays bounded
however much the others say. Watch `bytes_to_write` for this in any server
that sends more than it is asked for.

Run it (the port is optional; without one a free port is picked):

    luanet run examples/chat.lua 7000

Talk to it from two or more terminals:

    nc 127.0.0.1 7000
    python3 -c "import socket, sys, threading; s = socket.create_connection(('127.0.0.1', 7000)); threading.Thread(target=lambda: [sys.stdout.write(l.decode(errors='replace')) for l in s.makefile('rb')], daemon=True).start(); [s.sendall(l.encode()) for l in sys.stdin]"

Stop it with Ctrl-C.
]]

local port = tonumber(arg and arg[1] or nil) or 0
local MAX_LINE = 4096
local MAX_BACKLOG = 256 * 1024   -- bytes queued for one member before it is dropped

-- A global, not a local: the server lives only while Lua can reach it, and
-- the locals of this chunk are gone once the script has run to its end.
server = net.TcpServer.new()

-- socket -> { nick = string, peer = "address:port" } for everyone in the room.
local clients = {}
local guests = 0

local broadcast

-- A member that does not read what it is sent: its bytes pile up in
-- bytes_to_write. Drop it (abort: what is queued for it is discarded, there
-- is no point in waiting for a reader that does not read).
local function drop_stalled(socket)
  local client = clients[socket]
  if not client then return end
  clients[socket] = nil
  print(string.format("drop  %s (%s): %d bytes unsent, not reading",
    client.peer, client.nick, socket.bytes_to_write))
  socket:abort()
  broadcast(socket, "* " .. client.nick .. " was dropped (not reading)")
end

local function send(socket, text)
  if socket.state == net.TcpSocket.CONNECTED_STATE then
    socket:write_string(text .. "\r\n")
    if socket.bytes_to_write > MAX_BACKLOG then drop_stalled(socket) end
  end
end

function broadcast(from, text)
  -- collect first: send() may drop members (and so change `clients`)
  local to = {}
  for socket in pairs(clients) do
    if socket ~= from then to[#to + 1] = socket end
  end
  for _, socket in ipairs(to) do send(socket, text) end
end

local function nick_taken(nick)
  for _, client in pairs(clients) do
    if client.nick:lower() == nick:lower() then return true end
  end
  return false
end

local function who()
  local nicks = {}
  for _, client in pairs(clients) do nicks[#nicks + 1] = client.nick end
  table.sort(nicks)
  return table.concat(nicks, ", ")
end

-- Handles one line (without its line ending). Returns false once the
-- client has quit, so the caller stops reading its lines.
local function handle_line(socket, client, line)
  local command, rest = line:match("^/(%a+)%s*(.-)%s*$")
  if not command then
    if line ~= "" then broadcast(socket, "<" .. client.nick .. "> " .. line) end
  elseif command == "nick" then
    if not rest:match("^[%w_%-]+$") or #rest > 20 then
      send(socket, "* usage: /nick NAME (letters, digits, _ and -, at most 20)")
    elseif nick_taken(rest) and rest:lower() ~= client.nick:lower() then
      send(socket, "* the nick " .. rest .. " is taken")
    else
      broadcast(socket, "* " .. client.nick .. " is now known as " .. rest)
      client.nick = rest
      send(socket, "* you are now known as " .. rest)
    end
  elseif command == "who" then
    send(socket, "* here: " .. who())
  elseif command == "quit" then
    send(socket, "* bye, " .. client.nick)
    -- Graceful: the goodbye is flushed first, then disconnected_handler runs.
    socket:disconnect()
    return false
  else
    send(socket, "* unknown command /" .. command .. " (try /nick NAME, /who, /quit)")
  end
  return true
end

local function join(socket)
  guests = guests + 1
  local client = {
    nick = "guest" .. guests,
    peer = string.format("%s:%d", socket.remote_address, socket.remote_port),
  }
  clients[socket] = client
  print(string.format("join  %s as %s", client.peer, client.nick))
  send(socket, "* welcome, " .. client.nick .. "! /nick NAME to rename, /who, /quit")
  send(socket, "* here: " .. who())
  broadcast(socket, "* " .. client.nick .. " joined")

  socket.ready_read_handler = function(sock)
    while clients[sock] and sock.can_read_line do
      local line = sock:read_line_string():gsub("\r?\n$", "")
      if not handle_line(sock, client, line) then
        clients[sock] = nil            -- quitting: no more lines, no more messages
        broadcast(sock, "* " .. client.nick .. " left")
      end
    end
    if clients[sock] and sock.bytes_available > MAX_LINE then
      send(sock, "* line too long, bye")
      sock:disconnect()
    end
  end

  socket.disconnected_handler = function(sock)
    print(string.format("leave %s (%s)", client.peer, client.nick))
    if clients[sock] then
      clients[sock] = nil
      broadcast(sock, "* " .. client.nick .. " left")
    end
  end
end

server.new_connection_handler = function(srv)
  while srv.has_pending_connections do
    local socket = srv:next_pending_connection()
    if not socket then break end
    join(socket)
  end
end

if not server:listen(port) then
  error(string.format("chat: cannot listen on port %d: %s", port, server.error_string), 0)
end

print(string.format("chat server listening on port %d", server.port))
print(string.format("join it:  nc 127.0.0.1 %d   (from as many terminals as you like)", server.port))
print("Ctrl-C stops it")
