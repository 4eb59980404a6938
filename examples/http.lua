--[[
http.lua - a tiny HTTP/1.0 responder.

It reads the request head up to its blank line (the head may arrive in any
number of pieces), then answers once and closes the connection:

    GET /          200 with a short text greeting
    GET /stats     200 with how many requests it has answered
    GET (other)    404
    other methods  405 (HEAD is answered like GET, without the body)
    not HTTP       400

Every response carries Content-Type, Content-Length and Connection: close,
and ends with disconnect(), which is graceful: the whole response is sent
before the connection closes.

Run it (the port is optional; without one a free port is picked):

    luanet run examples/http.lua 8080

Talk to it:

    curl -i http://127.0.0.1:8080/
    printf 'GET /stats HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())"

Stop it with Ctrl-C.
]]

local port = tonumber(arg and arg[1] or nil) or 0
local MAX_HEAD = 8192

-- A global, not a local: the server lives only while Lua can reach it, and
-- the locals of this chunk are gone once the script has run to its end.
server = net.TcpServer.new()

local answered = 0
local REASONS = {
  [200] = "OK", [400] = "Bad Request", [404] = "Not Found",
  [405] = "Method Not Allowed", [431] = "Request Header Fields Too Large",
}

local function respond(socket, status, body, head_only, extra_headers)
  answered = answered + 1
  local head = {
    string.format("HTTP/1.0 %d %s", status, REASONS[status]),
    "Server: luanet-example",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Length: " .. #body,
    "Connection: close",
  }
  for _, header in ipairs(extra_headers or {}) do head[#head + 1] = header end
  socket:write_string(table.concat(head, "\r\n") .. "\r\n\r\n" .. (head_only and "" or body))
  socket:disconnect()
end

local function route(method, path)
  path = path:match("^[^?#]*")            -- the query string does not pick the page
  if path == "/" then
    return 200, "Hello from luanet!\nThis page was served by a Lua script over net.TcpServer.\n"
  elseif path == "/stats" then
    return 200, string.format("requests answered before this one: %d\n", answered)
  end
  return 404, "Not found: " .. path .. "\n"
end

-- "GET /path HTTP/1.0" -> "GET", "/path"; anything else -> nil.
local function parse_request_line(line)
  local method, target = line:match("^(%u+) (/%S*) HTTP/%d%.%d\r?$")
  return method, target
end

local function bad_request(socket, peer)
  print(string.format("%s  400 (not an HTTP request)", peer))
  respond(socket, 400, "Bad request\n")
end

-- Called with the complete head (request line and headers, without the blank line).
local function answer(socket, head, peer)
  local method, target = parse_request_line(head:match("^[^\n]*"))
  if not method then return bad_request(socket, peer) end
  if method ~= "GET" and method ~= "HEAD" then
    print(string.format("%s  %s %s -> 405", peer, method, target))
    return respond(socket, 405, "Only GET and HEAD are supported\n", false, { "Allow: GET, HEAD" })
  end
  local status, body = route(method, target)
  print(string.format("%s  %s %s -> %d", peer, method, target, status))
  respond(socket, status, body, method == "HEAD")
end

local function serve(socket)
  local peer = string.format("%s:%d", socket.remote_address, socket.remote_port)
  local received = ""          -- the head so far; it may arrive in several pieces
  local done = false

  socket.ready_read_handler = function(sock)
    if done then
      sock:read_all_string()   -- a body or pipelined junk: not ours to answer
      return
    end
    received = received .. sock:read_all_string()
    local head_end = received:find("\r?\n\r?\n")
    if head_end then
      done = true
      answer(sock, received:sub(1, head_end - 1), peer)
    elseif received:find("\n") and not parse_request_line(received:match("^[^\n]*")) then
      done = true              -- the first line is in and it is not a request line
      bad_request(sock, peer)
    elseif #received > MAX_HEAD then
      done = true
      print(string.format("%s  431 (head larger than %d bytes)", peer, MAX_HEAD))
      respond(sock, 431, "Request head too large\n")
    end
  end
end

server.new_connection_handler = function(srv)
  while srv.has_pending_connections do
    local socket = srv:next_pending_connection()
    if not socket then break end
    serve(socket)
  end
end

if not server:listen(port) then
  error(string.format("http: cannot listen on port %d: %s", port, server.error_string), 0)
end

print(string.format("http server listening on port %d", server.port))
print(string.format("try:  curl -i http://127.0.0.1:%d/", server.port))
print(string.format("      printf 'GET /stats HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 %d", server.port))
print("Ctrl-C stops it")
