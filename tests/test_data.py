"""Data integrity and volume: every byte value both ways, 8 MiB echoes,
300 concurrent clients, and no descriptor left behind by 300 cycles."""

from __future__ import annotations

import gc
import os

import pytest

from conftest import (
    ALL_LUAS,
    DOC_ECHO,
    connect,
    echo_large,
    echo_once,
    fd_count,
    in_thread,
    lua_int,
    many_echo_clients,
    recv_exact,
    run_until,
    wait_for,
)

ALL_BYTES = bytes(range(256))


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_every_byte_value_both_ways(make_host, lua):
    host = make_host(lua=lua)
    host.execute("""
        local t = {}
        for i = 0, 255 do t[#t + 1] = string.char(i) end
        all_bytes = table.concat(t)
        server = net.TcpServer.new()
        server.new_connection_handler = function(srv)
            local s = srv:next_pending_connection()
            s.ready_read_handler = function(s)
                if s.bytes_available >= 256 then
                    received = s:read_string(256)
                    matches = (received == all_bytes)
                    s:write_string(all_bytes)
                end
            end
        end
        assert(server:listen(0))
    """)
    assert host.eval("all_bytes") == ALL_BYTES
    port = lua_int(host, "server.port")
    reply = wait_for(host, in_thread(echo_once, port, ALL_BYTES))
    assert reply == ALL_BYTES
    assert host.eval("received") == ALL_BYTES
    assert host.eval("matches") is True


@pytest.mark.parametrize("lua", ALL_LUAS)
def test_a_handed_string_written_again_goes_where_it_is_written(make_host, lua):
    # write_string of the string a ready_read_handler was handed sends the
    # batch's own bytes object (net.lua's echo path): to the socket the bytes
    # came from (only their place crosses), to another socket (the place and
    # its id), and as an equal string made anew
    host = make_host(lua=lua)
    host.execute("""
        conns, sizes = {}, {}
        server = net.TcpServer.new()
        server.new_connection_handler = function(srv)
            while srv.has_pending_connections do
                local c = srv:next_pending_connection()
                conns[#conns + 1] = c
                c.ready_read_handler = function(c)
                    local s = c:read_all_string()
                    local other = conns[1] == c and conns[2] or conns[1]
                    local n1 = c:write_string(s)
                    local n2 = other:write_string(s)
                    local n3 = c:write_string(string.sub(s .. "x", 1, -2))
                    assert(n1 == #s and n2 == #s and n3 == #s, "write_string's count")
                    sizes[#sizes + 1] = #s
                end
            end
        end
        assert(server:listen(0))
    """)
    port = lua_int(host, "server.port")
    a, b = connect(port), connect(port)
    try:
        run_until(host, lambda: host.eval("#conns") == 2, "both connections")
        for sender, receiver, payload in ((a, b, b"from-a"), (b, a, os.urandom(3000))):
            sender.sendall(payload)
            relayed = wait_for(host, in_thread(recv_exact, receiver, len(payload)))
            back = wait_for(host, in_thread(recv_exact, sender, 2 * len(payload)))
            assert relayed == payload
            # each piece the handler was handed comes back twice, in order
            pieces = [lua_int(host, "sizes[%d]" % i) for i in range(1, lua_int(host, "#sizes") + 1)]
            expected, at = b"", 0
            for size in pieces:
                expected += payload[at:at + size] * 2
                at += size
                if at == len(payload):
                    break
            assert back == expected
            host.execute("sizes = {}")
    finally:
        a.close()
        b.close()


def test_every_byte_value_through_byte_tables(host):
    host.execute("""
        server = net.TcpServer.new()
        server.new_connection_handler = function(srv)
            local s = srv:next_pending_connection()
            s.ready_read_handler = function(s)
                if s.bytes_available >= 256 then
                    local t = s:read_bytes(256)
                    local ok = #t == 256
                    for i = 1, 256 do ok = ok and t[i] == i - 1 end
                    table_ok = ok
                    local out = {}
                    for i = 0, 255 do out[#out + 1] = 255 - i end
                    s:write_bytes(out)
                end
            end
        end
        assert(server:listen(0))
    """)
    port = lua_int(host, "server.port")
    reply = wait_for(host, in_thread(echo_once, port, ALL_BYTES))
    assert reply == bytes(reversed(ALL_BYTES))
    assert host.eval("table_ok") is True


