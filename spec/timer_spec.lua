-- luanet.Timer, luanet.after and luanet.every as API.md section 3 has them.

describe("luanet.Timer", function()
  it("starts stopped, with interval 0 and repeating", function()
    local t = luanet.Timer.new()
    assert.is_false(t.active)
    assert.are.equal(0, t.interval)
    assert.is_false(t.single_shot)
    assert.are.equal(-1, t.remaining)
  end)

  it("fires a single-shot timer once, then is inactive", function()
    local t, fired = luanet.Timer.new(), 0
    t.single_shot = true
    t.timeout_handler = function(timer)
      assert.are.equal(t, timer)
      fired = fired + 1
    end
    t:start(0.01)
    assert.is_true(t.active)
    assert.is_true(t.remaining >= 0 and t.remaining <= 0.01)
    assert.is_true(luanet.run_until(function() return fired == 1 end, 5))
    luanet.run_for(0.05)
    assert.are.equal(1, fired)
    assert.is_false(t.active)
  end)

  it("repeats until stopped, also from its own handler", function()
    local fired = 0
    local t = luanet.every(0.005, function(timer)
      fired = fired + 1
      if fired == 3 then timer:stop() end
    end)
    assert.is_true(luanet.run_until(function() return not t.active end, 5))
    luanet.run_for(0.03)
    assert.are.equal(3, fired)
  end)

  it("after() runs its function once", function()
    local calls = 0
    luanet.after(0, function() calls = calls + 1 end)
    assert.is_true(luanet.run_until(function() return calls == 1 end, 5))
    luanet.run_for(0.02)
    assert.are.equal(1, calls)
  end)

  it("stays alive without a reference while active", function()
    local fired = false
    luanet.after(0.02, function() fired = true end)
    collectgarbage()
    collectgarbage()
    assert.is_true(luanet.run_until(function() return fired end, 5))
  end)

  it("restarting drops a firing of the previous run", function()
    local fired = 0
    local t = luanet.Timer.new()
    t.single_shot = true
    t.timeout_handler = function() fired = fired + 1 end
    t:start(0.01)
    t:start(0.05)
    luanet.run_for(0.03)
    assert.are.equal(0, fired)
    assert.is_true(luanet.run_until(function() return fired == 1 end, 5))
  end)

  it("works inside a socket's handler: a reply one tick later", function()
    local server = net.TcpServer.new()
    assert(server:listen(0))
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      c.ready_read_handler = function(c)
        local line = c:read_all_string()
        luanet.after(0.01, function() c:write_string("later: " .. line) end)
      end
    end
    local client, got = net.TcpSocket.new(), ""
    client.connected_handler = function(c) c:write_string("hi") end
    client.ready_read_handler = function(c) got = got .. c:read_all_string() end
    client:connect("127.0.0.1", server.port)
    assert.is_true(luanet.run_until(function() return got == "later: hi" end, 5))
    client:abort()
    server:close()
  end)

  it("refuses bad values and unknown fields with Lua's words", function()
    local t = luanet.Timer.new()
    assert.has_error(function() t.interval = -1 end)
    assert.has_error(function() t.interval = "1" end)
    assert.has_error(function() t.single_shot = 1 end)
    assert.has_error(function() t.active = true end)
    assert.has_error(function() t.timeout = function() end end)
    local ok, err = pcall(function() t.timout_handler = print end)
    assert.is_false(ok)
    assert.matches("did you mean 'timeout_handler'", err, 1, true)
    assert.has_error(function() luanet.after(-1, print) end)
    assert.has_error(function() luanet.every(1, 5) end)
    assert.has_error(function() t.start() end)
  end)
end)
