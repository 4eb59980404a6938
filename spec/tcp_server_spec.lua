-- net.TcpServer, as the docs page and API.md describe it.
-- Every spec acts as both server and client; luanet.run_until drives the loop.

local TcpSocket = net.TcpSocket
local helpers = require "spec.helpers"
local wait, collect, connected, free_port = helpers.wait, helpers.collect, helpers.connected, helpers.free_port

describe("net.TcpServer", function()
  local made = helpers.closed_after_each()
  local keep, new_server, listening_server = made.keep, made.new_server, made.listening_server

  local function connect(port)
    local client = keep(net.TcpSocket.new())
    client:connect("127.0.0.1", port)
    return client
  end

  describe("new()", function()
    it("starts not listening, port 0, no error, default limit 30", function()
      local server = new_server()
      assert.is_false(server.listening)
      assert.are.equal(0, server.port)
      assert.are.equal("", server.error_string)
      assert.is_nil(server.error)
      assert.are.equal(30, server.max_pending_connections)
      assert.is_false(server.has_pending_connections)
    end)

    it("makes independent servers", function()
      local a, b = new_server(), new_server()
      assert.are_not.equal(a, b)
      a.max_pending_connections = 3
      assert.are.equal(30, b.max_pending_connections)
    end)
  end)

  describe("listen()", function()
    it("picks a free port when given 0", function()
      local server = new_server()
      assert.is_true(server:listen(0))
      assert.is_true(server.listening)
      assert.is_true(server.port > 0 and server.port <= 65535)
      assert.are.equal("", server.error_string)
    end)

    it("listens on the port it is given", function()
      local port = free_port()
      local server = new_server()
      assert.is_true(server:listen(port))
      assert.are.equal(port, server.port)
      assert.is_true(server.listening)
    end)

    it("returns false and sets error_string when the port is in use", function()
      local first = listening_server()
      local second = new_server()
      assert.is_false(second:listen(first.port))
      assert.is_false(second.listening)
      assert.are.equal(0, second.port)
      assert.are_not.equal("", second.error_string)
      assert.are.equal(TcpSocket.ADDRESS_IN_USE_ERROR, second.error)
      assert.is_true(first.listening) -- the first one is not disturbed
    end)

    it("returns false for a port out of range, without raising", function()
      local server = new_server()
      assert.is_false(server:listen(65536))
      assert.is_false(server.listening)
      assert.are.equal(0, server.port)
      assert.are_not.equal("", server.error_string)
      assert.is_not_nil(server.error)

      local other = new_server()
      assert.is_false(other:listen(-1))
      assert.is_false(other.listening)
      assert.are_not.equal("", other.error_string)
    end)

    it("returns false when already listening, and keeps listening", function()
      local server = listening_server()
      local port = server.port
      assert.is_false(server:listen(0))
      assert.are_not.equal("", server.error_string)
      assert.is_true(server.listening)
      assert.are.equal(port, server.port)
    end)

    it("accepts connections from 127.0.0.1 and localhost", function()
      local server = listening_server()
      local a = connect(server.port)
      local b = keep(net.TcpSocket.new())
      b:connect("localhost", server.port)
      assert.is_true(wait(function() return connected(a) and connected(b) end))
    end)
  end)

  describe("listen_async()", function()
    it("delivers the result later as callback(server, true, nil)", function()
      local server = new_server()
      local calls = {}
      server:listen_async(0, function(...)
        calls[#calls + 1] = { n = select("#", ...), ... }
      end)
      assert.are.equal(0, #calls) -- never inside the call that caused it
      assert.is_true(wait(function() return #calls > 0 end))
      luanet.run_for(0.05)
      assert.are.equal(1, #calls)
      local server_arg, result, err = calls[1][1], calls[1][2], calls[1][3]
      assert.are.equal(server, server_arg)
      assert.is_true(result)
      assert.is_nil(err)
      assert.is_true(server.listening)
      assert.is_true(server.port > 0)
    end)

    it("delivers false with a nil error when the port is in use", function()
      local first = listening_server()
      local server = new_server()
      local done, result, err = false, nil, nil
      server:listen_async(first.port, function(_, r, e) done, result, err = true, r, e end)
      assert.is_true(wait(function() return done end))
      assert.is_false(result)
      assert.is_nil(err)
      assert.is_false(server.listening)
      assert.are_not.equal("", server.error_string)
    end)

    it("gives a server that accepts connections", function()
      local server = new_server()
      local ok
      server:listen_async(0, function(_, result) ok = result end)
      assert.is_true(wait(function() return ok ~= nil end))
      assert.is_true(ok)
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
    end)
  end)

  describe("new_connection_handler", function()
    it("is called once for every connection that joins the queue", function()
      local server = listening_server()
      local count = 0
      local handler = spy.new(function() count = count + 1 end)
      -- a spy is a callable table; handler fields take functions, so wrap it
      server.new_connection_handler = function(srv) handler(srv) end
      local clients = { connect(server.port), connect(server.port), connect(server.port) }
      assert.is_true(wait(function() return count == 3 end))
      luanet.run_for(0.05)
      assert.spy(handler).was.called(3)
      for _, client in ipairs(clients) do assert.is_true(connected(client)) end
    end)

    it("receives the server itself", function()
      local server = listening_server()
      local seen
      server.new_connection_handler = function(srv) seen = srv end
      connect(server.port)
      assert.is_true(wait(function() return seen ~= nil end))
      assert.are.equal(server, seen)
    end)

    it("can take the connection inside the handler", function()
      local server = listening_server()
      local peer
      server.new_connection_handler = function(srv)
        peer = keep(srv:next_pending_connection())
      end
      connect(server.port)
      assert.is_true(wait(function() return peer ~= nil end))
      assert.are.equal(TcpSocket.CONNECTED_STATE, peer.state)
      assert.is_false(server.has_pending_connections)
    end)

    it("can be removed by assigning nil", function()
      local server = listening_server()
      local handler = spy.new(function() end)
      server.new_connection_handler = function(srv) handler(srv) end
      server.new_connection_handler = nil
      connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections end))
      assert.spy(handler).was.called(0)
    end)
  end)

  describe("next_pending_connection()", function()
    it("returns nil when nothing is queued", function()
      local server = listening_server()
      assert.is_nil(server:next_pending_connection())
      assert.is_nil(new_server():next_pending_connection())
    end)

    it("returns a connected socket that knows both ends", function()
      local server = listening_server()
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
      local peer = keep(server:next_pending_connection())
      assert.are.equal(TcpSocket.CONNECTED_STATE, peer.state)
      assert.is_true(peer.valid)
      assert.is_true(peer.is_open)
      assert.are.equal("127.0.0.1", peer.remote_address)
      assert.are.equal(client.local_port, peer.remote_port)
      assert.are.equal(server.port, peer.local_port)
      assert.are.equal("127.0.0.1", peer.local_address)
      assert.is_false(server.has_pending_connections)
      assert.is_nil(server:next_pending_connection())
    end)

    it("hands out connections in the order they were accepted", function()
      local server = listening_server()
      local first = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections end))
      local second = connect(server.port)
      local count = 0
      server.new_connection_handler = function() count = count + 1 end
      assert.is_true(wait(function() return count == 1 and connected(first) and connected(second) end))
      local a = keep(server:next_pending_connection())
      local b = keep(server:next_pending_connection())
      assert.are.equal(first.local_port, a.remote_port)
      assert.are.equal(second.local_port, b.remote_port)
    end)
  end)

  describe("next_pending_connection_async()", function()
    it("passes the next connection to callback(server, socket)", function()
      local server = listening_server()
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
      local done, server_arg, socket = false, nil, nil
      server:next_pending_connection_async(function(s, sock) done, server_arg, socket = true, s, sock end)
      assert.is_false(done) -- later, not inside the call
      assert.is_true(wait(function() return done end))
      keep(socket)
      assert.are.equal(server, server_arg)
      assert.is_not_nil(socket)
      assert.are.equal(TcpSocket.CONNECTED_STATE, socket.state)
      assert.are.equal(client.local_port, socket.remote_port)
    end)

    it("passes nil when nothing is queued", function()
      local server = listening_server()
      local done, socket = false, "unset"
      server:next_pending_connection_async(function(_, sock) done, socket = true, sock end)
      assert.is_true(wait(function() return done end))
      assert.is_nil(socket)
    end)
  end)

  describe("max_pending_connections", function()
    it("stops accepting while the queue is full and drops nobody", function()
      local server = listening_server()
      server.max_pending_connections = 2
      assert.are.equal(2, server.max_pending_connections)
      local announced = 0
      server.new_connection_handler = function() announced = announced + 1 end

      local clients = {}
      for i = 1, 4 do clients[i] = connect(server.port) end
      assert.is_true(wait(function() return announced == 2 end))
      luanet.run_for(0.2)
      assert.are.equal(2, announced) -- the other two wait in the kernel's backlog

      local peers = {}
      while server.has_pending_connections do
        peers[#peers + 1] = keep(server:next_pending_connection())
      end
      assert.are.equal(2, #peers)

      assert.is_true(wait(function() return announced == 4 end))
      while server.has_pending_connections do
        peers[#peers + 1] = keep(server:next_pending_connection())
      end
      assert.are.equal(4, #peers)

      -- every connection works end to end
      local got = {}
      for i, peer in ipairs(peers) do
        peer.ready_read_handler = function(sock) got[i] = (got[i] or "") .. sock:read_all_string() end
      end
      for i, client in ipairs(clients) do client:write_string("client " .. i) end
      assert.is_true(wait(function()
        for i = 1, 4 do if got[i] == nil or #got[i] < 8 then return false end end
        return true
      end))
      local seen = {}
      for i = 1, 4 do seen[got[i]] = true end
      for i = 1, 4 do assert.is_true(seen["client " .. i]) end
    end)
  end)

  describe("pause_accepting() / resume_accepting()", function()
    it("accepts nothing while paused and everything after resume", function()
      local server = listening_server()
      local handler = spy.new(function() end)
      server.new_connection_handler = function(srv) handler(srv) end
      server:pause_accepting()
      local client = connect(server.port)
      assert.is_true(wait(function() return connected(client) end)) -- the kernel's backlog
      luanet.run_for(0.2)
      assert.spy(handler).was.called(0)
      assert.is_false(server.has_pending_connections)
      assert.is_true(server.listening)

      server:resume_accepting()
      assert.is_true(wait(function() return server.has_pending_connections end))
      luanet.run_for(0.05)
      assert.spy(handler).was.called(1)
      local peer = keep(server:next_pending_connection())
      assert.are.equal(client.local_port, peer.remote_port)
    end)

    it("keeps queued connections queued while paused", function()
      local server = listening_server()
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
      server:pause_accepting()
      luanet.run_for(0.05)
      assert.is_true(server.has_pending_connections)
      local peer = keep(server:next_pending_connection())
      assert.are.equal(TcpSocket.CONNECTED_STATE, peer.state)
    end)

    it("are harmless when repeated", function()
      local server = listening_server()
      server:pause_accepting()
      server:pause_accepting()
      server:resume_accepting()
      server:resume_accepting()
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
    end)
  end)

  describe("accept_error_handler", function()
    it("accepts a function or nil", function()
      local server = new_server()
      server.accept_error_handler = function(_, _) end
      server.accept_error_handler = nil
    end)

    pending("is called with SOCKET_RESOURCE_ERROR when the process runs out of file descriptors (needs RLIMIT_NOFILE control: tests/)")
  end)

  describe("close()", function()
    it("stops listening and resets the port", function()
      local server = listening_server()
      server:close()
      assert.is_false(server.listening)
      assert.are.equal(0, server.port)
    end)

    it("refuses new clients afterwards", function()
      local server = listening_server()
      local port = server.port
      server:close()
      local client = connect(port)
      local err
      client.error_handler = function(_, e) err = e end
      assert.is_true(wait(function() return err ~= nil end))
      assert.are.equal(TcpSocket.CONNECTION_REFUSED_ERROR, err)
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
    end)

    it("is harmless twice and on a server that never listened", function()
      local server = listening_server()
      server:close()
      server:close()
      new_server():close()
      assert.is_false(server.listening)
    end)

    it("lets listen() work again afterwards", function()
      local server = listening_server()
      server:close()
      assert.is_true(server:listen(0))
      assert.is_true(server.listening)
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
    end)

    it("closes queued connections that were not taken", function()
      local server = listening_server()
      local client = connect(server.port)
      local disconnected = false
      client.disconnected_handler = function() disconnected = true end
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
      server:close()
      assert.is_false(server.has_pending_connections)
      assert.is_true(wait(function() return disconnected end))
      assert.are.equal(TcpSocket.UNCONNECTED_STATE, client.state)
    end)

    it("does not touch sockets already taken", function()
      local server = listening_server()
      local client = connect(server.port)
      assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
      local peer = keep(server:next_pending_connection())
      server:close()
      luanet.run_for(0.05)
      assert.are.equal(TcpSocket.CONNECTED_STATE, peer.state)
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state)

      local at_peer, at_client = "", ""
      peer.ready_read_handler = function(s) at_peer = at_peer .. s:read_all_string() end
      client.ready_read_handler = function(s) at_client = at_client .. s:read_all_string() end
      client:write_string("ping")
      peer:write_string("pong")
      assert.is_true(wait(function() return at_peer == "ping" and at_client == "pong" end))
    end)
  end)

  describe("tostring()", function()
    it("names the class, and the port while listening", function()
      local server = new_server()
      assert.is_truthy(tostring(server):find("TcpServer", 1, true))
      server:listen(0)
      local text = tostring(server)
      assert.is_truthy(text:find("TcpServer", 1, true))
      assert.is_truthy(text:find(tostring(server.port), 1, true))
    end)
  end)

  describe("lifetime", function()
    it("keeps the sockets it handed out alive without a script reference", function()
      local server = listening_server()
      local accepted = false
      server.new_connection_handler = function(srv)
        local socket = srv:next_pending_connection() -- not stored anywhere
        socket.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
        accepted = true
      end
      local client = connect(server.port)
      assert.is_true(wait(function() return accepted and connected(client) end))
      collect()
      local echoed = ""
      client.ready_read_handler = function(s) echoed = echoed .. s:read_all_string() end
      client:write_string("still there?")
      assert.is_true(wait(function() return echoed == "still there?" end))
    end)

    it("stops listening when it is garbage-collected", function()
      local function forgotten_server()
        local server = net.TcpServer.new()
        assert.is_true(server:listen(0))
        return server.port
      end
      local port = forgotten_server() -- logs a warning naming the port, by design
      collect()
      local client = connect(port)
      local err
      client.error_handler = function(_, e) err = e end
      assert.is_true(wait(function() return err ~= nil end))
      assert.are.equal(TcpSocket.CONNECTION_REFUSED_ERROR, err)
    end)

    it("closes the sockets it handed out when it is garbage-collected", function()
      local client
      local function forgotten_server()
        local server = net.TcpServer.new()
        assert.is_true(server:listen(0))
        client = connect(server.port)
        assert.is_true(wait(function() return server.has_pending_connections and connected(client) end))
        assert.is_not_nil(server:next_pending_connection())
        server:close() -- no longer listening; the taken socket stays open
      end
      forgotten_server()
      luanet.run_for(0.05)
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state)
      collect()
      assert.is_true(wait(function() return client.state == TcpSocket.UNCONNECTED_STATE end))
    end)
  end)
end)