def test_python_bytes_reach_lua_unchanged(host):
    host.globals["blob"] = ALL_BYTES
    assert host.eval("#blob") == 256
    assert host.eval("blob:byte(1) == 0 and blob:byte(256) == 255") is True
    assert host.eval("blob") == ALL_BYTES


def test_8_mib_random_payload_echoes_identical(host):
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    payload = os.urandom(8 << 20)
    reply = wait_for(host, in_thread(echo_large, port, payload), timeout=60)
    assert len(reply) == len(payload)
    assert reply == payload


def test_bytes_sent_before_the_script_takes_the_connection_all_arrive(host):
    # The connection waits in the server's queue while 4 MiB arrive (more than
    # the core holds before pausing reading); taken later, every byte is there.
    host.execute("""
        server = net.TcpServer.new()
        assert(server:listen(0))
        function take()
            local s = server:next_pending_connection()
            s.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
            s:write_string(s:read_all_string())
        end
    """)
    port = lua_int(host, "server.port")
    payload = os.urandom(4 << 20)

    def client():
        with connect(port) as s:
            sender = in_thread(s.sendall, payload)
            first = s.recv(1)  # nothing is echoed until the script takes it
            rest = recv_exact(s, len(payload) - 1)
            sender.result(60)
            return first + rest

    fut = in_thread(client)
    run_until(host, lambda: host.eval("server.has_pending_connections"), "a queued connection")
    host.run_for(0.5)  # the sender fills what the core reads ahead, then waits
    assert not fut.done()
    host.execute("take()")
    reply = wait_for(host, fut, timeout=60)
    assert len(reply) == len(payload)
    assert reply == payload


def test_300_concurrent_clients_10_messages_each(host):
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    got, message = wait_for(host, in_thread(many_echo_clients, port, 300, 10), timeout=60)
    assert len(got) == 300
    for i in range(300):
        assert got[i] == [message(i, k) for k in range(10)], "client %d" % i


def _cycles(port, n):
    for i in range(n):
        payload = b"cycle %d\n" % i
        with connect(port) as s:
            s.sendall(payload)
            if recv_exact(s, len(payload)) != payload:
                raise AssertionError("cycle %d echoed wrong bytes" % i)
    return n


def test_300_cycles_leave_no_descriptor_behind(make_host):
    # one host made and closed first, so one-time process set-up (imports,
    # caches) is not counted against the host under test
    make_host().close()
    make_host.hosts.clear()
    gc.collect()
    before_host = fd_count()
    host = make_host()
    host.execute(DOC_ECHO + """
        closed = 0
        server.new_connection_handler = function(srv)
            local s = srv:next_pending_connection()
            s.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
            s.disconnected_handler = function(s) closed = closed + 1 end
        end
    """)
    port = lua_int(host, "server.port")
    # warm up: one cycle, then measure with the host running
    assert wait_for(host, in_thread(_cycles, port, 1)) == 1
    run_until(host, lambda: host.eval("closed") == 1, "the warm-up disconnect")
    host.execute("collectgarbage(); collectgarbage()")
    host.run_for(0.05)
    baseline = fd_count()

    assert wait_for(host, in_thread(_cycles, port, 300), timeout=60) == 300
    run_until(host, lambda: host.eval("closed") == 301, "300 disconnects")
    host.execute("collectgarbage(); collectgarbage()")
    host.run_for(0.05)
    gc.collect()
    assert fd_count() == baseline, "descriptors left behind while the host lives"

    host.close()
    make_host.hosts.remove(host)
    gc.collect()
    assert fd_count() == before_host, "descriptors left behind after host.close()"
