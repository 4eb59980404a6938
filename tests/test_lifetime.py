"""Object lifetime and garbage collection (API.md "Lifetime"), on 5.4, 5.1 and
LuaJIT (the last two have no __gc on tables)."""

from __future__ import annotations

import socket
import time

import pytest

from conftest import (
    GC_LUAS,
    SAFETY,
    connect,
    echo_once,
    in_thread,
    lua_int,
    recv_exact,
    recv_until_eof,
    refused,
    run_child_script,
    run_until,
    wait_for,
)

# The server keeps no Lua reference to the sockets it hands out.
GC_SERVER = """
server = net.TcpServer.new()
server.new_connection_handler = function(srv)
    local s = srv:next_pending_connection()
    s.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
    taken = (taken or 0) + 1
end
assert(server:listen(0))
"""

COLLECT = "collectgarbage('collect'); collectgarbage('collect')"


def plain_listener() -> socket.socket:
    """A Python listening socket on 127.0.0.1 for a script's client to reach."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def _echo_on(s, payload):
    s.sendall(payload)
    return recv_exact(s, len(payload))


def _refused_soon(host, port):
    """Drive the loop until a connect to port is refused (probing at most
    every 50 ms, so a server that wrongly keeps listening is not flooded)."""
    last = [0.0]

    def probe():
        now = time.monotonic()
        if now - last[0] < 0.05:
            return False
        last[0] = now
        return refused(port)

    return host.run_until(probe, SAFETY)


@pytest.mark.parametrize("lua", GC_LUAS)
def test_collected_server_stops_listening_and_closes_its_sockets(make_host, lua, caplog):
    host = make_host(lua=lua)
    host.execute(GC_SERVER)
    port = lua_int(host, "server.port")
    client = wait_for(host, in_thread(connect, port))
    try:
        assert wait_for(host, in_thread(_echo_on, client, b"before")) == b"before"
        assert lua_int(host, "taken") == 1
        eof = in_thread(recv_until_eof, client)
        with caplog.at_level("WARNING"):
            host.execute("server = nil; " + COLLECT)
            # the socket it handed out is closed: the client sees EOF
            assert wait_for(host, eof) == b""
            # and it no longer listens
            assert _refused_soon(host, port) is True, "the collected server still listens"
        # a listening server that is collected logs a warning naming its port
        warnings = [r for r in caplog.records
                    if r.levelname == "WARNING" and str(port) in r.getMessage()]
        assert warnings, [r.getMessage() for r in caplog.records]
    finally:
        client.close()


@pytest.mark.parametrize("lua", GC_LUAS)
def test_sockets_without_lua_reference_live_while_server_lives(make_host, lua):
    host = make_host(lua=lua)
    host.execute(GC_SERVER)
    port = lua_int(host, "server.port")
    clients = [wait_for(host, in_thread(connect, port)) for _ in range(3)]
    try:
        run_until(host, lambda: host.eval("taken") == 3, "3 taken sockets")
        for round_ in range(10):
            host.execute(COLLECT)
            host.run_for(0.01)
            for i, c in enumerate(clients):
                payload = b"round %d client %d" % (round_, i)
                assert wait_for(host, in_thread(_echo_on, c, payload)) == payload
        assert host.eval("server.listening") is True
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("lua", GC_LUAS)
def test_collected_new_socket_is_closed(make_host, lua):
    host = make_host(lua=lua)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    ls.settimeout(SAFETY)
    port = ls.getsockname()[1]
    try:
        accepted = in_thread(ls.accept)
        host.execute("""
            c = net.TcpSocket.new()
            c.connected_handler = function(s) connected = true end
            c:connect("127.0.0.1", %d)
        """ % port)
        conn, _ = wait_for(host, accepted)
        run_until(host, lambda: host.eval("connected") is True, "connected")
        conn.settimeout(SAFETY)
        eof = in_thread(recv_until_eof, conn)
        host.execute("c = nil; " + COLLECT)
        assert wait_for(host, eof) == b"", "the collected socket was not closed"
        conn.close()
    finally:
        ls.close()


@pytest.mark.parametrize("lua", GC_LUAS)
def test_referenced_server_is_not_collected(make_host, lua):
    """The other half of the rule: a server Lua can reach stays alive."""
    host = make_host(lua=lua)
    host.execute("holder = {}\n" + GC_SERVER.replace("server = net.TcpServer.new()",
                                                     "holder.s = net.TcpServer.new(); server = holder.s"))
    port = lua_int(host, "server.port")
    host.execute("server = nil; " + COLLECT)
    host.run_for(0.05)
    assert host.eval("holder.s.listening") is True
    assert wait_for(host, in_thread(echo_once, port, b"alive")) == b"alive"


@pytest.mark.parametrize("lua", GC_LUAS)
def test_a_collected_socket_still_delivers_what_it_was_given(make_host, lua):
    """Written, disconnected, then dropped by the script and collected: the
    bytes still go out, the host counts as active until they have, and a
    close() that cannot wait for them says how many were discarded."""
    host = make_host(lua=lua)
    listener = plain_listener()
    n = 4 << 20
    with listener:
        host.execute("""
            local port, n = ...
            do
              local s = net.TcpSocket.new()
              s:connect("127.0.0.1", port)
              s:write_string(string.rep("x", n))
              s:disconnect()
            end
            collectgarbage(); collectgarbage()
        """.replace("local port, n = ...", f"local port, n = {listener.getsockname()[1]}, {n}"))
        host.run_for(0.2)  # the connection is made from the loop
        listener.settimeout(SAFETY)
        peer, _ = listener.accept()
        with peer:
            host.run_for(0.2)
            host.execute("collectgarbage(); collectgarbage()")
            assert host.active  # still sending for the collected socket
            got = in_thread(recv_until_eof, peer)
            data = wait_for(host, got)
        assert len(data) == n
        run_until(host, lambda: not host.active, "the flush to end")


@pytest.mark.parametrize("lua", GC_LUAS)
def test_a_socket_collected_inside_a_handler_is_closed(make_host, lua):
    """Finalisers that run during a dispatch hand their ids to Python when
    the dispatch ends: the collected socket is closed then, not left open."""
    host = make_host(lua=lua)
    listener = plain_listener()
    with listener:
        host.execute("""
            local port = ...
            luanet.after(0, function()
              local s = net.TcpSocket.new()
              s:connect("127.0.0.1", port)
            end)
        """.replace("local port = ...", f"local port = {listener.getsockname()[1]}"))
        listener.settimeout(SAFETY)
        accepted = in_thread(listener.accept)
        peer, _ = wait_for(host, accepted)
        with peer:
            host.execute("luanet.after(0, function() collectgarbage(); collectgarbage() end)")
            assert wait_for(host, in_thread(recv_until_eof, peer)) == b""
        run_until(host, lambda: not host.active, "the host to hold nothing open")


def test_a_finalised_socket_reached_through_a_weak_table_answers_as_released(make_host):
    """Lua 5.4 keeps a finalised object as a weak table's key until the next
    collection: reached that way inside the same handler (its release still
    queued), it answers as released, as it would once Python has its id."""
    host = make_host(lua="5.4")
    listener = plain_listener()
    with listener:
        host.execute("""
            local port = ...
            weak = setmetatable({}, { __mode = "k" })
            luanet.after(0, function()
              do
                local s = net.TcpSocket.new()
                s:connect("127.0.0.1", port)
                weak[s] = true
              end
              collectgarbage()  -- one cycle: finalised, still a key of weak
              local s = next(weak)
              local ok, why = s:connect("127.0.0.1", port)
              seen = { state = s.state, ok = ok, why = why }
            end)
        """.replace("local port = ...", f"local port = {listener.getsockname()[1]}"))
        run_until(host, lambda: host.eval("seen ~= nil"), "the handler")
        assert lua_int(host, "seen.state") == 0
        assert host.eval("seen.ok") is False
        assert host.eval("seen.why") == b"The object was released"
        run_until(host, lambda: not host.active, "the host to hold nothing open")


def test_close_counts_what_a_collected_socket_could_not_send(make_host):
    host = make_host()
    listener = plain_listener()
    with listener:
        host.execute(f"""
            do
              local s = net.TcpSocket.new()
              s:connect("127.0.0.1", {listener.getsockname()[1]})
              s:write_string(string.rep("x", 16 * 1024 * 1024))
              s:disconnect()
            end
        """)
        host.run_for(0.2)
        listener.settimeout(SAFETY)
        peer, _ = listener.accept()
        with peer:  # never reads
            host.run_for(0.2)
            host.execute("collectgarbage(); collectgarbage()")
            discarded = host.close(grace=0.2)
            assert discarded > 0
            assert host.discarded_peers == 1


# The minimal sequence the stateful fuzzer found on uvloop (seed 34118): c1's
# transport is closed inside its connection_made (disconnect() while
# connecting) while c2, refused, reconnects from a timer and gets the number
# c1's descriptor had. uvloop's create_connection(sock=) took charge of c1's
# socket object only after connection_made, so that object closed the number
# a second time when collected: c2's descriptor, which libuv was about to
# watch, and libuv aborted the process.
CLOSED_WHILE_MADE = """
import json, socket
from luanet import LuaHost
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(16)
ref = socket.socket(); ref.bind(("127.0.0.1", 0))  # bound, not listening: refused
host = LuaHost(event_loop="uvloop", bind_address="127.0.0.1")
host.execute('''
local lport, rport = %d, %d
refusals = 0
c1, c2 = net.TcpSocket.new(), net.TcpSocket.new()
c2.error_handler = function(s)
  refusals = refusals + 1
  luanet.after(0, function() c2:connect("127.0.0.1", rport) end)
end
c1:connect("127.0.0.1", lport)
c2:connect("127.0.0.1", rport)
c1:disconnect()
''' % (ls.getsockname()[1], ref.getsockname()[1]))
host.run_for(0.5)
print(json.dumps({"refusals": host.eval("refusals"), "c1": host.eval("c1.state")}))
host.close()
"""


def test_a_connection_closed_while_it_is_made_closes_its_descriptor_once(tmp_path):
    pytest.importorskip("uvloop")
    res = run_child_script(tmp_path, CLOSED_WHILE_MADE)  # the child aborted before the fix
    assert res["refusals"] >= 3 and res["c1"] == 0
