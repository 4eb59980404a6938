"""Every bad input API.md lists, and the object rules (section 1, "Object
rules"): what raises, with what message, and what returns false instead."""

from __future__ import annotations

import re
import socket

import pytest

from luanet import LuaError

from conftest import ALL_LUAS, lua_int

SERVER_READ_ONLY = ["listening", "port", "has_pending_connections", "error_string", "error"]
SOCKET_READ_ONLY = ["state", "error", "error_string", "valid", "local_address", "local_port",
                    "remote_address", "remote_port", "is_open", "open_mode", "bytes_available",
                    "bytes_to_write", "at_end", "pos", "readable", "writeable", "sequential",
                    "can_read_line"]
SERVER_HANDLERS = ["new_connection_handler", "accept_error_handler"]
SOCKET_HANDLERS = ["ready_read_handler", "bytes_written_handler", "about_to_close_handler",
                   "connected_handler", "disconnected_handler", "error_handler",
                   "state_changed_handler", "host_found_handler"]

NEW = {"server": "net.TcpServer.new()", "socket": "net.TcpSocket.new()"}


def lua_error(host, source) -> str:
    with pytest.raises(LuaError) as info:
        host.execute(source)
    return str(info.value)


@pytest.mark.parametrize("kind,prop", [("server", p) for p in SERVER_READ_ONLY]
                         + [("socket", p) for p in SOCKET_READ_ONLY])
def test_assigning_read_only_property_names_it(host, kind, prop):
    host.execute("obj = " + NEW[kind])
    before = host.eval("obj.%s" % prop)
    message = lua_error(host, "obj.%s = 1" % prop)
    assert prop in message
    assert host.eval("obj.%s" % prop) == before


@pytest.mark.parametrize("kind,key", [("server", "new_conection_handler"), ("server", "prot"),
                                      ("server", "max_pending"), ("socket", "ready_handler"),
                                      ("socket", "anything_else")])
def test_assigning_unknown_key_names_it(host, kind, key):
    host.execute("obj = " + NEW[kind])
    message = lua_error(host, "obj.%s = function() end" % key)
    assert key in message


@pytest.mark.parametrize("kind,handler", [("server", h) for h in SERVER_HANDLERS]
                         + [("socket", h) for h in SOCKET_HANDLERS])
def test_handler_field_accepts_function_or_nil_only(host, kind, handler):
    host.execute("obj = %s; f = function() end" % NEW[kind])
    host.execute("obj.%s = f" % handler)
    assert host.eval("obj.%s == f" % handler) is True
    for bad in ["5", "'a string'", "{}", "true"]:
        with pytest.raises(LuaError):
            host.execute("obj.%s = %s" % (handler, bad))
        assert host.eval("obj.%s == f" % handler) is True, "a rejected value replaced the handler"
    host.execute("obj.%s = nil" % handler)
    assert host.eval("obj.%s == nil" % handler) is True


@pytest.mark.parametrize("call,method", [
    ("net.TcpServer.new().listen(0)", "listen"),
    ("net.TcpServer.new().close()", "close"),
    ("net.TcpServer.new().pause_accepting()", "pause_accepting"),
    ("net.TcpSocket.new().connect('127.0.0.1', 1)", "connect"),
    ("net.TcpSocket.new().read_all_string()", "read_all_string"),
    ("net.TcpSocket.new().write_string('x')", "write_string"),
])
def test_dot_call_says_to_use_colon(host, call, method):
    message = lua_error(host, call)
    assert ":%s(" % method in message, message


def test_dot_call_message_for_listen(host):
    host.execute("server = net.TcpServer.new()")
    message = lua_error(host, "server.listen(0)")
    assert "server:listen(" in message, message


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_listen_wrong_type_message_in_lua_format(make_host, lua):
    host = make_host(lua=lua)
    host.execute("server = net.TcpServer.new()")
    message = lua_error(host, "server:listen('abc')")
    assert "bad argument #1 to 'listen' (number expected, got string)" in message
    message = lua_error(host, "server:listen({})")
    assert "bad argument #1 to 'listen' (number expected, got table)" in message
    message = lua_error(host, "server:listen(nil)")
    assert "bad argument #1 to 'listen' (number expected, got nil)" in message
    message = lua_error(host, "server:listen()")
    assert "bad argument #1 to 'listen' (number expected, got no value)" in message
    assert host.eval("server.listening") is False


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_non_integer_port_raises(make_host, lua):
    host = make_host(lua=lua)
    host.execute("server = net.TcpServer.new()")
    message = lua_error(host, "server:listen(1.5)")
    assert "bad argument #1 to 'listen'" in message
    assert host.eval("server.listening") is False
    message = lua_error(host, "server:listen(0/0)")
    assert "bad argument #1 to 'listen'" in message


