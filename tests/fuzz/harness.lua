-- The Lua half of the stateful fuzzer (tests/fuzz/stateful.py).
--
-- Runs inside a (sandboxed) LuaHost as an ordinary script. Every call into
-- net goes through pcall; what each connection saw is logged per socket and
-- per connection ("generation": one per connect() that returned true, one for
-- an accepted socket), so Python can check the invariants afterwards:
--   F.log[name][gen] = { w = {written parts}, wq = bytes queued, r = {read parts},
--                        bw = bytes_written total, ev = {events}, disc = n,
--                        aborted = bool, connected = bool, lport, rport, ... }
-- Violations the script can see directly go to F.viol; every error value a
-- call raised goes to F.errs (Python looks for Python text in them).

F = { sock = {}, srv = {}, gen = {}, log = {}, viol = {}, errs = {}, act = {},
      nilh = {}, accepted = 0, steps = 0, events = 0 }

local S = net.TcpSocket
local HANDLERS = { "ready_read_handler", "bytes_written_handler", "about_to_close_handler",
                   "connected_handler", "disconnected_handler", "error_handler",
                   "state_changed_handler", "host_found_handler" }
F.HANDLERS = HANDLERS
local SOCKET_PROPS = { "state", "error", "error_string", "valid", "local_address", "local_port",
                       "remote_address", "remote_port", "is_open", "open_mode", "bytes_available",
                       "bytes_to_write", "at_end", "pos", "readable", "writeable", "sequential",
                       "can_read_line", "read_buffer_size" }
local SERVER_PROPS = { "listening", "port", "max_pending_connections", "has_pending_connections",
                       "error_string", "error" }

