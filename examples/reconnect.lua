--[[
reconnect.lua - a client that stays connected to a device.

It connects to HOST:PORT, and whenever the connection cannot be made or is
lost it tries again after a back-off that doubles from 0.25 s up to a cap
(30 s by default), so a device that is away for an hour costs a handful of
attempts, not thousands. Once connected it sends a heartbeat line every few
seconds and prints every line the device sends. A connection attempt that
hangs (a device that drops packets) is given up after 5 s.

    luanet run examples/reconnect.lua HOST PORT [HEARTBEAT_SECONDS] [MAX_BACKOFF_SECONDS]
    luanet run examples/reconnect.lua 127.0.0.1 7000        (heartbeat every 5 s)

Try it with a "device" that comes and goes:

    nc -l 7000        (type lines; Ctrl-C it and start it again)

Stop it with Ctrl-C.
]]

local HOST = arg and arg[1] or "127.0.0.1"
local PORT = tonumber(arg and arg[2] or nil)
if not PORT then
  error("usage: luanet run reconnect.lua HOST PORT [HEARTBEAT_SECONDS] [MAX_BACKOFF_SECONDS]", 0)
end
local HEARTBEAT = tonumber(arg[3] or nil) or 5
local FIRST_DELAY, MAX_DELAY = 0.25, tonumber(arg[4] or nil) or 30
local CONNECT_TIMEOUT = 5
local MAX_LINE = 64 * 1024

-- Globals, not locals: the socket lives only while Lua can reach it, and the
-- locals of this chunk are gone once the script has run to its end. (Active
-- timers stay alive by themselves, like setTimeout.)
device = net.TcpSocket.new()
retry = luanet.Timer.new()
retry.single_shot = true

local delay = FIRST_DELAY
local heartbeat, give_up        -- timers of the current attempt/connection
local sent = 0

local function stop_timers()
  if heartbeat then heartbeat:stop(); heartbeat = nil end
  if give_up then give_up:stop(); give_up = nil end
end

-- The connection is gone (or never came): try again after the back-off.
local function schedule_retry(reason)
  stop_timers()
  if retry.active then return end   -- error_handler and disconnected_handler both call this
  print(string.format("%s; retrying in %g s", reason, delay))
  retry:start(delay)
  delay = math.min(delay * 2, MAX_DELAY)
end

local function connect()
  if device.state ~= net.TcpSocket.UNCONNECTED_STATE then device:abort() end
  print(string.format("connecting to %s:%d", HOST, PORT))
  device:connect(HOST, PORT)
  give_up = luanet.after(CONNECT_TIMEOUT, function()
    give_up = nil
    -- abort() of an attempt runs no error_handler: retry from here
    device:abort()
    schedule_retry(string.format("no answer within %g s", CONNECT_TIMEOUT))
  end)
end

retry.timeout_handler = connect

device.connected_handler = function(sock)
  stop_timers()
  print(string.format("connected to %s:%d", HOST, PORT))
  delay = FIRST_DELAY                -- a good connection resets the back-off
  heartbeat = luanet.every(HEARTBEAT, function()
    sent = sent + 1
    sock:write_string("heartbeat " .. sent .. "\n")
  end)
end

device.ready_read_handler = function(sock)
  while sock.can_read_line do
    print("received: " .. sock:read_line_string():gsub("\r?\n$", ""))
  end
  if sock.bytes_available > MAX_LINE then   -- a device that never ends its line
    print("received: " .. sock:read_all_string():sub(1, 80) .. "... (line too long, cut)")
  end
end

-- A failed attempt: error_handler only (CONNECTION_REFUSED_ERROR, ...).
-- A lost connection: error_handler (REMOTE_HOST_CLOSED_ERROR, ...), then
-- disconnected_handler once what was written is sent or discarded.
device.error_handler = function(sock, err)
  schedule_retry(sock.error_string ~= "" and sock.error_string or ("error " .. tostring(err)))
end

device.disconnected_handler = function(sock)
  schedule_retry("disconnected")
end

connect()
