"""The sandbox (API.md section 2, `sandbox=True`): no Python, no file system,
no processes, no native code, no binary chunks; `sandbox=False` gives the whole
standard library. Checked on every supported Lua."""

from __future__ import annotations

import pytest

from conftest import ALL_LUAS, connect, in_thread, lua_int, lua_list, run_until, wait_for


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_no_python_global_or_module(make_host, lua):
    host = make_host(lua=lua)
    assert host.eval("python == nil") is True
    assert host.eval("rawget(_G, 'python') == nil") is True
    assert host.eval("(pcall(require, 'python'))") is False
    assert host.eval("package == nil or package.loaded.python == nil") is True
    assert host.eval("(pcall(require, 'lupa'))") is False


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_no_file_system_processes_or_native_code(make_host, lua):
    host = make_host(lua=lua)
    checks = {
        "io": "io == nil",
        "os.execute": "os == nil or os.execute == nil",
        "os.remove": "os == nil or os.remove == nil",
        "os.rename": "os == nil or os.rename == nil",
        "os.tmpname": "os == nil or os.tmpname == nil",
        "package.loadlib": "package == nil or package.loadlib == nil",
        "dofile": "dofile == nil",
        "loadfile": "loadfile == nil",
        "require('io')": "not pcall(require, 'io')",
        "require('ffi')": "not pcall(require, 'ffi')",
        "ffi": "ffi == nil",
        "package.loaded.io": "package == nil or package.loaded.io == nil",
        "package.loaded.ffi": "package == nil or package.loaded.ffi == nil",
    }
    failing = [name for name, expr in checks.items() if host.eval(expr) is not True]
    assert failing == []


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_os_exit_is_not_reachable(make_host, lua):
    """os.exit would end the embedding Python process ("nor ... processes")."""
    host = make_host(lua=lua)
    assert host.eval("os == nil or os.exit == nil") is True


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_require_does_not_read_lua_files(make_host, lua, tmp_path, monkeypatch):
    (tmp_path / "sandbox_probe_module.lua").write_text("return 'read from disk'\n")
    monkeypatch.chdir(tmp_path)
    host = make_host(lua=lua)
    host.execute("ok, value = pcall(require, 'sandbox_probe_module')")
    assert host.eval("value") != b"read from disk"
    assert host.eval("ok") is False


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_binary_chunks_do_not_load(make_host, lua):
    trusted = make_host(lua=lua, sandbox=False)
    bytecode = trusted.eval("string.dump(function() return 42 end)")
    assert isinstance(bytecode, bytes) and bytecode[:1] == b"\x1b"
    # the bytecode is good: the unsandboxed runtime runs it
    trusted.globals["bc"] = bytecode
    assert trusted.eval("(loadstring or load)(bc)()") == 42

    host = make_host(lua=lua)
    host.globals["bc"] = bytecode
    host.execute(r"""
        local function runs(f, ...)
            if f == nil then return false end
            local ok, fn = pcall(f, ...)
            if not ok or type(fn) ~= "function" then return false end
            local ok2, r = pcall(fn)
            return ok2 and r == 42
        end
        local function reader(s)
            local done = false
            return function() if done then return nil end done = true return s end
        end
        local function split_reader(s)
            local parts, i = { "", s:sub(1, 1), s:sub(2) }, 0
            return function() i = i + 1 return parts[i] end
        end
        escapes = {}
        local attempts = {
            { "load(bc)", load, bc },
            { "load(bc, 'x', 'b')", load, bc, "x", "b" },
            { "load(bc, 'x', 'bt')", load, bc, "x", "bt" },
            { "load(reader)", load, reader(bc) },
            { "load(reader, 'x', 'b')", load, reader(bc), "x", "b" },
            { "load(split reader)", load, split_reader(bc) },
            { "loadstring(bc)", loadstring, bc },
        }
        for _, a in ipairs(attempts) do
            if runs(a[2], unpack and unpack(a, 3, 5) or table.unpack(a, 3, 5)) then
                escapes[#escapes + 1] = a[1]
            end
        end
        dump_absent = (string.dump == nil)
        fake_ok = (load or loadstring)("\27Lua garbage") ~= nil
    """)
    assert lua_list(host, "escapes") == []
    assert host.eval("fake_ok") is False
    # string.dump may be absent; if present it must not help (checked above)
    assert host.eval("dump_absent") in (True, False)


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_text_chunks_still_load(make_host, lua):
    host = make_host(lua=lua)
    assert host.eval("(loadstring or load)('return 6 * 7')()") == 42


