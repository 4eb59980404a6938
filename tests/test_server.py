"""net.TcpServer, row by row of API.md's TcpServer table and the seed page."""

from __future__ import annotations

import socket

import pytest

from conftest import (
    DOC_ECHO,
    connect,
    echo_once,
    free_port,
    in_thread,
    listening_entries,
    lua_int,
    lua_list,
    recv_exact,
    recv_until_eof,
    refused,
    run_child_script,
    run_until,
    wait_for,
)

ADDRESS_IN_USE_ERROR = 8
CONNECTED_STATE = 3


def test_new_server_defaults(host):
    host.execute("s = net.TcpServer.new()")
    assert host.eval("s.listening") is False
    assert lua_int(host, "s.port") == 0
    assert host.eval("s.error_string") == b""
    assert host.eval("s.error") is None
    assert lua_int(host, "s.max_pending_connections") == 30
    assert host.eval("s.has_pending_connections") is False
    assert host.eval("require('net') == net") is True


def test_listen_zero_picks_a_free_port_and_serves(host):
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    assert 0 < port <= 65535
    assert host.eval("server.listening") is True
    assert host.eval("server.error_string") == b""
    assert listening_entries(port), "nothing listens on the reported port %d" % port
    fut = in_thread(echo_once, port, b"hello over the wire\n")
    assert wait_for(host, fut) == b"hello over the wire\n"


def test_listen_returns_true(host):
    host.execute("s = net.TcpServer.new()")
    assert host.eval("s:listen(0)") is True


def test_listen_on_a_given_port(host):
    port = free_port()
    host.execute("s = net.TcpServer.new()")
    assert host.eval("s:listen(%d)" % port) is True
    assert lua_int(host, "s.port") == port
    assert host.eval("s.listening") is True
    s = in_thread(connect, port)
    wait_for(host, s).close()


def test_listen_port_in_use_returns_false_with_error(host):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(5)
    port = blocker.getsockname()[1]
    try:
        host.execute("s = net.TcpServer.new()")
        assert host.eval("s:listen(%d)" % port)[0] is False  # false, error_string
        assert host.eval("s.listening") is False
        assert lua_int(host, "s.port") == 0
        assert host.eval("s.error_string") != b""
        assert lua_int(host, "s.error") == ADDRESS_IN_USE_ERROR
    finally:
        blocker.close()


def test_listen_port_taken_by_another_lua_server(host):
    host.execute("a = net.TcpServer.new(); assert(a:listen(0)); b = net.TcpServer.new()")
    port = lua_int(host, "a.port")
    assert host.eval("b:listen(a.port)")[0] is False  # false, error_string
    assert lua_int(host, "b.error") == ADDRESS_IN_USE_ERROR
    assert host.eval("b.error_string") != b""
    assert host.eval("a.listening") is True
    assert lua_int(host, "a.port") == port


@pytest.mark.parametrize("port", [65536, 70000, -1])
def test_listen_port_out_of_range_returns_false(host, port):
    host.execute("s = net.TcpServer.new()")
    assert host.eval("s:listen(%d)" % port)[0] is False  # false, error_string
    assert host.eval("s.listening") is False
    assert lua_int(host, "s.port") == 0
    assert host.eval("s.error_string") != b""


def test_listen_when_already_listening_returns_false(host):
    host.execute(DOC_ECHO)
    port = lua_int(host, "server.port")
    assert host.eval("server:listen(0)")[0] is False  # false, error_string
    assert host.eval("server.error_string") != b""
    assert host.eval("server.listening") is True
    assert lua_int(host, "server.port") == port
    fut = in_thread(echo_once, port, b"still here")
    assert wait_for(host, fut) == b"still here"


def test_listen_async_delivers_result_later(host):
    host.execute("""
        log = {}
        s = net.TcpServer.new()
        s:listen_async(0, function(server, result, err)
            log[#log + 1] = tostring(server == s) .. " " .. tostring(result) .. " "
                .. tostring(err) .. " " .. tostring(server.listening)
        end)
        during = #log
    """)
    assert lua_int(host, "during") == 0, "listen_async ran its callback inside the call"
    run_until(host, lambda: host.eval("#log") == 1, "listen_async callback")
    assert lua_list(host, "log") == ["true true nil true"]
    port = lua_int(host, "s.port")
    assert port > 0
    wait_for(host, in_thread(connect, port)).close()
    host.run_for(0.1)
    assert lua_list(host, "log") == ["true true nil true"], "callback ran more than once"


