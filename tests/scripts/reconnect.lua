-- A client that stays connected to a device.
--   * connects to HOST PORT; when the attempt fails or the connection drops,
--     it tries again after a back-off that doubles from BASE up to MAX
--     (luanet.after), and starts again from BASE after a good connection;
--   * an attempt that hangs is given up after CONNECT_TIMEOUT seconds;
--   * while connected, it sends "PING <n>" every HEARTBEAT seconds (luanet.every);
--   * it prints every line the device sends as "got: <line>".
-- Progress lines (for people and tests): "attempt <n>", "connected",
-- "retry in <seconds>", "disconnected".
-- usage: luanet run reconnect.lua HOST PORT [HEARTBEAT] [BASE] [MAX]

local host = assert(arg[1], "usage: reconnect.lua HOST PORT [HEARTBEAT] [BASE] [MAX]")
local port = assert(tonumber(arg[2]), "PORT must be a number")
local HEARTBEAT = tonumber(arg[3] or "1")
local BASE = tonumber(arg[4] or "0.25")
local MAX = tonumber(arg[5] or "30")
local CONNECT_TIMEOUT = 5

local S = net.TcpSocket
local sock = S.new()
local backoff = BASE
local attempts = 0
local pings = 0
local retry_timer, connect_timer   -- at most one of each pending at a time

local function connect()
  retry_timer = nil
  attempts = attempts + 1
  print("attempt " .. attempts)
  sock:connect(host, port)
  connect_timer = luanet.after(CONNECT_TIMEOUT, function()
    connect_timer = nil
    if sock.state ~= S.CONNECTED_STATE then
      print("attempt timed out")
      sock:abort()        -- reports UNCONNECTED_STATE, which schedules the retry
    end
  end)
end

local function schedule_retry()
  if retry_timer then return end          -- already scheduled
  if connect_timer then connect_timer:stop(); connect_timer = nil end
  print(string.format("retry in %.3f", backoff))
  retry_timer = luanet.after(backoff, connect)
  backoff = math.min(backoff * 2, MAX)
end

sock.connected_handler = function(s)
  if connect_timer then connect_timer:stop(); connect_timer = nil end
  backoff = BASE                          -- a good connection resets the back-off
  print("connected")
end

sock.ready_read_handler = function(s)
  while s.can_read_line do
    print("got: " .. s:read_line_string():gsub("\r?\n$", ""))
  end
end

sock.state_changed_handler = function(s, state)
  if state == S.UNCONNECTED_STATE then schedule_retry() end
end

sock.disconnected_handler = function(s)
  print("disconnected")
end

sock.error_handler = function(s, err)
  -- refused attempts are expected while the device is away; say so quietly
  if err ~= S.CONNECTION_REFUSED_ERROR and err ~= S.REMOTE_HOST_CLOSED_ERROR then
    print("error: " .. tostring(s.error_string))
  end
end

heartbeat = luanet.every(HEARTBEAT, function()
  if sock.state == S.CONNECTED_STATE then
    pings = pings + 1
    sock:write_string("PING " .. pings .. "\n")
  end
end)

connect()