@pytest.mark.parametrize("source,name,argn,expected", [
    ("net.TcpServer.new():listen_async(0, 'x')", "listen_async", 2, "function expected, got string"),
    ("net.TcpServer.new():listen_async('x', function() end)", "listen_async", 1,
     "number expected, got string"),
    ("net.TcpServer.new():next_pending_connection_async(5)", "next_pending_connection_async", 1,
     "function expected, got number"),
    ("net.TcpSocket.new():connect({}, 80)", "connect", 1, "string expected, got table"),
    ("net.TcpSocket.new():connect('127.0.0.1', 'x')", "connect", 2, "number expected, got string"),
    ("net.TcpSocket.new():connect('127.0.0.1')", "connect", 2, "number expected, got no value"),
    ("net.TcpSocket.new():bind('x')", "bind", 1, "number expected, got string"),
    ("net.TcpSocket.new():read_string('x')", "read_string", 1, "number expected, got string"),
    ("net.TcpSocket.new():peek_string()", "peek_string", 1, "number expected, got no value"),
    ("net.TcpSocket.new():write_string({})", "write_string", 1, "string expected, got table"),
    ("net.TcpSocket.new():write_bytes('x')", "write_bytes", 1, "table expected, got string"),
    ("net.TcpSocket.new():read_string_async(1, 'x')", "read_string_async", 2,
     "function expected, got string"),
])
def test_wrong_argument_types_raise_in_lua_format(host, source, name, argn, expected):
    message = lua_error(host, source)
    # API.md: "bad argument #N to 'name' (... expected, got ...)". Wording
    # between "expected" and ", got" (e.g. "as the last argument") is allowed.
    want, got = expected.split(" expected, ")
    pattern = r"bad argument #%d to '%s' \(%s expected[^()]*, %s\)" % (
        argn, re.escape(name), re.escape(want), re.escape(got))
    assert re.search(pattern, message), message


@pytest.mark.parametrize("source,name", [
    ("net.TcpSocket.new():read_string(1.5)", "read_string"),
    ("net.TcpSocket.new():bind(0.5)", "bind"),
    ("net.TcpSocket.new():connect('127.0.0.1', 80.5)", "connect"),
])
def test_non_integer_numbers_raise(host, source, name):
    message = lua_error(host, source)
    assert "bad argument" in message and "'%s'" % name in message, message


@pytest.mark.parametrize("value", ["-1", "1.5", "'5'", "true", "{}", "nil"])
def test_max_pending_connections_rejects_non_integers(host, value):
    host.execute("server = net.TcpServer.new(); server.max_pending_connections = 7")
    with pytest.raises(LuaError):
        host.execute("server.max_pending_connections = %s" % value)
    assert lua_int(host, "server.max_pending_connections") == 7


@pytest.mark.parametrize("port", [65536, 100000, -1])
def test_listen_unusable_port_returns_false_without_raising(host, port):
    host.execute("server = net.TcpServer.new(); result = server:listen(%d)" % port)
    assert host.eval("result") is False
    assert host.eval("server.error_string") != b""
    assert host.eval("server.listening") is False


@pytest.fixture
def port_in_use():
    """A port a Python socket listens on for the test's length."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    yield blocker.getsockname()[1]
    blocker.close()


def test_listen_port_in_use_returns_false_with_address_in_use(host, port_in_use):
    host.execute("server = net.TcpServer.new(); result = server:listen(%d)" % port_in_use)
    assert host.eval("result") is False
    assert lua_int(host, "server.error") == 8
    assert host.eval("server.error_string") != b""


def test_bind_port_in_use_returns_false_with_address_in_use(host, port_in_use):
    host.execute("s = net.TcpSocket.new(); result = s:bind(%d)" % port_in_use)
    assert host.eval("result") is False
    assert lua_int(host, "s.error") == 8
    assert host.eval("s.error_string") != b""
    assert lua_int(host, "s.state") != 4


@pytest.mark.parametrize("port", [65536, -1])
def test_bind_unusable_port_returns_false_without_raising(host, port):
    host.execute("s = net.TcpSocket.new(); result = s:bind(%d)" % port)
    assert host.eval("result") is False
    assert host.eval("s.error_string") != b""
    assert lua_int(host, "s.state") == 0


@pytest.mark.parametrize("entry", ["256", "-1", "1.5", "'a'", "true", "{}", "1e300"])
def test_write_bytes_bad_entry_raises_even_unconnected(host, entry):
    with pytest.raises(LuaError):
        host.execute("net.TcpSocket.new():write_bytes({1, %s, 2})" % entry)


def test_objects_still_work_after_bad_input(host):
    host.execute("server = net.TcpServer.new()")
    for source in ["server:listen('x')", "server.listening = true", "server.bogus = 1",
                   "server.new_connection_handler = 5", "server.listen(0)"]:
        with pytest.raises(LuaError):
            host.execute(source)
    assert host.eval("server:listen(0)") is True
    assert lua_int(host, "server.port") > 0