def test_listen_async_port_in_use_gives_false_and_nil_error(host):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(5)
    port = blocker.getsockname()[1]
    try:
        host.execute("""
            log = {}
            s = net.TcpServer.new()
            s:listen_async(%d, function(server, result, err)
                log[#log + 1] = tostring(result) .. " " .. tostring(err)
            end)
        """ % port)
        run_until(host, lambda: host.eval("#log") == 1, "listen_async callback")
        assert lua_list(host, "log") == ["false nil"]
        assert host.eval("s.error_string") != b""
        assert lua_int(host, "s.error") == ADDRESS_IN_USE_ERROR
        assert host.eval("s.listening") is False
    finally:
        blocker.close()


def test_max_pending_connections_is_writable(host):
    host.execute("s = net.TcpServer.new(); s.max_pending_connections = 5")
    assert lua_int(host, "s.max_pending_connections") == 5
    host.execute("s.max_pending_connections = 0")
    assert lua_int(host, "s.max_pending_connections") == 0
    host.execute("s.max_pending_connections = 100")
    assert lua_int(host, "s.max_pending_connections") == 100


COUNTING_SERVER = """
arrived = 0
server = net.TcpServer.new()
server.new_connection_handler = function(srv)
    assert(srv == server)
    arrived = arrived + 1
end
taken = {}
function take()
    local sock = server:next_pending_connection()
    if sock then
        taken[#taken + 1] = sock
        sock.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
    end
    return sock
end
"""


def test_new_connection_handler_called_once_per_connection(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0))")
    port = lua_int(host, "server.port")
    clients = [wait_for(host, in_thread(connect, port)) for _ in range(3)]
    try:
        run_until(host, lambda: host.eval("arrived") == 3, "3 new_connection_handler calls")
        assert host.eval("server.has_pending_connections") is True
        host.run_for(0.2)
        assert lua_int(host, "arrived") == 3
        for _ in range(3):
            assert host.eval("take() ~= nil") is True
        assert host.eval("take() == nil") is True
        assert host.eval("server.has_pending_connections") is False
        remote_ports = sorted(lua_int(host, "taken[%d].remote_port" % i) for i in (1, 2, 3))
        assert remote_ports == sorted(c.getsockname()[1] for c in clients)
    finally:
        for c in clients:
            c.close()


def test_next_pending_connection_gives_connected_socket(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0))")
    port = lua_int(host, "server.port")
    client = wait_for(host, in_thread(connect, port))
    try:
        run_until(host, lambda: host.eval("arrived") == 1, "new_connection_handler")
        host.execute("sock = take()")
        assert lua_int(host, "sock.state") == CONNECTED_STATE
        assert host.eval("sock.valid") is True
        assert host.eval("sock.is_open") is True
        assert lua_int(host, "sock.open_mode") == 3
        assert host.eval("sock.readable") is True
        assert host.eval("sock.writeable") is True
        assert host.eval("sock.sequential") is True
        assert lua_int(host, "sock.pos") == 0
        assert host.eval("sock.error") is None
        assert host.eval("sock.error_string") == b""
        assert lua_int(host, "sock.bytes_available") == 0
        assert host.eval("sock.local_address") == b"127.0.0.1"
        assert lua_int(host, "sock.local_port") == port
        assert host.eval("sock.remote_address") == b"127.0.0.1"
        assert lua_int(host, "sock.remote_port") == client.getsockname()[1]
        assert host.eval("server.has_pending_connections") is False
    finally:
        client.close()


def test_next_pending_connection_nil_when_none(host):
    host.execute("s = net.TcpServer.new()")
    assert host.eval("s:next_pending_connection() == nil") is True
    host.execute("assert(s:listen(0))")
    assert host.eval("s:next_pending_connection() == nil") is True


