-- net.TcpSocket: constants, connecting, states, closing, binding, lifetime.
-- Every spec acts as both server and client; luanet.run_until drives the loop.

local TcpSocket = net.TcpSocket
local helpers = require "spec.helpers"
local wait, collect, connected, free_port = helpers.wait, helpers.collect, helpers.connected, helpers.free_port

describe("net.TcpSocket", function()
  local made = helpers.closed_after_each()
  local keep, listening_server, pair = made.keep, made.listening_server, made.pair

  describe("constants", function()
    it("has the states with the docs' values", function()
      assert.are.equal(0, TcpSocket.UNCONNECTED_STATE)
      assert.are.equal(1, TcpSocket.HOST_LOOKUP_STATE)
      assert.are.equal(2, TcpSocket.CONNECTING_STATE)
      assert.are.equal(3, TcpSocket.CONNECTED_STATE)
      assert.are.equal(4, TcpSocket.BOUND_STATE)
      assert.are.equal(5, TcpSocket.CLOSING_STATE)
    end)

    it("has the error codes", function()
      assert.are.equal(0, TcpSocket.CONNECTION_REFUSED_ERROR)
      assert.are.equal(1, TcpSocket.REMOTE_HOST_CLOSED_ERROR)
      assert.are.equal(2, TcpSocket.HOST_NOT_FOUND_ERROR)
      assert.are.equal(3, TcpSocket.SOCKET_ACCESS_ERROR)
      assert.are.equal(4, TcpSocket.SOCKET_RESOURCE_ERROR)
      assert.are.equal(5, TcpSocket.SOCKET_TIMEOUT_ERROR)
      assert.are.equal(6, TcpSocket.DATAGRAM_TOO_LARGE_ERROR)
      assert.are.equal(7, TcpSocket.NETWORK_ERROR)
      assert.are.equal(8, TcpSocket.ADDRESS_IN_USE_ERROR)
      assert.are.equal(9, TcpSocket.SOCKET_ADDRESS_NOT_AVAILABLE_ERROR)
      assert.are.equal(10, TcpSocket.UNSUPPORTED_SOCKET_OPERATION_ERROR)
      assert.are.equal(11, TcpSocket.UNFINISHED_SOCKET_OPERATION_ERROR)
      assert.are.equal(19, TcpSocket.OPERATION_ERROR)
      assert.are.equal(22, TcpSocket.TEMPORARY_ERROR)
      assert.are.equal(-1, TcpSocket.UNKNOWN_ERROR)
    end)

    it("has the open modes", function()
      assert.are.equal(0, TcpSocket.NOT_OPEN_MODE)
      assert.are.equal(1, TcpSocket.READ_ONLY_MODE)
      assert.are.equal(2, TcpSocket.WRITE_ONLY_MODE)
      assert.are.equal(3, TcpSocket.READ_WRITE_MODE)
      assert.are.equal(4, TcpSocket.APPEND_MODE)
      assert.are.equal(8, TcpSocket.TRUNCATE_MODE)
    end)
  end)

  describe("new()", function()
    it("starts unconnected, closed and empty", function()
      local socket = keep(net.TcpSocket.new())
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
      assert.is_nil(socket.error)
      assert.are.equal("", socket.error_string)
      assert.is_false(socket.valid)
      assert.are.equal("", socket.local_address)
      assert.are.equal(0, socket.local_port)
      assert.are.equal("", socket.remote_address)
      assert.are.equal(0, socket.remote_port)
      assert.is_false(socket.is_open)
      assert.are.equal(TcpSocket.NOT_OPEN_MODE, socket.open_mode)
      assert.are.equal(0, socket.bytes_available)
      assert.are.equal(0, socket.bytes_to_write)
      assert.is_true(socket.at_end)
      assert.are.equal(0, socket.pos)
      assert.is_false(socket.readable)
      assert.is_false(socket.writeable)
      assert.is_true(socket.sequential)
      assert.is_false(socket.can_read_line)
    end)
  end)

  describe("connect()", function()
    it("goes HOST_LOOKUP, CONNECTING, CONNECTED with the handlers in Qt's order", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      local states, log = {}, {}
      local state_at_connected
      socket.state_changed_handler = function(s, state)
        assert.are.equal(socket, s)
        states[#states + 1] = state
        log[#log + 1] = "state " .. state
      end
      socket.host_found_handler = function(s) log[#log + 1] = "host_found" end
      socket.connected_handler = function(s)
        state_at_connected = s.state
        log[#log + 1] = "connected"
      end
      socket:connect("127.0.0.1", server.port)
      assert.is_true(socket.state == TcpSocket.HOST_LOOKUP_STATE or socket.state == TcpSocket.CONNECTING_STATE)
      assert.are.equal(0, #log) -- handlers run from the loop, never inside connect()
      assert.is_true(wait(function() return state_at_connected ~= nil end))
      luanet.run_for(0.05)
      assert.same({ TcpSocket.HOST_LOOKUP_STATE, TcpSocket.CONNECTING_STATE, TcpSocket.CONNECTED_STATE }, states)
      -- Qt 6's order (checked against PyQt6): CONNECTING, then host_found
      assert.same({ "state " .. TcpSocket.HOST_LOOKUP_STATE, "state " .. TcpSocket.CONNECTING_STATE, "host_found" },
        { log[1], log[2], log[3] })
      assert.are.equal(5, #log) -- connected_handler ran exactly once
      assert.are.equal(TcpSocket.CONNECTED_STATE, state_at_connected)
    end)

    it("reports every state to a handler set right after connect() (handlers run later)", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      local states = {}
      socket:connect("127.0.0.1", server.port)
      socket.state_changed_handler = function(s, state) states[#states + 1] = state end
      assert.is_true(wait(function() return #states == 3 end))
      assert.same({ TcpSocket.HOST_LOOKUP_STATE, TcpSocket.CONNECTING_STATE, TcpSocket.CONNECTED_STATE }, states)
    end)

    it("stops calling a handler once it is set back to nil", function()
      local client, peer, server = pair()
      local errors = 0
      client.error_handler = function() errors = errors + 1 end
      client.error_handler = nil
      local disconnected = false
      client.disconnected_handler = function() disconnected = true end
      peer:disconnect()
      assert.is_true(wait(function() return disconnected end))
      assert.are.equal(0, errors)
      assert.are.equal(TcpSocket.REMOTE_HOST_CLOSED_ERROR, client.error)
    end)

    it("leaves the socket connected, open for reading and writing", function()
      local client, peer, server = pair()
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state)
      assert.is_true(client.valid)
      assert.is_true(client.is_open)
      assert.are.equal(TcpSocket.READ_WRITE_MODE, client.open_mode)
      assert.is_true(client.readable)
      assert.is_true(client.writeable)
      assert.is_nil(client.error)
      assert.are.equal("", client.error_string)
    end)

    it("knows both ends, IPv4 in dotted form", function()
      local client, peer, server = pair()
      assert.are.equal("127.0.0.1", client.local_address)
      assert.are.equal("127.0.0.1", client.remote_address)
      assert.are.equal(server.port, client.remote_port)
      assert.is_true(client.local_port > 0)
      assert.are.equal("127.0.0.1", peer.remote_address) -- never "::ffff:127.0.0.1"
      assert.are.equal("127.0.0.1", peer.local_address)
      assert.are.equal(client.local_port, peer.remote_port)
      assert.are.equal(server.port, peer.local_port)
    end)

    it("resolves host names", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      local found = false
      socket.host_found_handler = function() found = true end
      socket:connect("localhost", server.port)
      assert.is_true(wait(function() return connected(socket) end))
      assert.is_true(found)
      assert.are.equal(server.port, socket.remote_port)
    end)

    it("honours READ_ONLY_MODE", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      socket:connect("127.0.0.1", server.port, TcpSocket.READ_ONLY_MODE)
      assert.is_true(wait(function() return connected(socket) end))
      assert.are.equal(TcpSocket.READ_ONLY_MODE, socket.open_mode)
      assert.is_true(socket.readable)
      assert.is_false(socket.writeable)
      assert.are.equal(-1, socket:write_string("nope"))
      assert.are_not.equal("", socket.error_string)
    end)

    it("honours WRITE_ONLY_MODE", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      socket:connect("127.0.0.1", server.port, TcpSocket.WRITE_ONLY_MODE)
      assert.is_true(wait(function() return connected(socket) end))
      assert.are.equal(TcpSocket.WRITE_ONLY_MODE, socket.open_mode)
      assert.is_false(socket.readable)
      assert.is_true(socket.writeable)
      assert.are.equal(5, socket:write_string("hello"))
    end)

    it("reports CONNECTION_REFUSED_ERROR through error_handler", function()
      local port = free_port()
      local socket = keep(net.TcpSocket.new())
      local errors, connected_calls = {}, 0
      socket.error_handler = function(s, err)
        assert.are.equal(socket, s)
        errors[#errors + 1] = err
      end
      socket.connected_handler = function() connected_calls = connected_calls + 1 end
      socket:connect("127.0.0.1", port)
      assert.is_true(wait(function() return #errors > 0 end))
      luanet.run_for(0.05)
      assert.same({ TcpSocket.CONNECTION_REFUSED_ERROR }, errors)
      assert.are.equal(TcpSocket.CONNECTION_REFUSED_ERROR, socket.error)
      assert.are_not.equal("", socket.error_string)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
      assert.is_false(socket.valid)
      assert.are.equal(0, connected_calls)
    end)

    it("reports HOST_NOT_FOUND_ERROR for a name that does not resolve", function()
      local socket = keep(net.TcpSocket.new())
      local err
      socket.error_handler = function(_, e) err = e end
      socket:connect("no-such-host.invalid", 80) -- .invalid never resolves (RFC 2606)
      assert.is_true(luanet.run_until(function() return err ~= nil end, 15))
      assert.are.equal(TcpSocket.HOST_NOT_FOUND_ERROR, err)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
      assert.are_not.equal("", socket.error_string)
    end)

    it("reaches a server over IPv6 too (listen binds IPv6 and IPv4)", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      local err
      socket.error_handler = function(_, e) err = e end
      socket:connect("::1", server.port)
      assert.is_true(wait(function() return connected(socket) or err ~= nil end))
      if err ~= nil and err ~= TcpSocket.CONNECTION_REFUSED_ERROR then
        pending("this machine has no IPv6 loopback (error " .. err .. ": " .. socket.error_string .. ")")
      end
      assert.is_nil(err) -- refused would mean the server did not listen on IPv6
      assert.is_true(wait(function() return server.has_pending_connections end))
      local peer = keep(server:next_pending_connection())
      assert.are.equal("::1", socket.remote_address)
      assert.are.equal("::1", peer.remote_address)
      assert.are.equal(socket.local_port, peer.remote_port)
    end)

    it("can connect again after a failure", function()
      local port = free_port()
      local socket = keep(net.TcpSocket.new())
      local err
      socket.error_handler = function(_, e) err = e end
      socket:connect("127.0.0.1", port)
      assert.is_true(wait(function() return err ~= nil end))
      local server = listening_server()
      socket:connect("127.0.0.1", server.port)
      assert.is_true(wait(function() return connected(socket) and server.has_pending_connections end))
    end)
  end)

  describe("disconnect()", function()
    it("sends every written byte before closing", function()
      local client, peer = pair()
      local chunk = string.rep("0123456789abcdef", 4096) -- 64 KiB
      local n = 64                                       -- 4 MiB in all
      for _ = 1, n do assert.are.equal(#chunk, client:write_string(chunk)) end
      local states = {}
      client.state_changed_handler = function(_, state) states[#states + 1] = state end
      local client_disconnected = spy.new(function() end)
      client.disconnected_handler = function(s) client_disconnected(s) end
      client:disconnect()

      local received, peer_gone = {}, false
      peer.ready_read_handler = function(s) received[#received + 1] = s:read_all_string() end
      peer.disconnected_handler = function() peer_gone = true end
      assert.is_true(wait(function() return peer_gone end))
      local data = table.concat(received) .. peer:read_all_string()
      assert.are.equal(#chunk * n, #data)
      assert.is_true(data == string.rep(chunk, n))

      assert.is_true(wait(function() return client.state == TcpSocket.UNCONNECTED_STATE end))
      luanet.run_for(0.05)
      assert.spy(client_disconnected).was.called(1)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, states[#states])
      assert.is_false(client.valid)
    end)

    it("stays in CLOSING_STATE while written data is unsent", function()
      local client, peer = pair()
      local size = 16 * 1024 * 1024 -- more than the kernel takes at once
      assert.are.equal(size, client:write_string(string.rep("x", size)))
      local states = {}
      client.state_changed_handler = function(_, state) states[#states + 1] = state end
      client:disconnect()
      local pending_after_disconnect = client.bytes_to_write
      if pending_after_disconnect > 0 then
        assert.are.equal(TcpSocket.CLOSING_STATE, client.state)
      end
      local got = 0
      peer.ready_read_handler = function(s) got = got + #s:read_all_string() end
      assert.is_true(wait(function() return client.state == TcpSocket.UNCONNECTED_STATE end))
      assert.is_true(wait(function() return got + peer.bytes_available == size end))
      if pending_after_disconnect > 0 then
        assert.same({ TcpSocket.CLOSING_STATE, TcpSocket.UNCONNECTED_STATE }, states)
      else
        assert.are.equal(TcpSocket.UNCONNECTED_STATE, states[#states])
      end
    end)

    it("runs disconnected_handler from the loop, once", function()
      local client, peer = pair()
      local calls = 0
      client.disconnected_handler = function(s)
        assert.are.equal(client, s)
        calls = calls + 1
      end
      client:disconnect()
      assert.are.equal(0, calls)
      assert.is_true(wait(function() return calls > 0 end))
      luanet.run_for(0.05)
      assert.are.equal(1, calls)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
    end)
  end)

  describe("abort()", function()
    it("closes at once and the peer notices", function()
      local client, peer = pair()
      local peer_gone = false
      peer.disconnected_handler = function() peer_gone = true end
      client:abort()
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
      assert.is_false(client.valid)
      assert.is_true(wait(function() return peer_gone end))
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, peer.state)
    end)

    it("is harmless on an unconnected socket and twice", function()
      local socket = keep(net.TcpSocket.new())
      socket:abort()
      socket:abort()
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
    end)

    it("as are disconnect() and close() on an unconnected socket", function()
      local socket = keep(net.TcpSocket.new())
      socket:disconnect()
      socket:close()
      luanet.run_for(0.02)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
    end)
  end)

  describe("close()", function()
    it("calls about_to_close_handler, then disconnects", function()
      local client, peer = pair()
      local log = {}
      client.about_to_close_handler = function(s)
        assert.are.equal(client, s)
        log[#log + 1] = "about_to_close"
      end
      client.disconnected_handler = function() log[#log + 1] = "disconnected" end
      local peer_gone = false
      peer.disconnected_handler = function() peer_gone = true end
      client:write_string("last words")
      client:close()
      local heard = ""
      peer.ready_read_handler = function(s) heard = heard .. s:read_all_string() end
      assert.is_true(wait(function() return peer_gone and #log == 2 end))
      assert.same({ "about_to_close", "disconnected" }, log)
      assert.are.equal("last words", heard .. peer:read_all_string())
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
      assert.is_false(client.is_open)
    end)
  end)

  describe("remote close", function()
    it("delivers data, then REMOTE_HOST_CLOSED_ERROR while connected, then disconnected", function()
      local client, peer = pair()
      local log = {}
      client.ready_read_handler = function(s) log[#log + 1] = "read " .. s:read_all_string() end
      client.error_handler = function(s, err)
        log[#log + 1] = "error " .. err .. " in state " .. s.state
      end
      client.disconnected_handler = function(s)
        log[#log + 1] = "disconnected in state " .. s.state
      end
      peer:write_string("goodbye")
      peer:disconnect()
      assert.is_true(wait(function() return #log > 0 and log[#log]:find("^disconnected") end))
      assert.same({
        "read goodbye",
        "error " .. TcpSocket.REMOTE_HOST_CLOSED_ERROR .. " in state " .. TcpSocket.CONNECTED_STATE,
        "disconnected in state " .. TcpSocket.UNCONNECTED_STATE,
      }, log)
      assert.are.equal(TcpSocket.REMOTE_HOST_CLOSED_ERROR, client.error)
    end)

    it("keeps unread bytes readable after the connection is gone", function()
      local client, peer = pair()
      local gone = false
      client.disconnected_handler = function() gone = true end
      peer:write_string("unread\n")
      peer:disconnect()
      assert.is_true(wait(function() return gone end))
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
      assert.are.equal(7, client.bytes_available)
      assert.is_true(client.can_read_line)
      assert.are.equal("unread\n", client:read_line_string())
      assert.are.equal(0, client.bytes_available)
    end)

    it("keeps unread bytes only until close()", function()
      local client, peer = pair()
      local gone = false
      client.disconnected_handler = function() gone = true end
      peer:write_string("never read")
      peer:disconnect()
      assert.is_true(wait(function() return gone end))
      assert.are.equal(10, client.bytes_available)
      client:close()
      assert.are.equal(0, client.bytes_available)
      assert.are.equal("", client:read_all_string())
    end)

    it("is seen by the server side when a client goes away", function()
      local client, peer = pair()
      local err, gone = nil, false
      peer.error_handler = function(_, e) err = e end
      peer.disconnected_handler = function() gone = true end
      client:disconnect()
      assert.is_true(wait(function() return gone end))
      assert.are.equal(TcpSocket.REMOTE_HOST_CLOSED_ERROR, err)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, peer.state)
    end)
  end)

  describe("writing", function()
    it("returns the number of bytes queued and reports them as written", function()
      local client, peer = pair()
      local written = 0
      client.bytes_written_handler = function(s, n)
        assert.are.equal(client, s)
        written = written + n
      end
      assert.are.equal(5, client:write_string("hello"))
      assert.are.equal(3, client:write_bytes({ 1, 2, 3 }))
      assert.are.equal(0, client:write_string(""))
      assert.is_true(wait(function() return written == 8 end))
      assert.is_true(wait(function() return client.bytes_to_write == 0 end))
    end)

    it("returns -1 with error_string set when not connected", function()
      local socket = keep(net.TcpSocket.new())
      assert.are.equal(-1, socket:write_string("hello"))
      assert.are_not.equal("", socket.error_string)
      assert.are.equal(-1, socket:write_bytes({ 104, 105 }))
    end)

    it("returns -1 after the socket was closed", function()
      local client = pair()
      client:abort()
      assert.are.equal(-1, client:write_string("too late"))
      assert.are_not.equal("", client.error_string)
    end)
  end)

  describe("bind()", function()
    it("binds to a free local port", function()
      local socket = keep(net.TcpSocket.new())
      assert.is_true(socket:bind(0))
      assert.are.equal(TcpSocket.BOUND_STATE, socket.state)
      assert.is_true(socket.local_port > 0)
    end)

    it("uses the bound port for the outgoing connection", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      assert.is_true(socket:bind(0))
      local port = socket.local_port
      socket:connect("127.0.0.1", server.port)
      assert.is_true(wait(function() return connected(socket) and server.has_pending_connections end))
      local peer = keep(server:next_pending_connection())
      assert.are.equal(port, socket.local_port)
      assert.are.equal(port, peer.remote_port)
    end)

    it("returns false with error_string set when the port is taken", function()
      local server = listening_server()
      local socket = keep(net.TcpSocket.new())
      assert.is_false(socket:bind(server.port))
      assert.are_not.equal("", socket.error_string)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, socket.state)
    end)

    it("has an _async twin: callback(socket, true, nil)", function()
      local socket = keep(net.TcpSocket.new())
      local done, s_arg, result, err = false, nil, nil, "unset"
      socket:bind_async(0, function(s, r, e) done, s_arg, result, err = true, s, r, e end)
      assert.is_false(done)
      assert.is_true(wait(function() return done end))
      assert.are.equal(socket, s_arg)
      assert.is_true(result)
      assert.is_nil(err)
      assert.are.equal(TcpSocket.BOUND_STATE, socket.state)
    end)
  end)

  describe("sequential device", function()
    it("cannot seek, reset or open", function()
      local client = pair()
      assert.is_false(client:seek(0))
      assert.is_false(client:reset())
      assert.is_false(client:open(TcpSocket.READ_WRITE_MODE))
      assert.are.equal(0, client.pos)
      assert.is_true(client.sequential)
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state) -- open() changed nothing
    end)
  end)

  describe("tostring()", function()
    it("names the class", function()
      local socket = keep(net.TcpSocket.new())
      assert.is_truthy(tostring(socket):find("TcpSocket", 1, true))
      local client = pair()
      assert.is_truthy(tostring(client):find("TcpSocket", 1, true))
    end)
  end)

  describe("lifetime", function()
    it("closes a TcpSocket.new() socket when it is garbage-collected", function()
      local server = listening_server()
      local function forgotten_client()
        local socket = net.TcpSocket.new()
        socket:connect("127.0.0.1", server.port)
        assert.is_true(wait(function() return connected(socket) and server.has_pending_connections end))
      end
      forgotten_client()
      local peer = keep(server:next_pending_connection())
      local gone = false
      peer.disconnected_handler = function() gone = true end
      collect()
      assert.is_true(wait(function() return gone end))
    end)

    it("keeps its handlers through garbage collections", function()
      local client, peer = pair()
      local echoed, expected = "", {}
      client.ready_read_handler = function(s) echoed = echoed .. s:read_all_string() end
      peer.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
      for i = 1, 20 do
        expected[i] = "message " .. i .. ";"
        client:write_string(expected[i])
        collectgarbage()
        luanet.run_for(0.001)
      end
      assert.is_true(wait(function() return #echoed >= #table.concat(expected) end))
      assert.are.equal(table.concat(expected), echoed)
    end)
  end)
end)