# Walk everything reachable from _G, net, luanet, live objects and their
# metatables (and, where `debug` is left, upvalues and the registry), and try
# to read Python attributes off every value.
WALK = r"""
local getmt = (debug and debug.getmetatable) or getmetatable
local getupvalue = debug and debug.getupvalue
local probe_keys = { "__class__", "__dict__", "__doc__", "__init__", "__globals__",
    "__builtins__", "__subclasses__", "__getattribute__", "__module__", "__reduce__",
    "__mro__", "__self__", "__func__", "__code__", "__call__", "__len__", "mro" }
local seen, queue, head = {}, {}, 1
found, UD = {}, {}
local function push(v, path)
    local t = type(v)
    if (t == "table" or t == "userdata" or t == "function" or t == "thread")
        and not seen[v] then
        seen[v] = true
        queue[#queue + 1] = { v, path }
        if t == "userdata" then UD[#UD + 1] = v; UD_PATHS = UD_PATHS or {}; UD_PATHS[#UD] = path end
    end
end
for name, root in pairs(ROOTS) do push(root, name) end
push(getmt(""), "<string metatable>")
if debug and debug.getregistry then push(debug.getregistry(), "<registry>") end
while head <= #queue and head <= 50000 do
    local v, path = queue[head][1], queue[head][2]
    head = head + 1
    local t = type(v)
    if t == "table" then
        for k, x in next, v do
            push(k, path .. "[key]")
            push(x, path .. "." .. tostring(k))
        end
    end
    local ok, mt = pcall(getmt, v)
    if ok and mt ~= nil then push(mt, path .. "<mt>") end
    if t == "function" and getupvalue then
        for i = 1, 255 do
            local name, x = getupvalue(v, i)
            if name == nil then break end
            push(x, path .. "^" .. tostring(name))
        end
    end
    if t == "table" or t == "userdata" then
        for _, key in ipairs(probe_keys) do
            local ok2, r = pcall(function() return v[key] end)
            if ok2 and r ~= nil then
                found[#found + 1] = path .. "." .. key
            end
        end
    end
end
walked = head - 1
"""

ROOTS = r"""
ROOTS = { _G = _G, net = net, luanet = luanet }
server = net.TcpServer.new()
ROOTS.new_server = server
ROOTS.new_socket = net.TcpSocket.new()
server.new_connection_handler = function(srv)
    ROOTS.handler_server = srv
    ROOTS.accepted = srv:next_pending_connection()
    ROOTS.accepted.ready_read_handler = function(s) ROOTS.read_arg = s end
end
assert(server:listen(0))
ROOTS.listening_server = server
"""


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_no_python_attribute_reachable(make_host, lua):
    host = make_host(lua=lua)
    host.execute(ROOTS)
    port = lua_int(host, "server.port")
    client = wait_for(host, in_thread(connect, port))
    try:
        client.sendall(b"x")
        run_until(host, lambda: host.eval("ROOTS.read_arg ~= nil"), "a ready_read call")
        host.execute(WALK)
        assert lua_int(host, "walked") > 50, "the walk saw too little to mean anything"
        assert lua_list(host, "found") == []
        # Every userdata the walk reached: if it is a Python object, Lua must
        # not be able to read any of its attributes.
        host.execute("function PROBE(obj, name) local ok, r = pcall(function() return obj[name] end) "
                     "return ok and r ~= nil end")
        ud = host.globals["UD"]
        readable = []
        for i in range(1, lua_int(host, "#UD") + 1):
            obj = ud[i]
            if type(obj).__module__.startswith("lupa"):
                continue  # a real Lua userdata (e.g. a newproxy() for __gc)
            names = [n for n in dir(obj)]
            host.globals["PROBE_OBJ"] = obj
            for name in names:
                host.globals["PROBE_NAME"] = name.encode()
                if host.eval("PROBE(PROBE_OBJ, PROBE_NAME)") is True:
                    readable.append((host.eval("UD_PATHS[%d]" % i), name))
        host.globals["PROBE_OBJ"] = None
        assert readable == []
    finally:
        client.close()


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_getmetatable_does_not_reach_python(make_host, lua):
    host = make_host(lua=lua)
    host.execute(ROOTS + r"""
        leaks = {}
        local probe_keys = { "__class__", "__dict__", "__init__", "__globals__" }
        local function check(label, v)
            local ok, mt = pcall(getmetatable, v)
            if not ok or mt == nil then return end
            if type(mt) == "userdata" then leaks[#leaks + 1] = label .. " metatable is userdata" end
            if type(mt) == "table" then
                for k, x in next, mt do
                    if type(x) == "userdata" then leaks[#leaks + 1] = label .. " mt." .. tostring(k) end
                end
            end
            for _, key in ipairs(probe_keys) do
                local ok2, r = pcall(function() return mt[key] end)
                if ok2 and r ~= nil then leaks[#leaks + 1] = label .. " mt." .. key end
            end
        end
        check("server", ROOTS.new_server)
        check("socket", ROOTS.new_socket)
        check("net", net)
        check("TcpServer", net.TcpServer)
        check("TcpSocket", net.TcpSocket)
        check("luanet", luanet)
        check("_G", _G)
        check("string", "")
        for k, v in pairs(net.TcpServer) do check("TcpServer." .. tostring(k), v) end
        for k, v in pairs(net.TcpSocket) do check("TcpSocket." .. tostring(k), v) end
        for k, v in pairs(luanet) do check("luanet." .. tostring(k), v) end
    """)
    assert lua_list(host, "leaks") == []


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_unsandboxed_host_has_io_and_os(make_host, lua, tmp_path):
    host = make_host(lua=lua, sandbox=False)
    target = tmp_path / "written by lua.txt"
    host.globals["path"] = str(target).encode()
    host.execute("""
        local f = assert(io.open(path, "wb"))
        f:write("from lua\\0")
        f:close()
    """)
    assert target.read_bytes() == b"from lua\x00"
    assert host.eval("type(os.execute)") == b"function"
    assert host.eval("os.remove(path)") is True
    assert not target.exists()
    # net and luanet are there too
    assert host.eval("type(net.TcpServer.new)") == b"function"
    assert host.eval("type(luanet.run_until)") == b"function"