def test_next_pending_connection_async(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0))")
    port = lua_int(host, "server.port")
    client = wait_for(host, in_thread(connect, port))
    try:
        run_until(host, lambda: host.eval("arrived") == 1, "new_connection_handler")
        host.execute("""
            log = {}
            server:next_pending_connection_async(function(srv, sock)
                log[#log + 1] = tostring(srv == server) .. " " .. (sock and tostring(sock.state) or "nil")
                got = sock
            end)
            during = #log
        """)
        assert lua_int(host, "during") == 0, "callback ran inside next_pending_connection_async"
        run_until(host, lambda: host.eval("#log") == 1, "first callback")
        assert lua_list(host, "log") == ["true 3"]
        assert lua_int(host, "got.remote_port") == client.getsockname()[1]
        host.execute("""
            server:next_pending_connection_async(function(srv, sock)
                log[#log + 1] = tostring(srv == server) .. " " .. (sock and tostring(sock.state) or "nil")
            end)
            during = #log
        """)
        assert lua_int(host, "during") == 1
        run_until(host, lambda: host.eval("#log") == 2, "second callback")
        assert lua_list(host, "log") == ["true 3", "true nil"]
    finally:
        client.close()


def _client_with_id(port, ident):
    with connect(port) as s:
        s.sendall(b"id %d\n" % ident)
        return recv_exact(s, len(b"id %d\n" % ident))


def test_pending_queue_holds_max_pending_and_drops_nothing(host):
    host.execute(COUNTING_SERVER + """
        server.max_pending_connections = 2
        assert(server:listen(0))
    """)
    port = lua_int(host, "server.port")
    futs = [in_thread(_client_with_id, port, i) for i in range(5)]
    run_until(host, lambda: host.eval("arrived") == 2, "2 queued connections")
    host.run_for(0.3)
    assert lua_int(host, "arrived") == 2, "more than max_pending_connections were queued"
    assert host.eval("server.has_pending_connections") is True
    for k in range(1, 6):
        assert host.eval("take() ~= nil") is True
        expected = min(5, k + 2)
        run_until(host, lambda expected=expected: host.eval("arrived") == expected, "%d arrivals" % expected)
        host.run_for(0.1)
        assert lua_int(host, "arrived") == expected
    assert host.eval("take() == nil") is True
    replies = [wait_for(host, f) for f in futs]
    assert replies == [b"id %d\n" % i for i in range(5)]


def test_pause_accepting_keeps_clients_waiting_until_resume(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0)); server:pause_accepting()")
    port = lua_int(host, "server.port")
    futs = [in_thread(_client_with_id, port, i) for i in range(3)]
    host.run_for(0.5)
    assert lua_int(host, "arrived") == 0, "a paused server accepted a connection"
    assert host.eval("server.has_pending_connections") is False
    assert host.eval("server.listening") is True
    host.execute("server:resume_accepting()")
    run_until(host, lambda: host.eval("arrived") == 3, "3 arrivals after resume")
    for _ in range(3):
        assert host.eval("take() ~= nil") is True
    replies = sorted(wait_for(host, f) for f in futs)
    assert replies == [b"id %d\n" % i for i in range(3)]


def test_pause_accepting_leaves_queued_connections_queued(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0))")
    port = lua_int(host, "server.port")
    first = [in_thread(_client_with_id, port, i) for i in range(2)]
    run_until(host, lambda: host.eval("arrived") == 2, "2 arrivals")
    host.execute("server:pause_accepting()")
    late = in_thread(_client_with_id, port, 7)
    host.run_for(0.3)
    assert lua_int(host, "arrived") == 2
    assert host.eval("server.has_pending_connections") is True
    assert host.eval("take() ~= nil") is True
    assert host.eval("take() ~= nil") is True
    assert host.eval("take() == nil") is True
    assert sorted(wait_for(host, f) for f in first) == [b"id 0\n", b"id 1\n"]
    assert not late.done()
    host.execute("server:resume_accepting()")
    run_until(host, lambda: host.eval("arrived") == 3, "the late client")
    assert host.eval("take() ~= nil") is True
    assert wait_for(host, late) == b"id 7\n"


