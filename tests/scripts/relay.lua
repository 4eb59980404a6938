-- A TCP relay: every client that connects gets its own connection to the
-- upstream; bytes are piped both ways unchanged. When one side closes, the
-- other side is sent what is still pending and then closed.
-- Flow control: a side is read only while the other side has less than
-- HIGH bytes waiting to be written; read_buffer_size makes TCP hold a fast
-- sender back meanwhile, so memory stays bounded however big the transfer.
-- usage: luanet run relay.lua UPSTREAM_HOST UPSTREAM_PORT [LISTEN_PORT]

local up_host = assert(arg[1], "usage: relay.lua UPSTREAM_HOST UPSTREAM_PORT [LISTEN_PORT]")
local up_port = assert(tonumber(arg[2]), "UPSTREAM_PORT must be a number")
local listen_port = tonumber(arg[3] or "0")

local S = net.TcpSocket
local HIGH = 256 * 1024      -- most bytes queued towards one side before we stop reading
local CHUNK = 64 * 1024

local links = {}   -- socket -> its peer socket (both directions); keeps upstream sockets alive
-- An upstream socket that is still delivering its last bytes after
-- disconnect() is kept reachable here until its close has ended: luanet run
-- stops waiting for a socket once it is garbage-collected (and would exit
-- before those bytes are sent if nothing else were open).
local closing = {}
local count = 0

-- move what src has buffered into dst, as far as dst's queue allows
local function pump(src, dst)
  while src.bytes_available > 0 and dst.bytes_to_write < HIGH do
    local data = src:read_string(CHUNK)
    if dst:write_string(data) < 0 then
      print("write failed: " .. dst.error_string)
      src:abort(); dst:abort()
      return
    end
  end
end

local function open(state)
  return state == S.CONNECTED_STATE or state == S.CONNECTING_STATE or state == S.HOST_LOOKUP_STATE
end

-- src is gone: hand its last bytes to dst, then close dst gracefully
local function finish(src, dst)
  if links[src] == nil then return end
  links[src], links[dst] = nil, nil
  -- nothing is left to be held back now: queue everything still unread
  local rest = src:read_all_string()
  if #rest > 0 and open(dst.state) then dst:write_string(rest) end
  if open(dst.state) then
    closing[dst] = true
    dst:disconnect()
  end
  src:close()
  count = count - 1
  print("link closed, " .. count .. " open")
end

local function wire(a, b)
  a.read_buffer_size = HIGH
  a.ready_read_handler = function(s) pump(a, b) end
  -- b drained a little: a may go on
  b.bytes_written_handler = function(s, n) pump(a, b) end
  a.disconnected_handler = function(s) finish(a, b) end
  a.state_changed_handler = function(s, state)
    if state == S.UNCONNECTED_STATE then closing[s] = nil end
  end
  a.error_handler = function(s, err)
    if err ~= S.REMOTE_HOST_CLOSED_ERROR then
      print("error: " .. tostring(s.error_string))
      finish(a, b)       -- a failed (e.g. upstream refused): close the other side
    end
  end
end

server = net.TcpServer.new()
server.new_connection_handler = function(server)
  local client = server:next_pending_connection()
  while client do
    local up = S.new()
    links[client], links[up] = up, client
    count = count + 1
    wire(client, up)
    wire(up, client)
    up:connect(up_host, up_port)   -- writes made before it connects are buffered
    print("link opened, " .. count .. " open")
    client = server:next_pending_connection()
  end
end

assert(server:listen(listen_port))
print("listening on " .. server.port)
