-- The stream functions every net.TcpSocket has: reads, lines, peeks, byte
-- tables, writes, and their _async twins. Data is byte-exact both ways.

local TcpSocket = net.TcpSocket
local helpers = require "spec.helpers"
local wait = helpers.wait
local unpack = table.unpack or unpack

-- "\0\1...\255"
local ALL_BYTES
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  ALL_BYTES = table.concat(t)
end

local function byte_table(s)
  local t = {}
  for i = 1, #s do t[i] = s:byte(i) end
  return t
end

describe("net.TcpSocket streams", function()
  local made = helpers.closed_after_each()
  local client, peer

  before_each(function()
    client, peer = made.pair()
  end)

  -- The peer sends `data`; it waits, unread, in the client's buffer.
  local function arrive(data)
    local before = client.bytes_available
    assert.are.equal(#data, peer:write_string(data))
    assert.is_true(wait(function() return client.bytes_available >= before + #data end))
  end

  describe("read_string()", function()
    it("reads everything buffered without max", function()
      arrive("hello world")
      assert.are.equal(11, client.bytes_available)
      assert.are.equal("hello world", client:read_string())
      assert.are.equal(0, client.bytes_available)
    end)

    it("reads at most max bytes", function()
      arrive("hello world")
      assert.are.equal("hello", client:read_string(5))
      assert.are.equal(6, client.bytes_available)
      assert.are.equal(" world", client:read_string(100))
      assert.are.equal("", client:read_string(0))
    end)

    it("returns an empty string when nothing is buffered", function()
      assert.are.equal("", client:read_string())
      assert.are.equal("", client:read_string(10))
      assert.are.equal("", net.TcpSocket.new():read_string())
    end)
  end)

  describe("read_bytes()", function()
    it("reads byte numbers", function()
      arrive("hi!")
      assert.same({ 104, 105, 33 }, client:read_bytes())
    end)

    it("reads at most max bytes", function()
      arrive("abcdef")
      assert.same({ 97, 98 }, client:read_bytes(2))
      assert.same({ 99, 100, 101, 102 }, client:read_bytes())
    end)

    it("returns an empty table when nothing is buffered", function()
      assert.same({}, client:read_bytes())
    end)
  end)

  describe("read_all_string() / read_all_bytes()", function()
    it("read everything buffered", function()
      arrive("first part, ")
      arrive("second part")
      assert.are.equal("first part, second part", client:read_all_string())
      assert.are.equal("", client:read_all_string())
      arrive("\1\2\3")
      assert.same({ 1, 2, 3 }, client:read_all_bytes())
      assert.same({}, client:read_all_bytes())
    end)
  end)

  describe("lines", function()
    it("reads one line at a time, including its newline", function()
      arrive("one\ntwo\r\nthree")
      assert.is_true(client.can_read_line)
      assert.are.equal("one\n", client:read_line_string())
      assert.is_true(client.can_read_line)
      assert.are.equal("two\r\n", client:read_line_string())
      assert.is_false(client.can_read_line)
      assert.are.equal(5, client.bytes_available)
      arrive("\n")
      assert.is_true(client.can_read_line)
      assert.are.equal("three\n", client:read_line_string())
      assert.is_false(client.can_read_line)
    end)

    it("reads at most max bytes of a line", function()
      arrive("hello\nworld\n")
      assert.are.equal("hel", client:read_line_string(3))
      assert.are.equal("lo\n", client:read_line_string())
      assert.are.equal("world\n", client:read_line_string(100))
    end)

    it("reads what is buffered when no complete line is (Qt's readLine stops at the end of the data)", function()
      arrive("no newline")
      assert.is_false(client.can_read_line)
      assert.are.equal("no newline", client:read_line_string())
      assert.are.equal(0, client.bytes_available)
    end)

    it("reads lines as byte tables", function()
      arrive("ab\ncd\n")
      assert.same({ 97, 98, 10 }, client:read_line_bytes())
      assert.same({ 99 }, client:read_line_bytes(1))
      assert.same({ 100, 10 }, client:read_line_bytes())
    end)

    it("is the loop a line protocol is written with", function()
      local lines = {}
      client.ready_read_handler = function(s)
        while s.can_read_line do lines[#lines + 1] = s:read_line_string() end
      end
      peer:write_string("al")
      luanet.run_for(0.02)
      peer:write_string("pha\nbeta\ngam")
      luanet.run_for(0.02)
      peer:write_string("ma\n")
      assert.is_true(wait(function() return #lines == 3 end))
      assert.same({ "alpha\n", "beta\n", "gamma\n" }, lines)
    end)

    it("has no line when nothing is buffered", function()
      assert.is_false(client.can_read_line)
      assert.is_false(net.TcpSocket.new().can_read_line)
    end)
  end)

  describe("peeks", function()
    it("look without consuming", function()
      arrive("peekaboo")
      assert.are.equal("peek", client:peek_string(4))
      assert.are.equal("peek", client:peek_string(4))
      assert.same({ 112, 101 }, client:peek_bytes(2))
      assert.are.equal(8, client.bytes_available)
      assert.are.equal("peekaboo", client:peek_string(100))
      assert.are.equal("peekaboo", client:read_all_string())
      assert.are.equal("", client:peek_string(4))
      assert.same({}, client:peek_bytes(4))
    end)
  end)

  describe("the read buffer", function()
    it("keeps unread data and appends new data behind it", function()
      local calls = 0
      client.ready_read_handler = function() calls = calls + 1 end -- reads nothing
      peer:write_string("ab")
      assert.is_true(wait(function() return client.bytes_available == 2 end))
      peer:write_string("cd")
      assert.is_true(wait(function() return client.bytes_available == 4 end))
      assert.is_true(calls >= 2)
      assert.are.equal("abcd", client:read_all_string())
    end)

    it("calls ready_read_handler with the socket itself", function()
      local seen
      client.ready_read_handler = function(s) seen = s end
      peer:write_string("x")
      assert.is_true(wait(function() return seen ~= nil end))
      assert.are.equal(client, seen)
    end)

    it("tracks bytes_available and at_end", function()
      assert.is_true(client.at_end)
      assert.are.equal(0, client.bytes_available)
      arrive("12345")
      assert.is_false(client.at_end)
      assert.are.equal(5, client.bytes_available)
      client:read_string(2)
      assert.are.equal(3, client.bytes_available)
      client:read_all_string()
      assert.is_true(client.at_end)
    end)
  end)

  describe("bytes, not text", function()
    it("passes every byte value through read_string/write_string both ways", function()
      local data = ALL_BYTES .. ALL_BYTES:reverse() .. "\0\r\n\0"
      arrive(data)
      assert.is_true(client:read_all_string() == data)

      local got = ""
      peer.ready_read_handler = function(s) got = got .. s:read_all_string() end
      assert.are.equal(#data, client:write_string(data))
      assert.is_true(wait(function() return #got >= #data end))
      assert.is_true(got == data)
    end)

    it("passes every byte value through write_bytes/read_bytes", function()
      local bytes = byte_table(ALL_BYTES)
      assert.are.equal(256, client:write_bytes(bytes))
      assert.is_true(wait(function() return peer.bytes_available == 256 end))
      assert.same(bytes, peer:read_bytes())

      assert.are.equal(256, peer:write_bytes(bytes))
      assert.is_true(wait(function() return client.bytes_available == 256 end))
      assert.is_true(client:read_all_string() == ALL_BYTES)
    end)

    it("keeps lines with NUL and high bytes intact", function()
      arrive("\0\255\128\n\200\n")
      assert.is_true(client:read_line_string() == "\0\255\128\n")
      assert.same({ 200, 10 }, client:read_line_bytes())
    end)

    it("round-trips a megabyte through an echo", function()
      peer.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
      local chunks = {}
      client.ready_read_handler = function(s) chunks[#chunks + 1] = s:read_all_string() end
      local data = string.rep(ALL_BYTES, 4096) -- 1 MiB
      assert.are.equal(#data, client:write_string(data))
      local received = 0
      assert.is_true(wait(function()
        received = 0
        for i = 1, #chunks do received = received + #chunks[i] end
        return received >= #data
      end))
      assert.are.equal(#data, received)
      assert.is_true(table.concat(chunks) == data)
    end)
  end)

  describe("write_bytes()", function()
    it("raises for an entry that is not an integer 0..255", function()
      assert.has_error(function() client:write_bytes({ 1, 256 }) end)
      assert.has_error(function() client:write_bytes({ -1 }) end)
      assert.has_error(function() client:write_bytes({ 1.5 }) end)
      assert.has_error(function() client:write_bytes({ "a" }) end)
      assert.has_error(function() client:write_bytes({ true }) end)
      luanet.run_for(0.05)
      assert.are.equal(0, peer.bytes_available) -- nothing was sent
    end)

    it("queues an empty table as nothing", function()
      assert.are.equal(0, client:write_bytes({}))
    end)
  end)

  describe("_async twins", function()
    -- Calls socket:<name>(...) with a trailing callback; checks the callback
    -- runs later (not inside the call), once, as cb(socket, result, nil).
    local function async(socket, name, ...)
      local n = select("#", ...)
      local args = { ... }
      local calls = {}
      args[n + 1] = function(s, result, err)
        calls[#calls + 1] = { s = s, result = result, err = err }
      end
      socket[name](socket, unpack(args, 1, n + 1))
      assert.are.equal(0, #calls)
      assert.is_true(wait(function() return #calls > 0 end))
      luanet.run_for(0.01)
      assert.are.equal(1, #calls)
      assert.are.equal(socket, calls[1].s)
      assert.is_nil(calls[1].err)
      return calls[1].result
    end

    it("read_string_async with and without max", function()
      arrive("abcdef")
      assert.are.equal("ab", async(client, "read_string_async", 2))
      assert.are.equal("cdef", async(client, "read_string_async"))
      assert.are.equal("", async(client, "read_string_async"))
    end)

    it("read_bytes_async with and without max", function()
      arrive("abc")
      assert.same({ 97 }, async(client, "read_bytes_async", 1))
      assert.same({ 98, 99 }, async(client, "read_bytes_async"))
    end)

    it("read_line_string_async and read_line_bytes_async", function()
      arrive("one\ntwo\nthree\n")
      assert.are.equal("one\n", async(client, "read_line_string_async"))
      assert.are.equal("tw", async(client, "read_line_string_async", 2))
      assert.same({ 111, 10 }, async(client, "read_line_bytes_async"))
      assert.same({ 116 }, async(client, "read_line_bytes_async", 1))
    end)

    it("read_all_string_async and read_all_bytes_async", function()
      arrive("all of it")
      assert.are.equal("all of it", async(client, "read_all_string_async"))
      arrive("\0\255")
      assert.same({ 0, 255 }, async(client, "read_all_bytes_async"))
    end)

    it("peek_string_async and peek_bytes_async", function()
      arrive("look")
      assert.are.equal("lo", async(client, "peek_string_async", 2))
      assert.same({ 108, 111, 111 }, async(client, "peek_bytes_async", 3))
      assert.are.equal(4, client.bytes_available)
    end)

    it("write_string_async and write_bytes_async", function()
      assert.are.equal(5, async(client, "write_string_async", "hello"))
      assert.are.equal(2, async(client, "write_bytes_async", { 33, 10 }))
      assert.is_true(wait(function() return peer.bytes_available == 7 end))
      assert.are.equal("hello!\n", peer:read_all_string())
    end)

    it("write_string_async reports -1 when not connected", function()
      local lonely = net.TcpSocket.new()
      assert.are.equal(-1, async(lonely, "write_string_async", "x"))
    end)

    it("seek_async, reset_async and open_async deliver false", function()
      assert.is_false(async(client, "seek_async", 0))
      assert.is_false(async(client, "reset_async"))
      assert.is_false(async(client, "open_async", TcpSocket.READ_WRITE_MODE))
    end)

    it("bind_async delivers true", function()
      local socket = net.TcpSocket.new()
      assert.is_true(async(socket, "bind_async", 0))
      socket:abort()
    end)

    it("check their callback argument", function()
      assert.has_error(function() client:read_string_async(1, "not a function") end)
      assert.has_error(function() client:write_string_async("x") end)
    end)
  end)
end)