def test_close_stops_listening_and_closes_queued_only(host):
    host.execute(COUNTING_SERVER + "assert(server:listen(0))")
    port = lua_int(host, "server.port")
    kept = wait_for(host, in_thread(connect, port))
    run_until(host, lambda: host.eval("arrived") == 1, "first arrival")
    host.execute("kept = take()")
    queued = wait_for(host, in_thread(connect, port))
    run_until(host, lambda: host.eval("arrived") == 2, "second arrival")
    try:
        host.execute("server:close()")
        assert host.eval("server.listening") is False
        assert lua_int(host, "server.port") == 0
        assert host.eval("server.has_pending_connections") is False
        # the queued, never taken connection is closed: its client sees EOF
        assert wait_for(host, in_thread(recv_until_eof, queued)) == b""
        # the taken one is untouched and still echoes
        assert lua_int(host, "kept.state") == CONNECTED_STATE

        def echo_on(s, payload):
            s.sendall(payload)
            return recv_exact(s, len(payload))

        assert wait_for(host, in_thread(echo_on, kept, b"after close")) == b"after close"
        assert refused(port)
        # closing twice is harmless
        host.execute("server:close()")
        assert host.eval("server.listening") is False
        assert host.eval("server.error_string") == b""
        # listen works again afterwards
        assert host.eval("server:listen(0)") is True
        new_port = lua_int(host, "server.port")
        assert new_port > 0
        c = wait_for(host, in_thread(connect, new_port))
        run_until(host, lambda: host.eval("arrived") == 3, "arrival after re-listen")
        assert host.eval("take() ~= nil") is True
        assert wait_for(host, in_thread(echo_on, c, b"again")) == b"again"
        c.close()
    finally:
        kept.close()
        queued.close()


def test_close_on_a_server_that_never_listened(host):
    host.execute("s = net.TcpServer.new(); s:close(); s:close()")
    assert host.eval("s.listening") is False
    assert lua_int(host, "s.port") == 0


def test_has_pending_connections_in_handlers_sees_each_new_connection(host):
    # Lua keeps what next_pending_connection() said of the queue for the rest
    # of that dispatch; a connection that arrives after it must still show in
    # the next handler that asks (here a polling timer, with no
    # new_connection_handler to announce it).
    host.execute("""
        server = net.TcpServer.new()
        assert(server:listen(0))
        taken, after_drain = {}, {}
        poll = luanet.every(0.02, function()
          while server.has_pending_connections do
            taken[#taken + 1] = assert(server:next_pending_connection())
          end
          after_drain[#after_drain + 1] = server.has_pending_connections
        end)
    """)
    port = lua_int(host, "server.port")
    clients = []
    try:
        for n in (1, 2, 3):
            clients.append(wait_for(host, in_thread(connect, port)))
            run_until(host, lambda n=n: lua_int(host, "#taken") == n, f"connection {n} taken by the timer")
        assert host.eval("server.has_pending_connections") is False
        assert host.eval("after_drain[1] == false and after_drain[#after_drain] == false") is True
    finally:
        host.execute("poll:stop()")
        for c in clients:
            c.close()


def queue_connections(host, n):
    """A listening `server` (no handler) with ``n`` clients accepted into
    its queue; returns the clients."""
    host.execute("server = net.TcpServer.new(); assert(server:listen(0))")
    port = lua_int(host, "server.port")
    clients = [wait_for(host, in_thread(connect, port)) for _ in range(n)]
    run_until(host, lambda: host.eval("server.has_pending_connections"), "queued connections")
    host.run_for(0.3)  # the rest accepted into the queue too
    return clients


def test_one_handler_takes_every_queued_connection(host):
    # Three connections wait before the handler runs: the documented loop
    # takes all three in that one run (next_pending_connection() says each
    # time that more wait), and then the queue reads empty.
    host.execute("runs = {}")
    clients = queue_connections(host, 3)
    try:
        host.execute("""
            luanet.after(0, function()
              local taken = 0
              while server.has_pending_connections do
                assert(server:next_pending_connection())
                taken = taken + 1
              end
              runs[#runs + 1] = { taken = taken, after = server.has_pending_connections,
                                  next = server:next_pending_connection() }
            end)
        """)
        run_until(host, lambda: lua_int(host, "#runs") == 1, "the timer")
        assert lua_int(host, "runs[1].taken") == 3
        assert host.eval("runs[1].after == false and runs[1].next == nil") is True
    finally:
        for c in clients:
            c.close()


def test_close_in_a_handler_empties_the_queue_at_once(host):
    # A take that said "more wait", then close(): the rest of the same
    # handler sees an empty queue.
    clients = queue_connections(host, 2)
    try:
        host.execute("""
            luanet.after(0, function()
              local first = server:next_pending_connection()
              local before = server.has_pending_connections
              server:close()
              seen = { first = first ~= nil, before = before, after = server.has_pending_connections,
                       next = server:next_pending_connection() }
            end)
        """)
        run_until(host, lambda: host.eval("seen ~= nil"), "the timer")
        assert host.eval("seen.first and seen.before") is True
        assert host.eval("seen.after == false and seen.next == nil") is True
    finally:
        for c in clients:
            c.close()


