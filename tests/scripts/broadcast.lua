-- A broadcast server: every line one client sends goes to every other
-- client. A client that does not read what it is sent would make its
-- write queue grow without end, so a client whose bytes_to_write passes
-- LIMIT is dropped (as the README's chat example does).
-- usage: luanet run broadcast.lua [PORT] [LIMIT_BYTES]

local port = tonumber(arg[1] or "0")
local LIMIT = tonumber(arg[2] or tostring(256 * 1024))
local MAX_LINE = 64 * 1024   -- a "line" longer than this is a broken client

local clients = {}     -- socket -> name
local next_id = 0

local function drop(c, why)
  if clients[c] then
    print("dropped " .. clients[c] .. ": " .. why)
    clients[c] = nil
    c:abort()          -- discard what it did not read: that is the point
  end
end

local function broadcast(from, line)
  for c in pairs(clients) do
    if c ~= from then
      c:write_string(line)
      if c.bytes_to_write > LIMIT then
        drop(c, "bytes_to_write " .. c.bytes_to_write .. " > " .. LIMIT)
      end
    end
  end
end

server = net.TcpServer.new()
server.new_connection_handler = function(server)
  local c = server:next_pending_connection()
  while c do
    next_id = next_id + 1
    clients[c] = "client" .. next_id
    print("joined " .. clients[c])
    c.ready_read_handler = function(c)
      while c.can_read_line and clients[c] do
        broadcast(c, c:read_line_string())
      end
      if clients[c] and c.bytes_available > MAX_LINE then
        drop(c, "line longer than " .. MAX_LINE)
      end
    end
    c.disconnected_handler = function(c)
      if clients[c] then
        print("left " .. clients[c])
        clients[c] = nil
      end
      c:close()
    end
    c = server:next_pending_connection()
  end
end

assert(server:listen(port))
print("listening on " .. server.port)