local function viol(msg)
  F.viol[#F.viol + 1] = msg
end
F.violate = viol

local function check_value(where, v)
  local t = type(v)
  if t == "userdata" or t == "thread" then
    viol("python-object: " .. where .. " gave a " .. t .. ": " .. tostring(v))
  elseif t == "table" then
    local mt = getmetatable(v)
    if mt ~= nil and mt ~= "TcpSocket" and mt ~= "TcpServer" and mt ~= "Timer" then
      viol("foreign-table: " .. where .. " gave a table with a metatable: " .. tostring(getmetatable(v)))
    end
  end
end

local function note_error(where, err)
  if type(err) ~= "string" then
    viol("error-not-string: " .. where .. " raised a " .. type(err) .. ": " .. tostring(err))
    err = tostring(err)
  end
  F.errs[#F.errs + 1] = where .. ": " .. err
end

-- pcall a function; results are checked for Python objects; errors noted.
local function call(where, fn, ...)
  local res = { pcall(fn, ...) }
  if not res[1] then
    note_error(where, res[2])
    return false
  end
  for i = 2, #res do check_value(where, res[i]) end
  return true, res[2], res[3]
end
F.call = call

local function cur(name)
  local g = F.gen[name] or 0
  local per = F.log[name]
  if not per then per = {}; F.log[name] = per end
  local l = per[g]
  if not l then
    l = { w = {}, wq = 0, r = {}, bw = 0, ev = {}, disc = 0, aborted = false, connected = false,
          lport = 0, rport = 0, closed_by_script = false, blind = {}, accepted = false, nread = 0 }
    for k in pairs(F.nilh[name] or {}) do l.blind[k] = true end
    per[g] = l
  end
  return l
end
F.cur = cur

-- sockets replaced under their name: what their late callbacks belong to
F.old = setmetatable({}, { __mode = "k" })

local function gen_of(name, sock)
  if sock == F.sock[name] then return F.gen[name] or 0 end
  return F.old[sock]
end

local function log_of(name, g)
  local per = F.log[name]
  return per and per[g]
end

local function new_gen(name)
  F.gen[name] = (F.gen[name] or 0) + 1
  return cur(name)
end

-- Record the ports of the current connection while it is connected or closing.
local function snap_ports(name, s, any_state)
  local l = cur(name)
  local okst, st = pcall(function() return s.state end)
  if not okst then return end
  if not any_state and st ~= S.CONNECTED_STATE and st ~= S.CLOSING_STATE then return end
  local ok, lp, rp = pcall(function() return s.local_port, s.remote_port end)
  if not ok or type(lp) ~= "number" or type(rp) ~= "number" or lp == 0 or rp == 0 then return end
  if l.lport == 0 then
    l.lport, l.rport = lp, rp
  elseif l.lport ~= lp or l.rport ~= rp then
    viol(string.format("ports-changed: %s gen %d was %d->%d, now %d->%d (two connections in one connect())",
      name, F.gen[name] or 0, l.lport, l.rport, lp, rp))
  end
end

function F.snap()
  for name, s in pairs(F.sock) do snap_ports(name, s) end
end

local function record_read(name, data, how, l)
  if data == nil then return end
  if type(data) == "table" then
    local parts = {}
    for i = 1, #data do parts[i] = string.char(data[i]) end
    data = table.concat(parts)
  end
  if type(data) ~= "string" then
    viol("read-type: " .. how .. " on " .. name .. " gave " .. type(data))
    return
  end
  if #data > 0 then
    local current = l == nil
    l = l or cur(name)
    l.r[#l.r + 1] = data
    l.nread = l.nread + #data
    if current then snap_ports(name, F.sock[name]) end
  end
end

local READS = { "read_string", "read_bytes", "read_line_string", "read_line_bytes",
                "read_all_string", "read_all_bytes" }
F.READS = READS

function F.read(name, how, max)
  local s = F.sock[name]
  if not s then return end
  local ok, data
  if max then ok, data = call(how, s[how], s, max) else ok, data = call(how, s[how], s) end
  if ok then record_read(name, data, how) end
end

function F.read_async(name, how, max)
  local s = F.sock[name]
  if not s then return end
  local cb = function(sock, result, err)
    if err ~= nil then note_error(how .. "_async cb", err) end
    check_value(how .. "_async result", result)
    local g = gen_of(name, sock)  -- the name may have been given to a new socket meanwhile
    local l = g and log_of(name, g)
    if l then record_read(name, result, how .. "_async", l) end
  end
  if max then call(how .. "_async", s[how .. "_async"], s, max, cb)
  else call(how .. "_async", s[how .. "_async"], s, cb) end
end

function F.peek(name, how, max)
  local s = F.sock[name]
  if not s then return end
  local ok, data = call(how, s[how], s, max)
  if ok and type(data) ~= "string" and type(data) ~= "table" then
    viol("peek-type: " .. how .. " gave " .. type(data))
  end
end

local function payload(name, k, size)
  local g = F.gen[name] or 0
  local head = string.format("<%s.%d.%d|", name, g, k)
  local body = {}
  for i = 1, size do body[i] = string.char((k * 7 + i * 13) % 256) end
  return head .. table.concat(body) .. ">"
end

local nwrites = 0
function F.write(name, size, as_bytes, async)
  local s = F.sock[name]
  if not s then return end
  nwrites = nwrites + 1
  local data = payload(name, nwrites, size)
  local l = cur(name)
  local function account(n, st)
    if type(n) ~= "number" then
      viol("write-result: write on " .. name .. " returned " .. type(n))
      return
    end
    if n > 0 and (st == S.HOST_LOOKUP_STATE or st == S.CONNECTING_STATE) then
      -- waits for the connection: if the attempt fails, the device closes
      -- with it (about_to_close, as Qt), possibly after a new connect()
      l.wrote_connecting = true
    end
    if n > 0 then
      if n ~= #data then viol(string.format("write-partial: write of %d returned %d", #data, n)) end
      l.w[#l.w + 1] = data
      l.wq = l.wq + n
      if l.disc > 0 and not l.aborted then l.late_write = (l.late_write or 0) + n end
    end
  end
  local arg = data
  if as_bytes then arg = { string.byte(data, 1, -1) } end
  local fname = as_bytes and "write_bytes" or "write_string"
  if async then
    -- the bytes belong to whatever connection is current when it runs
    call(fname .. "_async", s[fname .. "_async"], s, arg, function(sock, n, err)
      if err ~= nil then note_error(fname .. "_async cb", err) end
      local g = gen_of(name, sock)
      l = g and log_of(name, g)
      if l then account(n, sock.state) end
    end)
  else
    local st = s.state
    local ok, n = call(fname, s[fname], s, arg)
    if ok then account(n, st) end
  end
end

-- What a handler does after recording its event.
local act
function act(name, s, action)
  if action == "read" then F.read(name, READS[(F.events % #READS) + 1])
  elseif action == "write" then F.write(name, 5)
  elseif action == "abort" then F.abort(name)
  elseif action == "disconnect" then F.disconnect(name)
  elseif action == "close" then F.close(name)
  elseif action == "reconnect" then F.connect(name, "127.0.0.1", F.reconnect_port or 1, nil)
  elseif action == "error" then error("fuzz handler error")
  elseif action == "later_abort" or action == "later_reconnect" or action == "later_write" then
    -- the same from a timer (luanet.after), a loop turn later
    local what = action:sub(7)
    call("luanet.after", luanet.after, 0, function()
      if F.sock[name] == s then act(name, s, what) end
    end)
  end
end

local function recorder(name, hname)
  return function(s, a)
    F.events = F.events + 1
    if s ~= F.sock[name] then return end  -- an older socket of this name
    check_value(hname .. " argument", a)
    local l = cur(name)
    local st = s.state
    l.ev[#l.ev + 1] = hname .. (a ~= nil and ("=" .. tostring(a)) or "") .. "@" .. tostring(st)
    if l.aborted and hname == "disconnected_handler" and l.abort_may_disconnect then
      -- Qt: abort() of a connected socket ends it with one disconnected(), its own
      l.abort_may_disconnect = false
    elseif l.aborted and (hname == "ready_read_handler" or hname == "bytes_written_handler"
        or (hname == "error_handler" and not l.aborted_then_op and not l.ended_before_abort)
        or hname == "disconnected_handler") then
      viol(string.format("event-after-abort: %s on %s gen %d after abort()", hname, name, F.gen[name] or 0))
    end
    if hname == "connected_handler" then
      l.connected = true
    elseif hname == "about_to_close_handler" and l.prev_atc then
      -- the about_to_close of the previous connection's close()/abort(), which
      -- Qt runs inside that call: it may follow a connect() made right after
      local p = F.log[name][l.prev_atc]
      l.prev_atc = nil
      p.atc = (p.atc or 0) + 1
      if p.atc > 1 then viol(string.format("about-to-close-twice: %s gen %d", name, F.gen[name] - 1)) end
    elseif hname == "about_to_close_handler" then
      l.atc = (l.atc or 0) + 1
      if l.atc > 1 then viol(string.format("about-to-close-twice: %s gen %d", name, F.gen[name] or 0)) end
    elseif hname == "disconnected_handler" and l.prev_may_disc and not l.connected then
      -- connect() inside state_changed_handler(UNCONNECTED): the ended
      -- connection's own disconnected_handler still follows, as in Qt
      local p = F.log[name][l.prev_may_disc]
      l.prev_may_disc = nil
      p.disc = p.disc + 1
      if p.disc > 1 then viol(string.format("disconnected-twice: %s gen %d", name, l.prev_may_disc or -1)) end
    elseif hname == "disconnected_handler" then
      l.disc = l.disc + 1
      if l.disc > 1 then viol(string.format("disconnected-twice: %s gen %d", name, F.gen[name] or 0)) end
      if not l.connected and not l.accepted and not l.blind.connected_handler then
        viol(string.format("disconnected-never-connected: %s gen %d (events %s)", name,
          F.gen[name] or 0, table.concat(l.ev, " ")))
      end
    elseif hname == "bytes_written_handler" then
      if type(a) ~= "number" or a <= 0 then viol("bytes-written-arg: " .. tostring(a)) else l.bw = l.bw + a end
      if l.bw > l.wq then
        viol(string.format("written-over-queued: %s gen %d reports %d written, %d queued", name,
          F.gen[name] or 0, l.bw, l.wq))
      end
    elseif hname == "ready_read_handler" then
      if l.remote_closed then
        viol(string.format("ready-read-after-remote-close: %s gen %d: ready_read_handler after "
          .. "error_handler(REMOTE_HOST_CLOSED) (API.md: every byte first)", name, F.gen[name] or 0))
      end
      local n = s.bytes_available
      if type(n) ~= "number" or n < 0 then viol("bytes-available-type: " .. tostring(n)) end
    elseif hname == "state_changed_handler" then
      if type(a) ~= "number" or a < 0 or a > 5 then viol("state-value: " .. tostring(a)) end
    elseif hname == "error_handler" then
      if type(a) ~= "number" then viol("error-code-type: " .. type(a)) end
      if a == S.REMOTE_HOST_CLOSED_ERROR then l.remote_closed = true end
    end
    snap_ports(name, s)
    local action = F.act[name] and F.act[name][hname]
    if action then
      local g = F.gen[name] or 0
      local ending = hname == "state_changed_handler" and a == S.UNCONNECTED_STATE
          and l.connected and l.disc == 0 and not l.aborted
      act(name, s, action)
      if ending and (F.gen[name] or 0) > g then cur(name).prev_may_disc = g end
    end
  end
end

function F.set_handler(name, hname, action)
  local s = F.sock[name]
  if not s then return end
  F.act[name] = F.act[name] or {}
  F.nilh[name] = F.nilh[name] or {}
  if action == "nil" then
    call("set " .. hname, function() s[hname] = nil end)
    F.nilh[name][hname] = true
    cur(name).blind[hname] = true
  else
    F.act[name][hname] = action ~= "record" and action or nil
    F.nilh[name][hname] = nil
    call("set " .. hname, function() s[hname] = recorder(name, hname) end)
  end
end

local function install(name, s)
  F.sock[name] = s
  F.act[name], F.nilh[name] = {}, {}
  for _, h in ipairs(HANDLERS) do
    local ok, err = pcall(function() s[h] = recorder(name, h) end)
    if not ok then note_error("install " .. h, err) end
  end
end

function F.new_socket(name)
  local ok, s = call("TcpSocket.new", S.new)
  if ok then
    if F.sock[name] then F.old[F.sock[name]] = F.gen[name] or 0 end
    install(name, s)
    new_gen(name)  -- a new object: nothing of the old one's connections
  end
end

function F.connect(name, host, port, mode)
  local s = F.sock[name]
  if not s then return end
  local ok, res
  if mode then ok, res = call("connect", s.connect, s, host, port, mode)
  else ok, res = call("connect", s.connect, s, host, port) end
  local old = cur(name)
  old.aborted_then_op = true
  if ok and res == true then
    local g = F.gen[name] or 0
    local l = new_gen(name)
    l.mode = mode or 3
    if (old.closed_open or old.wrote_connecting) and (old.atc or 0) == 0 then l.prev_atc = g end
    if F.sock[name] ~= s then return end
    snap_ports(name, s)
  elseif ok and res ~= false then
    viol("connect-result: " .. tostring(res))
  end
end

function F.disconnect(name)
  local s = F.sock[name]
  if not s then return end
  cur(name).closed_by_script = true
  call("disconnect", s.disconnect, s)
end

function F.close(name)
  local s = F.sock[name]
  if not s then return end
  local l = cur(name)
  local before = #l.ev
  local was = s.state
  l.closed_by_script = true
  if s.is_open then l.closed_open = true end
  call("close", s.close, s)
  local n = s.bytes_available
  if n ~= 0 then viol(string.format("close-keeps-bytes: bytes_available %s right after close()", tostring(n))) end
end

function F.abort(name)
  local s = F.sock[name]
  if not s then return end
  local l = cur(name)
  local st = s.state
  if not l.aborted then
    -- one disconnected may still come: abort()'s own (connected, closing),
    -- or that of an end before abort() (a close that finished, a remote
    -- close), which Qt ran before the call
    l.abort_may_disconnect = (st == S.CONNECTED_STATE or st == S.CLOSING_STATE
      or st == S.UNCONNECTED_STATE) and l.disc == 0
    -- ended before abort() (a failed connect, a close with nothing to send):
    -- the error reporting that end ran before abort() in Qt, and still runs
    l.ended_before_abort = st == S.UNCONNECTED_STATE
  end
  if s.is_open then l.closed_open = true end
  call("abort", s.abort, s)
  l.aborted = true
  local n = s.bytes_available
  if n ~= 0 then viol(string.format("abort-keeps-bytes: bytes_available %s right after abort()", tostring(n))) end
end

function F.bind(name, port, async)
  local s = F.sock[name]
  if not s then return end
  cur(name).aborted_then_op = true  -- a bind error after abort() is bind's, not the connection's
  if async then
    call("bind_async", s.bind_async, s, port, function(sock, r, err)
      -- the bind runs now: an error it reports is its own, whichever connection is current
      local g = gen_of(name, sock)
      local l = g and log_of(name, g)
      if l then l.aborted_then_op = true end
      check_value("bind_async result", r)
      if err ~= nil then note_error("bind_async cb", err) end
    end)
  else
    call("bind", s.bind, s, port)
  end
end

function F.misc(name, what)
  local s = F.sock[name]
  if not s then return end
  if what == "seek" then call("seek", s.seek, s, 0)
  elseif what == "reset" then call("reset", s.reset, s)
  elseif what == "open" then call("open", s.open, s, 3)
  elseif what == "tostring" then call("tostring", tostring, s)
  elseif what == "dot" then call("dot-call", s.read_string)  -- forgot the colon
  elseif what == "rbs" then call("set read_buffer_size", function() s.read_buffer_size = 16 end)
  elseif what == "rbs0" then call("set read_buffer_size", function() s.read_buffer_size = 0 end)
  elseif what == "typo" then call("typo", function() s.redy_read_handler = print end)
  elseif what == "bad_write" then call("write_bytes", s.write_bytes, s, { 1, 256 })
  end
end

function F.props(name)
  local s = F.sock[name]
  if not s then return end
  for _, p in ipairs(SOCKET_PROPS) do
    local ok, v = call("get " .. p, function() return s[p] end)
    if ok and (p == "remote_address" or p == "local_address") and type(v) == "string"
        and v:sub(1, 7) == "::ffff:" then
      viol("mapped-address: " .. p .. " is " .. v)
    end
  end
end

---------------------------------------------------------------- servers

function F.new_server(name)
  local ok, srv = call("TcpServer.new", net.TcpServer.new)
  if not ok then return end
  -- the server this replaces is collected, and closes the sockets it handed out
  for aname, owner in pairs(F.owner or {}) do
    if owner == name then cur(aname).closed_by_script = true end
  end
  F.srv[name] = srv
  F.srv_act = F.srv_act or {}
  F.srv_act[name] = "take"
  call("set new_connection_handler", function()
    srv.new_connection_handler = function(server)
      F.events = F.events + 1
      if F.srv[name] ~= server then return end
      local a = F.srv_act[name]
      if a == "take" then F.take(name)
      elseif a == "error" then error("fuzz new_connection_handler error") end
    end
  end)
  call("set accept_error_handler", function()
    srv.accept_error_handler = function(server, e) check_value("accept_error_handler", e) end
  end)
end

function F.take(name, async)
  local srv = F.srv[name]
  if not srv then return end
  local function got(sock)
    check_value("next_pending_connection", sock)
    if sock == nil then return end
    F.accepted = F.accepted + 1
    local aname = "a" .. F.accepted
    F.owner = F.owner or {}
    F.owner[aname] = name
    install(aname, sock)
    local l = new_gen(aname)
    l.accepted = true
    l.connected = true
    snap_ports(aname, sock, true)
  end
  if async then
    call("next_pending_connection_async", srv.next_pending_connection_async, srv, function(_, sock) got(sock) end)
  else
    local ok, sock = call("next_pending_connection", srv.next_pending_connection, srv)
    if ok then got(sock) end
  end
end

function F.srv_op(name, op, arg)
  local srv = F.srv[name]
  if not srv then return end
  if op == "listen" then call("listen", srv.listen, srv, arg)
  elseif op == "listen_async" then
    call("listen_async", srv.listen_async, srv, arg, function(_, r, err)
      check_value("listen_async result", r)
      if err ~= nil then note_error("listen_async cb", err) end
    end)
  elseif op == "close" then call("server close", srv.close, srv)
  elseif op == "pause" then call("pause_accepting", srv.pause_accepting, srv)
  elseif op == "resume" then call("resume_accepting", srv.resume_accepting, srv)
  elseif op == "maxpending" then call("set max_pending_connections", function() srv.max_pending_connections = arg end)
  elseif op == "action" then F.srv_act[name] = arg
  elseif op == "nilhandler" then call("nil new_connection_handler", function() srv.new_connection_handler = nil end)
  elseif op == "tostring" then call("tostring", tostring, srv)
  elseif op == "props" then
    for _, p in ipairs(SERVER_PROPS) do call("get " .. p, function() return srv[p] end) end
  end
end

function F.port(name)
  local srv = F.srv[name]
  if not srv then return 0 end
  local ok, p = pcall(function() return srv.port end)
  if ok and type(p) == "number" then return p end
  return 0
end

-- Everything Python checks, flattened: one row per connection.
function F.rows()
  local rows = {}
  for name, per in pairs(F.log) do
    for g, l in pairs(per) do
      local blind = {}
      for k in pairs(l.blind) do blind[#blind + 1] = k end
      rows[#rows + 1] = { name = name, gen = g, w = table.concat(l.w), wq = l.wq, r = table.concat(l.r),
                          bw = l.bw, ev = table.concat(l.ev, " "), disc = l.disc, aborted = l.aborted,
                          connected = l.connected, lport = l.lport, rport = l.rport,
                          closed_by_script = l.closed_by_script, blind = table.concat(blind, ","),
                          accepted = l.accepted, late_write = l.late_write or 0,
                          current = (F.gen[name] == g), readable = (l.mode or 3) % 2 == 1 }
    end
  end
  return rows
end
