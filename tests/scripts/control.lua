-- A line-based control server for a 512-channel desk.
--   SET <ch> <value>   -> "OK <ch> <value>"      (ch 1..512, value 0..255)
--   GET <ch>           -> "<ch> <value>"
--   LIST               -> "<ch> <value>" for every channel set, then "END"
--   QUIT               -> "BYE", then the server closes the connection
-- anything else       -> "ERR <reason>"
-- One reply line per command line; "\r\n" is accepted too.
-- usage: luanet run control.lua [PORT]     (PORT 0 or missing: any free port)

local port = tonumber(arg[1] or "0")
local MAX_LINE = 1024

local channels = {}          -- ch -> value

local function handle(line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local cmd = (words[1] or ""):upper()
  if cmd == "SET" then
    local ch, value = tonumber(words[2]), tonumber(words[3])
    if #words ~= 3 or not ch or not value then return "ERR usage: SET <ch> <value>" end
    if ch ~= math.floor(ch) or ch < 1 or ch > 512 then return "ERR bad channel" end
    if value ~= math.floor(value) or value < 0 or value > 255 then return "ERR bad value" end
    channels[ch] = value
    return string.format("OK %d %d", ch, value)
  elseif cmd == "GET" then
    local ch = tonumber(words[2])
    if #words ~= 2 or not ch then return "ERR usage: GET <ch>" end
    if ch ~= math.floor(ch) or ch < 1 or ch > 512 then return "ERR bad channel" end
    return string.format("%d %d", ch, channels[ch] or 0)
  elseif cmd == "LIST" then
    local out = {}
    for ch = 1, 512 do
      if channels[ch] then out[#out + 1] = string.format("%d %d", ch, channels[ch]) end
    end
    out[#out + 1] = "END"
    return table.concat(out, "\n")
  elseif cmd == "QUIT" then
    return "BYE", true
  elseif cmd == "" then
    return "ERR empty command"
  else
    return "ERR unknown command " .. words[1]
  end
end

server = net.TcpServer.new()   -- global: the server lives as long as the script

server.new_connection_handler = function(server)
  local client = server:next_pending_connection()
  while client do
    client.ready_read_handler = function(c)
      while c.can_read_line do
        local line = c:read_line_string():gsub("\r?\n$", "")
        local reply, quit = handle(line)
        c:write_string(reply .. "\n")
        if quit then c:disconnect() return end
      end
      -- a "line" that never ends is a broken client: do not buffer it forever
      if c.bytes_available > MAX_LINE then
        c:write_string("ERR line too long\n")
        c:disconnect()
      end
    end
    client = server:next_pending_connection()
  end
end

assert(server:listen(port))
print("listening on " .. server.port)