def test_has_pending_connections_at_top_level_after_the_loop_ran(host):
    # The same question from top-level code, between runs of the loop in
    # which no handler ran: always Python's answer.
    host.execute("""
        server = net.TcpServer.new()
        assert(server:listen(0))
        function take() return server:next_pending_connection() end
    """)
    port = lua_int(host, "server.port")
    clients = []
    try:
        for _ in range(2):
            assert host.eval("server.has_pending_connections") is False
            clients.append(wait_for(host, in_thread(connect, port)))
            run_until(host, lambda: host.eval("server.has_pending_connections"), "a queued connection")
            assert host.eval("take() ~= nil and take() == nil") is True
    finally:
        for c in clients:
            c.close()


def test_tostring_server(host):
    host.execute("s = net.TcpServer.new()")
    text = host.eval("tostring(s)")
    assert isinstance(text, bytes) and b"TcpServer" in text
    host.execute("assert(s:listen(0))")
    port = lua_int(host, "s.port")
    text = host.eval("tostring(s)")
    assert b"TcpServer" in text and str(port).encode() in text


def test_handler_error_is_reported_and_server_keeps_serving(make_host):
    host = make_host()
    host.execute("""
        count = 0
        server = net.TcpServer.new()
        server.new_connection_handler = function(srv)
            count = count + 1
            local sock = srv:next_pending_connection()
            sock.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
            if count == 1 then error("boom in new_connection_handler") end
        end
        assert(server:listen(0))
    """)
    port = lua_int(host, "server.port")
    assert wait_for(host, in_thread(echo_once, port, b"first")) == b"first"
    assert wait_for(host, in_thread(echo_once, port, b"second")) == b"second"
    assert lua_int(host, "count") == 2
    assert len(make_host.errors) == 1
    message = make_host.errors[0]
    assert isinstance(message, str)
    assert "boom in new_connection_handler" in message
    assert "traceback" in message
    make_host.errors.clear()


def test_on_error_default_logs_on_luanet_logger(caplog):
    from luanet import LuaHost
    with LuaHost(bind_address="127.0.0.1") as host:
        host.execute("""
            server = net.TcpServer.new()
            server.new_connection_handler = function(srv)
                srv:next_pending_connection():close()
                error("default reporting goes to the log")
            end
            assert(server:listen(0))
        """)
        port = lua_int(host, "server.port")
        with caplog.at_level("ERROR", logger="luanet"):
            c = wait_for(host, in_thread(connect, port))
            run_until(host, lambda: any("default reporting goes to the log" in r.getMessage()
                                        for r in caplog.records), "the logged error")
            c.close()
    records = [r for r in caplog.records if "default reporting goes to the log" in r.getMessage()]
    assert records[0].levelname == "ERROR"
    assert records[0].name.split(".")[0] == "luanet"


# --------------------------------------------------------------------------
# accept_error_handler: out of file descriptors, in a subprocess

# What both child scripts below share (prepended to each): an echo server
# that counts arrivals, clients whose messages it echoes, and the report.
ECHO_SERVER_CHILD = r"""
import json, logging, select, socket, sys
from luanet import LuaHost
from conftest import exhaust_descriptors


def start_echo_server(out, server_extra=""):
    # handler errors go to out["lua_errors"]; server_extra is more Lua run
    # on the server before it listens
    host = LuaHost(bind_address="127.0.0.1", on_error=lambda m: out.setdefault("lua_errors", []).append(m))
    host.execute('''
        arrived = 0
        server = net.TcpServer.new()
        server.new_connection_handler = function(srv)
            local sock = srv:next_pending_connection()
            arrived = arrived + 1
            sock.ready_read_handler = function(s) s:write_string(s:read_all_string()) end
        end
    ''' + server_extra + '''
        assert(server:listen(0))
    ''')
    port = int(host.eval("server.port"))
    host.run_for(0.05)
    return host, port


def echoes_arrive(host, clients):
    # each client sends "client <i>"; true once every client has bytes back
    for i, s in enumerate(clients):
        s.sendall(b"client %d" % i)

    def all_readable():
        r, _, _ = select.select(clients, [], [], 0)
        return len(r) == len(clients)

    return host.run_until(all_readable, 10.0)


def report(out, host, clients):
    for s in clients:
        s.close()
    host.close()
    print(json.dumps(out))
"""

