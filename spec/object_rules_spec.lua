-- The object rules both classes follow (API.md, "Object rules"): properties,
-- read-only errors, unknown keys, handler fields, dot-calls, bad arguments,
-- handler errors, tostring; and the luanet helpers.

local TcpSocket = net.TcpSocket
local helpers = require "spec.helpers"
local SAFETY, wait = helpers.SAFETY, helpers.wait

-- Lua patterns need % before these characters to match them literally.
local function literal(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local SERVER_READ_ONLY = { "listening", "port", "has_pending_connections", "error_string", "error" }
local SOCKET_READ_ONLY = {
  "state", "error", "error_string", "valid", "local_address", "local_port", "remote_address",
  "remote_port", "is_open", "open_mode", "bytes_available", "bytes_to_write", "at_end", "pos",
  "readable", "writeable", "sequential", "can_read_line",
}
local SERVER_HANDLERS = { "new_connection_handler", "accept_error_handler" }
local SOCKET_HANDLERS = {
  "ready_read_handler", "bytes_written_handler", "about_to_close_handler", "connected_handler",
  "disconnected_handler", "error_handler", "state_changed_handler", "host_found_handler",
}

describe("object rules", function()
  local made = helpers.closed_after_each()
  local server, client, peer

  before_each(function()
    client, peer, server = made.pair()
  end)

  describe("the net module", function()
    it("is a global and what require returns", function()
      assert.are.equal(net, require("net"))
      assert.are.equal(luanet, require("luanet"))
      assert.is_table(net.TcpServer)
      assert.is_table(net.TcpSocket)
      assert.is_function(net.TcpServer.new)
      assert.is_function(net.TcpSocket.new)
    end)
  end)

  describe("properties", function()
    it("read their current values", function()
      assert.is_true(server.listening)
      server:close()
      assert.is_false(server.listening)
      assert.are.equal(0, server.port)
    end)

    it("are numbers with integer values", function()
      local numbers = { server.port, server.max_pending_connections, client.state, client.local_port,
        client.remote_port, client.open_mode, client.bytes_available, client.bytes_to_write, client.pos,
        TcpSocket.CONNECTED_STATE, TcpSocket.UNKNOWN_ERROR, TcpSocket.TRUNCATE_MODE }
      for i = 1, #numbers do
        local v = numbers[i]
        assert.are.equal("number", type(v))
        assert.are.equal(v, math.floor(v))
        if math.type then -- Lua 5.3+: integers, so "port " .. port reads "port 40123"
          assert.are.equal("integer", math.type(v))
        end
      end
    end)

    it("are read-only on TcpServer, with an error that names the property", function()
      for _, name in ipairs(SERVER_READ_ONLY) do
        assert.error_matches(function() server[name] = 1 end, literal(name))
      end
      assert.is_true(server.listening) -- nothing changed
      assert.are_not.equal(1, server.port)
    end)

    it("are read-only on TcpSocket, with an error that names the property", function()
      for _, name in ipairs(SOCKET_READ_ONLY) do
        assert.error_matches(function() client[name] = 1 end, literal(name))
      end
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state)
    end)

    it("max_pending_connections is writable and takes non-negative integers only", function()
      server.max_pending_connections = 5
      assert.are.equal(5, server.max_pending_connections)
      server.max_pending_connections = 0
      assert.are.equal(0, server.max_pending_connections)
      assert.has_error(function() server.max_pending_connections = -1 end)
      assert.has_error(function() server.max_pending_connections = 1.5 end)
      assert.has_error(function() server.max_pending_connections = "many" end)
      assert.has_error(function() server.max_pending_connections = nil end)
      assert.has_error(function() server.max_pending_connections = true end)
      assert.are.equal(0, server.max_pending_connections)
    end)
  end)

  describe("unknown keys", function()
    it("raise an error naming the key when assigned (typos are caught)", function()
      assert.error_matches(function()
        server.new_conection_handler = function() end
      end, "new_conection_handler")
      assert.error_matches(function() client.ready_red_handler = function() end end, "ready_red_handler")
      assert.error_matches(function() client.my_data = 42 end, "my_data")
      assert.error_matches(function() server.some_field = "x" end, "some_field")
    end)

    it("cannot overwrite methods", function()
      assert.has_error(function() server.listen = function() end end)
      assert.has_error(function() client.write_string = function() end end)
      assert.is_function(server.listen)
    end)
  end)

  describe("handler fields", function()
    it("accept a function or nil", function()
      for _, name in ipairs(SERVER_HANDLERS) do
        local fn = function() end
        server[name] = fn
        assert.are.equal(fn, server[name])
        server[name] = nil
        assert.is_nil(server[name])
      end
      for _, name in ipairs(SOCKET_HANDLERS) do
        local fn = function() end
        client[name] = fn
        assert.are.equal(fn, client[name])
        client[name] = nil
        assert.is_nil(client[name])
      end
    end)

    it("accept a spy (a table with __call), which then gets called like a function", function()
      local on_connection = spy.new(function(srv) srv:next_pending_connection() end)
      server.new_connection_handler = on_connection
      assert.are.equal(on_connection, server.new_connection_handler)
      server:listen(0)
      local peer = TcpSocket.new()
      local on_connected = spy.new(function() end)
      peer.connected_handler = on_connected
      peer:connect("127.0.0.1", server.port)
      assert.is_true(wait(function() return #on_connected.calls > 0 and #on_connection.calls > 0 end))
      assert.spy(on_connected).was.called_with(peer)
      assert.spy(on_connection).was.called_with(server)
      peer:abort()
    end)

    it("raise for anything else", function()
      for _, bad in ipairs({ 42, "handler", {}, true }) do
        for _, name in ipairs(SERVER_HANDLERS) do
          assert.has_error(function() server[name] = bad end)
        end
        for _, name in ipairs(SOCKET_HANDLERS) do
          assert.has_error(function() client[name] = bad end)
        end
      end
    end)
  end)

  describe("calling a method with . instead of :", function()
    it("raises an error that says to use server:listen(...)", function()
      local other = net.TcpServer.new()
      assert.error_matches(function() other.listen(0) end, literal("server:listen("))
      assert.error_matches(function() server.close() end, literal("server:close("))
      assert.is_false(other.listening)
    end)

    it("raises an error that says to use socket:method(...) on a socket", function()
      assert.error_matches(function() client.write_string("x") end, literal(":write_string("))
      assert.error_matches(function() client.read_all_string() end, literal(":read_all_string("))
      assert.error_matches(function() client.connect("127.0.0.1", 1) end, literal(":connect("))
    end)

    it("does not take one class for the other", function()
      assert.has_error(function() server.close(client) end)
      assert.has_error(function() client.abort(server) end)
      assert.is_true(server.listening)
      assert.are.equal(TcpSocket.CONNECTED_STATE, client.state)
    end)
  end)

  describe("bad arguments", function()
    it("raise Lua's own 'bad argument' errors for wrong types", function()
      local fresh = net.TcpServer.new()
      assert.error_matches(function() fresh:listen("eighty") end,
        literal("bad argument #1 to 'listen' (number expected, got string)"))
      assert.error_matches(function() fresh:listen({}) end,
        literal("bad argument #1 to 'listen' (number expected, got table)"))
      assert.error_matches(function() client:write_string({}) end,
        literal("bad argument #1 to 'write_string' (string expected, got table)"))
      assert.error_matches(function() client:write_bytes("abc") end,
        literal("bad argument #1 to 'write_bytes' (table expected, got string)"))
      assert.error_matches(function() client:read_string("ten") end,
        literal("bad argument #1 to 'read_string'"))
      assert.error_matches(function() client:peek_string({}) end,
        literal("bad argument #1 to 'peek_string'"))
      local socket = net.TcpSocket.new()
      assert.error_matches(function() socket:connect(nil, 80) end,
        literal("bad argument #1 to 'connect' (string expected, got nil)"))
      assert.error_matches(function() socket:connect("127.0.0.1", "http") end,
        literal("bad argument #2 to 'connect' (number expected, got string)"))
      assert.error_matches(function() socket:bind(true) end,
        literal("bad argument #1 to 'bind' (number expected, got boolean)"))
      assert.error_matches(function() fresh:listen_async(0, "callback") end,
        literal("bad argument #2 to 'listen_async'"))
      assert.error_matches(function() fresh:next_pending_connection_async(42) end,
        literal("bad argument #1 to 'next_pending_connection_async'"))
    end)

    it("raise for numbers without an integer value", function()
      local fresh = net.TcpServer.new()
      assert.error_matches(function() fresh:listen(80.5) end, literal("bad argument #1 to 'listen'"))
      assert.error_matches(function() client:read_string(2.5) end, literal("bad argument #1 to 'read_string'"))
      assert.error_matches(function() client:read_line_string(0.5) end,
        literal("bad argument #1 to 'read_line_string'"))
      assert.error_matches(function() net.TcpSocket.new():connect("127.0.0.1", 80.25) end,
        literal("bad argument #2 to 'connect'"))
      assert.is_false(fresh.listening)
    end)

    it("do not raise for usable types with unusable values: false and error_string", function()
      local fresh = net.TcpServer.new()
      assert.is_false(fresh:listen(100000))
      assert.are_not.equal("", fresh.error_string)
      local taken = net.TcpServer.new()
      assert.is_false(taken:listen(server.port))
      assert.are_not.equal("", taken.error_string)
    end)

    it("take numeric strings where numbers are expected, like luaL_checkinteger", function()
      local fresh = net.TcpServer.new()
      assert.is_true(fresh:listen("0"))
      assert.is_true(fresh.listening)
      fresh:close()
    end)
  end)

  describe("handlers", function()
    it("run from the event loop, never inside the call that caused them", function()
      local order = {}
      client.disconnected_handler = function() order[#order + 1] = "disconnected" end
      client.state_changed_handler = function() order[#order + 1] = "state" end
      client:disconnect()
      order[#order + 1] = "returned"
      assert.is_true(wait(function() return order[#order] == "disconnected" end))
      assert.are.equal("returned", order[1])
    end)

    it("may raise without keeping the events after it from their handlers", function()
      helpers.expect_handler_error("deliberate error")
      -- three callbacks queued together run from one loop pass; the first raises
      local ran = {}
      client:seek_async(0, function() ran[#ran + 1] = 1; error("deliberate error (expected in this spec)") end)
      client:seek_async(0, function() ran[#ran + 1] = 2 end)
      client:reset_async(function() ran[#ran + 1] = 3 end)
      assert.is_true(wait(function() return #ran == 3 end))
      assert.same({ 1, 2, 3 }, ran)
    end)

    it("may raise without breaking the object or other connections", function()
      helpers.expect_handler_error("deliberate error")
      local second = net.TcpSocket.new()
      finally(function() second:abort() end)

      local accepted = {}
      server.new_connection_handler = function(srv)
        local socket = srv:next_pending_connection()
        accepted[#accepted + 1] = socket
        error("deliberate error in new_connection_handler (expected in this spec)")
      end
      second:connect("127.0.0.1", server.port)
      assert.is_true(wait(function() return #accepted == 1 end))

      -- the server keeps accepting after its handler raised
      local third = net.TcpSocket.new()
      finally(function() third:abort() end)
      third:connect("127.0.0.1", server.port)
      assert.is_true(wait(function() return #accepted == 2 end))
      assert.is_true(server.listening)

      -- a raising ready_read_handler leaves its socket and the others working
      local got = ""
      peer.ready_read_handler = function(s)
        got = got .. s:read_all_string()
        error("deliberate error in ready_read_handler (expected in this spec)")
      end
      client:write_string("one")
      assert.is_true(wait(function() return got == "one" end))
      client:write_string("two")
      assert.is_true(wait(function() return got == "onetwo" end))

      local echoed = ""
      accepted[1].ready_read_handler = function(s) s:write_string(s:read_all_string()) end
      second.ready_read_handler = function(s) echoed = echoed .. s:read_all_string() end
      second:write_string("still fine")
      assert.is_true(wait(function() return echoed == "still fine" end))
      for _, socket in ipairs(accepted) do socket:abort() end
    end)

    it("may raise inside async callbacks without harm", function()
      helpers.expect_handler_error("deliberate error")
      local calls = 0
      client:read_all_string_async(function()
        calls = calls + 1
        error("deliberate error in an async callback (expected in this spec)")
      end)
      client:write_string_async("after", function() calls = calls + 1 end)
      assert.is_true(wait(function() return calls == 2 end))
      assert.is_true(wait(function() return peer.bytes_available == 5 end))
    end)
  end)

  describe("tostring()", function()
    it("gives a one-liner naming the class", function()
      local text = tostring(server)
      assert.is_truthy(text:find("TcpServer", 1, true))
      assert.is_truthy(text:find(tostring(server.port), 1, true))
      assert.is_nil(text:find("\n", 1, true))
      local s = tostring(client)
      assert.is_truthy(s:find("TcpSocket", 1, true))
      assert.is_nil(s:find("\n", 1, true))
    end)
  end)

  describe("luanet helpers", function()
    it("run_until returns true once the predicate holds", function()
      local n = 0
      assert.is_true(luanet.run_until(function() n = n + 1; return n >= 3 end, SAFETY))
      assert.is_true(luanet.run_until(function() return true end, SAFETY))
    end)

    it("run_until returns false when the timeout passes", function()
      assert.is_false(luanet.run_until(function() return false end, 0.05))
    end)

    it("run_for runs the loop", function()
      local got = false
      peer.ready_read_handler = function() got = true end
      client:write_string("x")
      luanet.run_for(0.2)
      assert.is_true(got)
    end)

    it("raise a clear error when called from inside a handler", function()
      local results
      peer.ready_read_handler = function(s)
        s:read_all_string()
        local ok1, err1 = pcall(luanet.run_for, 0.01)
        local ok2, err2 = pcall(luanet.run_until, function() return true end, 0.01)
        results = { ok1 = ok1, err1 = err1, ok2 = ok2, err2 = err2 }
      end
      client:write_string("x")
      assert.is_true(wait(function() return results ~= nil end))
      assert.is_false(results.ok1)
      assert.is_false(results.ok2)
      assert.is_string(tostring(results.err1))
      assert.is_truthy(tostring(results.err1):find("handler") or tostring(results.err1):find("running"))
      assert.is_truthy(tostring(results.err2):find("handler") or tostring(results.err2):find("running"))
    end)
  end)
end)
