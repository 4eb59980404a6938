-- Shared helpers of luanet's own spec files: require "spec.helpers".
-- busted's API and luassert come from require, not from globals: a module
-- does not see the globals busted gives spec files.
local busted = require "busted"
local assert = require "luassert"

local helpers = {}

--- Seconds; only a safety net, every wait normally ends in milliseconds.
helpers.SAFETY = 5

--- Runs the event loop until fn() is true (or `timeout` seconds, default
--- helpers.SAFETY).
function helpers.wait(fn, timeout)
  return luanet.run_until(fn, timeout or helpers.SAFETY)
end

--- Declares that a handler of the running test raises an error containing
--- `text` on purpose: the runner then does not fail the test for it.
function helpers.expect_handler_error(text)
  busted.expect_handler_error(text)
end

--- A full garbage collection, with a turn of the loop in between so that it
--- can act on what was collected.
function helpers.collect()
  collectgarbage()
  collectgarbage()
  luanet.run_for(0.05)
  collectgarbage()
end

function helpers.connected(socket)
  return socket.state == net.TcpSocket.CONNECTED_STATE
end

--- A port nobody listens on (just released).
function helpers.free_port()
  local probe = net.TcpServer.new()
  assert.is_true(probe:listen(0))
  local port = probe.port
  probe:close()
  return port
end

--- Call in a describe block: the servers and sockets its tests make through
--- the returned functions are closed after each test (sockets aborted first,
--- each list in the order made).
function helpers.closed_after_each()
  local servers, sockets
  busted.before_each(function()
    servers, sockets = {}, {}
  end)
  busted.after_each(function()
    for _, socket in ipairs(sockets) do socket:abort() end
    for _, server in ipairs(servers) do server:close() end
  end)

  local made = {}

  function made.keep(socket)
    sockets[#sockets + 1] = socket
    return socket
  end

  function made.new_server()
    local server = net.TcpServer.new()
    servers[#servers + 1] = server
    return server
  end

  function made.listening_server()
    local server = made.new_server()
    assert.is_true(server:listen(0))
    return server
  end

  --- A connected client, the server's end of the same connection, and the
  --- server.
  function made.pair()
    local server = made.listening_server()
    local client = made.keep(net.TcpSocket.new())
    client:connect("127.0.0.1", server.port)
    assert.is_true(helpers.wait(function()
      return helpers.connected(client) and server.has_pending_connections
    end))
    local peer = made.keep(server:next_pending_connection())
    return client, peer, server
  end

  return made
end

return helpers