EXHAUST_SCRIPT = ECHO_SERVER_CHILD + r"""
M = 8
out = {}
host, port = start_echo_server(out, server_extra='''
    accept_errors = {}
    server.accept_error_handler = function(srv, err)
        accept_errors[#accept_errors + 1] = err
    end
''')

# room for exactly M client sockets, none for the server's accept()
release_descriptors = exhaust_descriptors(room=M, headroom=40)
clients = []
for i in range(M):
    s = socket.socket()
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    clients.append(s)

out["waited"] = host.run_until(lambda: host.eval("#accept_errors") >= 1, 10.0)
errors = host.eval("table.concat(accept_errors, ',')").decode()
out["accept_errors"] = [int(x) for x in errors.split(",") if x]
out["arrived_when_exhausted"] = int(host.eval("arrived"))

release_descriptors()
host.run_for(0.5)
out["arrived_while_paused"] = int(host.eval("arrived"))
out["listening_while_paused"] = host.eval("server.listening")
out["accept_errors_after_free"] = int(host.eval("#accept_errors"))

host.execute("server:resume_accepting()")
out["resumed"] = host.run_until(lambda: int(host.eval("arrived")) == M, 10.0)
out["arrived_after_resume"] = int(host.eval("arrived"))
out["replied"] = echoes_arrive(host, clients)
replies = []
for s in clients:
    s.setblocking(False)
    try:
        replies.append(s.recv(100).decode())
    except BlockingIOError:
        replies.append(None)
out["replies"] = replies
report(out, host, clients)
"""


def test_descriptor_exhaustion_pauses_server_until_resume(tmp_path):
    out = run_child_script(tmp_path, EXHAUST_SCRIPT)
    m = 8
    assert out["waited"] is True, out
    # one accept error, SOCKET_RESOURCE_ERROR (4), then the server pauses
    assert out["accept_errors"] == [4], out
    assert out["arrived_when_exhausted"] == 0, out
    assert out["arrived_while_paused"] == 0, out
    assert out["listening_while_paused"] is True, out
    assert out["accept_errors_after_free"] == 1, out
    assert out["resumed"] is True, out
    assert out["arrived_after_resume"] == m, out
    assert out["replied"] is True, out
    assert out["replies"] == ["client %d" % i for i in range(m)], out
    assert "lua_errors" not in out, out


NO_HANDLER_SCRIPT = ECHO_SERVER_CHILD + r"""
M = 6
out = {"warnings": []}


class Grab(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            out["warnings"].append(record.getMessage())


logging.getLogger("luanet").addHandler(Grab())
logging.getLogger("luanet").propagate = False
host, port = start_echo_server(out)  # no accept_error_handler

release_descriptors = exhaust_descriptors(room=M, headroom=40)
clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(M)]
out["failed"] = host.run_until(lambda: host.eval("server.error") is not None, 10.0)
host.run_for(0.5)  # retries while still exhausted: no new log line
out["arrived_when_exhausted"] = int(host.eval("arrived"))
release_descriptors()
out["all_arrived"] = host.run_until(lambda: int(host.eval("arrived")) == M, 20.0)  # no resume
out["replied"] = echoes_arrive(host, clients)
out["replies"] = [s.recv(100).decode() for s in clients]
out["port"] = port
report(out, host, clients)
"""


def test_descriptor_exhaustion_without_handler_is_logged_once_and_retried(tmp_path):
    # API.md section 6: no accept_error_handler -> one warning naming the
    # port, then retries with back-off; never paused for good
    out = run_child_script(tmp_path, NO_HANDLER_SCRIPT)
    assert out["failed"] is True, out
    assert out["arrived_when_exhausted"] == 0, out
    accept_warnings = [w for w in out["warnings"] if str(out["port"]) in w]
    assert len(accept_warnings) == 1, out["warnings"]
    assert out["all_arrived"] is True, out
    assert out["replies"] == ["client %d" % i for i in range(6)], out
    assert "lua_errors" not in out, out
