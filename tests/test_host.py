"""luanet.LuaHost (API.md section 2) and the Lua helpers (section 3)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys

import pytest

from luanet import LuaError, LuaHost

from conftest import (
    ALL_LUAS,
    DOC_ECHO,
    SAFETY,
    connect,
    echo_once,
    fd_count,
    in_thread,
    listening_entries,
    lua_int,
    recv_exact,
    recv_until_eof,
    refused,
    run_until,
    wait_for,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _conversation(port):
    """Two messages on one connection, then a second connection."""
    with connect(port) as s:
        s.sendall(b"hello\n")
        first = recv_exact(s, 6)
        s.sendall(b"\x00binary\xff\n")
        second = recv_exact(s, 9)
    third = echo_once(port, b"second connection")
    return first, second, third


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_readme_scenario_doc_echo_serves_python_client(make_host, lua):
    """A script written only from the docs serves a plain Python client."""
    host = make_host(lua=lua)
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    assert port > 0
    assert wait_for(host, in_thread(_conversation, port)) == (
        b"hello\n", b"\x00binary\xff\n", b"second connection")


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_runtime_is_the_lua_asked_for(make_host, lua):
    host = make_host(lua=lua)
    version = host.eval("_VERSION")
    if lua == "luajit":
        assert version == b"Lua 5.1"
        # goto is LuaJIT syntax that plain Lua 5.1 rejects
        host.execute("do goto done end ::done::")
    else:
        assert version == ("Lua " + lua).encode()
    if lua == "5.1":
        with pytest.raises(LuaError):
            host.execute("do goto done end ::done::")


def test_default_runtime_is_5_4():
    with LuaHost(bind_address="127.0.0.1") as host:
        assert host.eval("_VERSION") == b"Lua 5.4"


def test_eval_values_and_bytes(host):
    assert host.eval("1 + 2") == 3
    assert host.eval("'abc'") == b"abc"
    assert host.eval("'\\0\\255'") == b"\x00\xff"
    assert host.eval("nil") is None
    assert host.eval("true") is True
    assert host.eval("false") is False
    host.execute("s = 'set by execute'")
    assert host.eval("s") == b"set by execute"


def test_lua_error_carries_the_lua_message(host):
    assert issubclass(LuaError, Exception)
    with pytest.raises(LuaError) as info:
        host.execute("error('boom from lua')")
    assert "boom from lua" in str(info.value)
    with pytest.raises(LuaError) as info:
        host.eval("no_such_function()")
    assert "no_such_function" in str(info.value)
    with pytest.raises(LuaError):
        host.execute("this is not lua")
    # the host still works afterwards
    assert host.eval("40 + 2") == 42


def test_execute_name_appears_in_error(host):
    with pytest.raises(LuaError) as info:
        host.execute("\n\nerror('named failure')", name="my_chunk_name")
    text = str(info.value)
    assert "named failure" in text
    assert "my_chunk_name" in text


def test_execute_file(host, tmp_path):
    good = tmp_path / "good.lua"
    good.write_bytes(b"from_file = 'loaded \\1'\nserver = net.TcpServer.new()\n")
    host.execute_file(str(good))
    assert host.eval("from_file") == b"loaded \x01"
    assert host.eval("server.listening") is False
    bad = tmp_path / "bad.lua"
    bad.write_text("local x = 1\nerror('failure inside the file')\n")
    with pytest.raises(LuaError) as info:
        host.execute_file(str(bad))
    assert "failure inside the file" in str(info.value)


def test_globals_pass_values_both_ways(host):
    host.globals["from_python"] = 41
    host.globals["blob"] = b"\x00\x01\xfe\xff"
    assert host.eval("from_python + 1") == 42
    assert host.eval("#blob") == 4
    host.execute("from_lua = 'text'")
    assert host.globals["from_lua"] == b"text"


def test_run_until_returns_bool(host):
    assert host.run_until(lambda: True, SAFETY) is True
    assert host.run_until(lambda: False, 0.2) is False
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3

    assert host.run_until(third_time, SAFETY) is True
    assert len(calls) >= 3


def test_run_for_runs_the_loop(host):
    host.execute("""
        done = false
        s = net.TcpServer.new()
        s:listen_async(0, function(server, result) done = result end)
    """)
    assert host.eval("done") is False
    host.run_for(0.1)
    assert host.eval("done") is True


def test_context_manager_closes_everything():
    with LuaHost(bind_address="127.0.0.1") as host:
        assert isinstance(host, LuaHost)
        host.execute(DOC_ECHO)
        port = lua_int(host, "server.port")
        assert wait_for(host, in_thread(echo_once, port, b"inside")) == b"inside"
    assert listening_entries(port) == []
    assert refused(port)


def test_close_leaves_no_listening_port_and_no_descriptor(tmp_path):
    # A first host made and closed so that one-time process set-up does not count.
    LuaHost(bind_address="127.0.0.1").close()
    gc.collect()
    before = fd_count()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    ls.settimeout(SAFETY)
    py_port = ls.getsockname()[1]
    before_with_listener = fd_count()
    host = LuaHost(bind_address="127.0.0.1")
    try:
        host.execute(DOC_ECHO + """
            other = net.TcpServer.new()
            assert(other:listen(0))
            client = net.TcpSocket.new()
            client:connect("127.0.0.1", %d)
        """ % py_port)
        port = lua_int(host, "server.port")
        other_port = lua_int(host, "other.port")
        accepted = in_thread(ls.accept)
        conn, _ = wait_for(host, accepted)
        py_client = wait_for(host, in_thread(connect, port))
        echoed = in_thread(lambda: (py_client.sendall(b"x"), recv_exact(py_client, 1))[1])
        assert wait_for(host, echoed) == b"x"
    finally:
        host.close()
    try:
        assert listening_entries(port) == []
        assert listening_entries(other_port) == []
        assert refused(port)
        conn.settimeout(SAFETY)
        py_client.settimeout(SAFETY)
        assert recv_until_eof(conn) == b"", "the Lua client socket was not closed"
        assert recv_until_eof(py_client) == b"", "the accepted socket was not closed"
    finally:
        conn.close()
        py_client.close()
    gc.collect()
    assert fd_count() == before_with_listener
    ls.close()
    assert fd_count() == before


def test_bind_address_confines_listen_to_it(host):
    host.execute("s = net.TcpServer.new(); assert(s:listen(0))")
    port = lua_int(host, "s.port")
    assert listening_entries(port) == [("tcp", "0100007F")]
    wait_for(host, in_thread(connect, port)).close()
    if _ipv6_loopback():
        assert refused(port, "::1")


def test_no_bind_address_listens_on_all_interfaces(make_host):
    host = make_host(bind_address=None)
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    entries = listening_entries(port)
    assert entries, "nothing listening"
    for _, addr in entries:
        assert set(addr) == {"0"}, entries  # the wildcard address, v4 or v6
    assert wait_for(host, in_thread(echo_once, port, b"v4")) == b"v4"
    if _ipv6_loopback():
        def v6():
            with connect(port, "::1") as s:
                s.sendall(b"v6")
                return recv_exact(s, 2)
        assert wait_for(host, in_thread(v6)) == b"v6"


def test_a_connection_to_a_server_on_every_interface_knows_its_own_ends(make_host):
    # a server on one address gives its connections its own address; one on
    # every interface must ask each connection which of its addresses it is
    host = make_host(bind_address=None)
    host.execute("""
    server = net.TcpServer.new()
    assert(server:listen(0))
    seen = {}
    local function ends(c) return { c.local_address, c.local_port, c.remote_address, c.remote_port } end
    server.new_connection_handler = function(s)
        kept = s:next_pending_connection()
        seen.accepted = ends(kept)
        -- the peer closed: still connected here, so both ends still known
        kept.error_handler = function(c) seen.closing = ends(c) end
    end
    """)
    port = lua_int(host, "server.port")
    client = wait_for(host, in_thread(connect, port))
    mine = client.getsockname()[1]
    run_until(host, lambda: host.eval("seen.accepted") is not None, "the connection")
    client.close()
    run_until(host, lambda: host.eval("seen.closing") is not None, "the peer's close")
    for when in ("accepted", "closing"):
        got = [host.eval(f"seen.{when}[{i}]") for i in (1, 2, 3, 4)]
        assert got == [b"127.0.0.1", port, b"127.0.0.1", mine], when


def test_attach_to_running_asyncio_loop():
    def client(port):
        with connect(port) as s:
            s.sendall(b"through the attached loop")
            return recv_exact(s, 25)

    async def main():
        host = LuaHost(loop=asyncio.get_running_loop(), bind_address="127.0.0.1")
        try:
            host.execute(DOC_ECHO)
            port = lua_int(host, "server.port")
            with pytest.raises(RuntimeError):
                host.run_for(0.01)
            with pytest.raises(RuntimeError):
                host.run_until(lambda: True, 1.0)
            loop = asyncio.get_running_loop()
            reply = await asyncio.wait_for(loop.run_in_executor(None, client, port), SAFETY)
            assert reply == b"through the attached loop"
            assert host.eval("server.listening") is True
        finally:
            await asyncio.wait_for(host.aclose(), SAFETY)
        return port

    port = asyncio.run(main())
    assert listening_entries(port) == []
    assert refused(port)


SERVE_SCRIPT = r"""
import sys
from luanet import LuaHost

