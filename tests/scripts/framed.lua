-- A binary framed protocol server. A frame is a 4-byte big-endian length
-- followed by that many payload bytes. For every frame received, the server
-- replies with one frame holding the payload reversed. Frames may arrive
-- split across packets, or several in one packet.
-- The 4-byte header is packed with string.pack/string.unpack where the Lua
-- version has them (5.3+), and with plain arithmetic on 5.1/LuaJIT.
-- usage: luanet run framed.lua [PORT] [MAX_FRAME]

local port = tonumber(arg[1] or "0")
local MAX_FRAME = tonumber(arg[2] or tostring(16 * 1024 * 1024))

local encode_len, decode_len, codec
if string.pack then
  codec = "string.pack"
  encode_len = function(n) return string.pack(">I4", n) end
  decode_len = function(s) return (string.unpack(">I4", s)) end
else
  codec = "pure-lua"
  encode_len = function(n)
    return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
  end
  decode_len = function(s)
    local a, b, c, d = s:byte(1, 4)
    return ((a * 256 + b) * 256 + c) * 256 + d
  end
end

-- the same length from the header's bytes as a table (read_bytes)
local function bytes_len(t)
  return ((t[1] * 256 + t[2]) * 256 + t[3]) * 256 + t[4]
end

local frames = 0

local function on_read(c)
  while c.bytes_available >= 4 do
    local len = decode_len(c:peek_string(4))          -- look, do not consume yet
    if len > MAX_FRAME then
      print("frame too large: " .. len)
      c:abort()
      return
    end
    if c.bytes_available < 4 + len then return end    -- wait for the rest
    local header = c:read_bytes(4)                      -- consume the header
    assert(#header == 4 and bytes_len(header) == len, "header changed between peek and read")
    local payload = len > 0 and c:read_string(len) or ""
    assert(#payload == len, "short read")
    c:write_string(encode_len(len) .. payload:reverse())
    frames = frames + 1
  end
end

server = net.TcpServer.new()
server.new_connection_handler = function(server)
  local c = server:next_pending_connection()
  while c do
    c.ready_read_handler = on_read
    c.disconnected_handler = function(c)
      print("client gone, " .. frames .. " frames so far")
      c:close()
    end
    c = server:next_pending_connection()
  end
end

assert(server:listen(port))
print("codec: " .. codec)
print("listening on " .. server.port)