def on_error(message):
    if "stop please" in message:
        host.stop()
    else:
        print("unexpected: " + message, file=sys.stderr)

host = LuaHost(bind_address="127.0.0.1", on_error=on_error)
host.execute(r'''
    server = net.TcpServer.new()
    server.new_connection_handler = function(srv)
        local s = srv:next_pending_connection()
        s.ready_read_handler = function(s)
            local data = s:read_all_string()
            s:write_string(data)
            if data == "stop\n" then error("stop please") end
        end
    end
    assert(server:listen(0))
''')
print(int(host.eval("server.port")), flush=True)
host.serve_forever()
print("returned", flush=True)
host.close()
"""


def _start_serving(tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(SERVE_SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError("serving script failed: " + proc.communicate()[1][-3000:])
    port = int(line)
    assert echo_once(port, b"serving\n") == b"serving\n"
    return proc, port


@pytest.mark.parametrize("how", ["stop", "SIGINT", "SIGTERM"])
def test_serve_forever_until_stop_or_signal(tmp_path, how):
    proc, port = _start_serving(tmp_path)
    try:
        if how == "stop":
            assert echo_once(port, b"stop\n") == b"stop\n"
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.splitlines() == ["returned"], (out, err)
    assert "unexpected" not in err


# --------------------------------------------------------------------------
# the Lua helpers: luanet.run_until / luanet.run_for

def test_luanet_module_is_global_and_requirable(host):
    assert host.eval("type(luanet)") == b"table"
    assert host.eval("require('luanet') == luanet") is True
    assert host.eval("type(luanet.run_until)") == b"function"
    assert host.eval("type(luanet.run_for)") == b"function"


def test_luanet_run_until_from_a_script(host):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    ls.settimeout(SAFETY)
    port = ls.getsockname()[1]

    def serve_one():
        conn, _ = ls.accept()
        with conn:
            conn.sendall(b"hi from python\n")
            return recv_until_eof(conn)

    fut = in_thread(serve_one)
    try:
        host.execute("""
            c = net.TcpSocket.new()
            c:connect("127.0.0.1", %d)
            ok = luanet.run_until(function() return c.can_read_line end, 10)
            line = c:read_line_string()
            c:write_string("bye\\n")
            c:disconnect()
            timed_out = luanet.run_until(function() return false end, 0.1)
        """ % port)
        assert host.eval("ok") is True
        assert host.eval("line") == b"hi from python\n"
        assert host.eval("timed_out") is False
        assert wait_for(host, fut) == b"bye\n"
    finally:
        ls.close()


def test_luanet_run_for_from_a_script(host):
    host.execute("""
        done = false
        s = net.TcpServer.new()
        s:listen_async(0, function(server, result) done = result end)
        before = done
        luanet.run_for(0.05)
    """)
    assert host.eval("before") is False
    assert host.eval("done") is True


@pytest.mark.parametrize("helper", ["luanet.run_for(0.01)",
                                    "luanet.run_until(function() return true end, 1)"])
def test_luanet_helpers_raise_inside_a_handler(host, helper):
    host.execute("""
        outcome = nil
        s = net.TcpServer.new()
        s:listen_async(0, function(server, result)
            local ok, err = pcall(function() %s end)
            outcome = tostring(ok) .. "|" .. tostring(err)
        end)
    """ % helper)
    run_until(host, lambda: host.eval("outcome") is not None, "the callback")
    outcome = host.eval("outcome")
    ok, _, message = outcome.partition(b"|")
    assert ok == b"false", outcome
    assert message not in (b"", b"nil"), outcome
    # "a clear error": it says why (a handler / the running loop)
    lowered = message.lower()
    assert b"handler" in lowered or b"running" in lowered or b"inside" in lowered, message


def test_load_module_gives_bundled_code_the_debug_library_but_not_scripts(host):
    busted = host.load_module("luanet_busted")
    assert busted is not None
    # The sandboxed script still sees no debug library...
    assert host.eval("debug") is None
    # ...and a module name is a name, not a path into the file system.
    with pytest.raises(ValueError):
        host.load_module("../net")


@pytest.mark.source
def test_an_internal_error_in_a_native_is_logged_and_lua_gets_nil(make_host, monkeypatch, caplog):
    """A Python exception inside a native call is a bug of luanet's: it is
    logged with the native's name and never raised into the script, which
    gets nil (the per-connection natives have their own guard; the rest
    share one)."""
    from luanet.bridge import Bridge
    from luanet.core import Event

    def _next_pending(self, oid):
        raise RuntimeError("boom")

    wanted = Bridge._want

    def _want(self, oid, event, on):
        if event == Event.ACCEPT_ERROR:
            raise RuntimeError("boom")
        wanted(self, oid, event, on)

    monkeypatch.setattr(Bridge, "_next_pending", _next_pending)
    monkeypatch.setattr(Bridge, "_want", _want)
    host = make_host()
    host.execute("""
        server = net.TcpServer.new()
        assert(server:listen(0))
        server.accept_error_handler = function() end
        taken = "not yet"
        server.new_connection_handler = function(s) taken = s:next_pending_connection() end
    """)
    client = socket.create_connection(("127.0.0.1", lua_int(host, "server.port")))
    try:
        run_until(host, lambda: host.eval("taken") != b"not yet", "the handler")
        assert host.eval("taken") is None
    finally:
        client.close()
    said = [r.getMessage() for r in caplog.records if r.name == "luanet"]
    assert "internal error in next_pending" in said and "internal error in _want" in said
