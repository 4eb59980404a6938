"""luanet.core without Lua: a socket holds one connection at a time (API.md
section 1, "Connection lifetime"; issues 9 and 11), Qt's order and counts,
the state table, and bounded event cascades. A listener function collects
what a script's handlers would see; real sockets on 127.0.0.1, on asyncio's
loop and on uvloop where it is installed."""

from __future__ import annotations

import asyncio
import errno
import inspect
import re
import socket
import struct
import time

import pytest

from luanet.core import Event, EventQueue, SocketError, SocketState, TcpServer, TcpSocket
from luanet.core import socket as core_socket
from luanet.core.addresses import dual_stack_socket
from luanet.core.constants import open_mode_valid
from luanet.core.states import TRANSITIONS

from conftest import SAFETY

LOOPS = ["asyncio"]
try:
    import uvloop
    LOOPS.append("uvloop")
except ImportError:
    uvloop = None

U, LOOKUP, CONNECTING, CONNECTED, BOUND, CLOSING = (
    SocketState.UNCONNECTED, SocketState.HOST_LOOKUP, SocketState.CONNECTING,
    SocketState.CONNECTED, SocketState.BOUND, SocketState.CLOSING)


def checked_loop(kind):
    """A new loop of that kind (a generator: the fixture's body); fails the
    test if the loop reported an error (an exception in a callback)."""
    loop = uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()
    problems = []
    loop.set_exception_handler(lambda lp, ctx: problems.append(ctx))
    yield loop
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    assert problems == [], "the loop reported errors: %r" % problems


@pytest.fixture(params=LOOPS)
def loop(request):
    yield from checked_loop(request.param)


def run_until(loop, predicate, what="condition"):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.002)
    try:
        loop.run_until_complete(asyncio.wait_for(poll(), SAFETY))
    except asyncio.TimeoutError:
        raise AssertionError("timed out (safety net) waiting for " + what) from None


def turns(loop, n=5):
    """Let the loop run a few iterations (every posted batch runs)."""
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


def settle(loop, seconds=0.05):
    loop.run_until_complete(asyncio.sleep(seconds))


class Recorder:
    """A listener: records (event name, argument, state when it ran)."""

    def __init__(self, on=None):
        self.events = []
        self.on = on  # on(sock, name, a): a handler, called after recording

    def __call__(self, obj, event, a, b):
        name = Event(event).name
        if event == Event.STATE_CHANGED:
            a = SocketState(a).name
        self.events.append((name, a, SocketState(obj.state).name))
        if self.on is not None:
            self.on(obj, name, a)

    def names(self):
        return [e[0] if e[1] is None else "%s %s" % (e[0], e[1]) for e in self.events]

    def clear(self):
        self.events.clear()


def py_server():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    ls.setblocking(False)
    return ls, ls.getsockname()[1]


def accept(loop, ls):
    conn = []

    def ready():
        try:
            c, _ = ls.accept()
        except BlockingIOError:
            return False
        c.setblocking(True)
        c.settimeout(SAFETY)
        conn.append(c)
        return True
    run_until(loop, ready, "a connection")
    return conn[0]


def client(loop, port, rec=None, mode=3):
    """A connected core TcpSocket (and its listener)."""
    rec = rec if rec is not None else Recorder()
    events = EventQueue(loop)
    sock = TcpSocket(events, rec)
    assert sock.connect("127.0.0.1", port, mode)
    run_until(loop, lambda: sock.state == CONNECTED, "connected")
    turns(loop)
    return sock, rec


def reporting_client(loop, ls, port):
    """A connected client that reports written bytes, its events so far
    forgotten, and its peer: (sock, rec, peer)."""
    sock, rec = client(loop, port)
    sock.notify_bytes_written = True
    conn = accept(loop, ls)
    rec.clear()
    return sock, rec, conn


def client_with_unsent_bytes(loop, ls, port, size):
    """A connected client that reports written bytes, with ``size`` bytes
    written to a peer that reads nothing yet (a small receive buffer), so
    most of them are still unsent; returns (sock, rec, peer)."""
    sock, rec = client(loop, port)
    sock.notify_bytes_written = True
    conn = accept(loop, ls)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert sock.write(b"z" * size) == size
    settle(loop)
    return sock, rec, conn


def recv_all(loop, conn):
    """Everything the peer gets until EOF, running the loop meanwhile."""
    chunks = []
    done = []
    conn.setblocking(False)

    def more():
        try:
            c = conn.recv(1 << 20)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            done.append(True)
            return True
        if not c:
            done.append(True)
            return True
        chunks.append(c)
        return False
    run_until(loop, more, "EOF at the peer")
    return b"".join(chunks)


def refused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused
    return s, s.getsockname()[1]


def refused_attempt(loop, mode=3):
    """A core TcpSocket connecting to a port that refuses; (holder, sock, rec):
    close holder when done."""
    holder, port = refused_port()
    rec = Recorder()
    sock = TcpSocket(EventQueue(loop), rec)
    assert sock.connect("127.0.0.1", port, mode)
    return holder, sock, rec


# ---------------------------------------------------------------- the table

def test_transition_table_covers_every_state_and_abort_never_disconnects_an_attempt():
    assert set(TRANSITIONS) == set(SocketState)
    for state, moves in TRANSITIONS.items():
        for what, (new, events) in moves.items():
            assert isinstance(new, SocketState)
            assert all(isinstance(e, Event) for e in events)
            if new != state and what != "accept":
                assert events[0] == Event.STATE_CHANGED, (state, what)  # Qt: the change first
    for state in SocketState:
        if state != U:
            assert TRANSITIONS[state]["abort"][0] == U, state
    disconnects = {s for s, moves in TRANSITIONS.items()
                   for (_, evs) in moves.values() if Event.DISCONNECTED in evs}
    assert disconnects == {CONNECTED, CLOSING}  # only a connection that existed ends
    assert TRANSITIONS[CONNECTING]["fail"][1] == (Event.STATE_CHANGED, Event.ERROR)


@pytest.mark.source
def test_every_state_change_goes_through_the_table():
    source = inspect.getsource(core_socket)
    assignments = re.findall(r"self\.state\s*=(?!=)", source)
    assert len(assignments) == 2, assignments  # __init__ and _change
    body = inspect.getsource(TcpSocket._change)
    assert "self.state = new" in body


# ---------------------------------------------------------------- open modes

@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15])
def test_open_modes_are_flags(mode):
    assert open_mode_valid(mode)


@pytest.mark.parametrize("mode", [0, 8, 16, 17, 32, -1, 1.0, True, "3", None])
def test_open_modes_without_reading_or_writing_are_not(mode):
    assert not open_mode_valid(mode)


def test_connect_with_a_bad_mode_or_port_changes_nothing(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        conn = accept(loop, ls)
        conn.sendall(b"unread bytes")
        run_until(loop, lambda: sock.bytes_available == 12, "the bytes")
        rec.clear()
        for args in [("127.0.0.1", port, 0), ("127.0.0.1", port, 8), ("127.0.0.1", port, 6.5)]:
            assert sock.connect(*args) is False
            assert sock.error == SocketError.OPERATION
        sock.abort()
        rec.clear()
        conn.close()
        # a socket with unread bytes of a finished connection keeps them
        sock2, rec2 = client(loop, port)
        conn2 = accept(loop, ls)
        conn2.sendall(b"kept")
        conn2.close()
        run_until(loop, lambda: sock2.state == U, "the remote close")
        rec2.clear()
        for args in [("127.0.0.1", 65536, 3), ("127.0.0.1", -1, 3), ("127.0.0.1", port, 16)]:
            assert sock2.connect(*args) is False
            assert sock2.error_string != ""
        turns(loop)
        assert sock2.bytes_available == 4 and sock2.read() == b"kept"
        assert sock2.state == U
        assert rec2.events == []  # no event, no state change
    finally:
        ls.close()


def test_flag_modes_read_and_write_as_qt(loop):
    ls, port = py_server()
    try:
        sock, _ = client(loop, port, mode=1 | 8)  # read + truncate
        conn = accept(loop, ls)
        assert sock.readable and not sock.writeable
        assert sock.write(b"x") == -1
        assert sock.error is None and "writing" in sock.error_string  # as Qt: the string only
        sock.abort()
        conn.close()
        sock, _ = client(loop, port, mode=4)  # append: writing
        conn = accept(loop, ls)
        assert sock.writeable and not sock.readable and sock.open_mode == 4
        assert sock.write(b"appended") == 8
        sock.disconnect()
        assert recv_all(loop, conn) == b"appended"
    finally:
        ls.close()


# ---------------------------------------------------------------- abort

def test_abort_drops_what_was_already_posted_and_the_unread_bytes(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        sock.notify_bytes_written = True
        conn = accept(loop, ls)
        conn.sendall(b"old bytes")
        run_until(loop, lambda: sock.bytes_available == 9, "the bytes")
        rec.clear()
        # steps of this connection already posted: more data, the peer's
        # close, a bytes-written report
        sock.data_received(b"more")
        sock.eof_received()
        assert sock.write(b"out") == 3
        sock.abort()
        assert sock.bytes_available == 0 and sock.state == U
        settle(loop)
        # Qt's order for abort(): the device closes (about_to_close), the
        # state changes, the connection ends; nothing posted before comes
        assert rec.names() == ["ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED", "DISCONNECTED"]
        assert sock.finished
    finally:
        ls.close()


def test_abort_while_looking_up_or_connecting_reports_no_disconnect(loop):
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.connect("127.0.0.1", port)
        sock.abort()  # while HOST_LOOKUP
        settle(loop)
        assert "DISCONNECTED" not in rec.names()
        assert rec.names()[-1] == "STATE_CHANGED UNCONNECTED"
        assert sock.finished

        rec.clear()
        aborted = []

        def on(s, name, a):  # abort inside host_found (CONNECTING)
            if name == "HOST_FOUND" and not aborted:
                aborted.append(s.state)
                s.abort()
        rec.on = on
        assert sock.connect("127.0.0.1", port)
        run_until(loop, lambda: aborted, "host_found")
        settle(loop)
        assert aborted == [CONNECTING]
        assert rec.names() == ["STATE_CHANGED HOST_LOOKUP", "STATE_CHANGED CONNECTING", "HOST_FOUND",
                               "ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED"]
        assert sock.state == U and sock.finished
    finally:
        ls.close()


def test_host_names_resolve_and_an_aborted_lookup_leaves_nothing_behind(loop):
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.connect("localhost", port)
        sock.abort()  # the resolver is still working
        assert sock.finished
        assert sock.connect("localhost", port)
        run_until(loop, lambda: sock.state in (CONNECTED, U), "the lookup")
        if sock.state == U:  # localhost may be ::1 first, with nothing listening there
            pytest.skip("localhost did not reach 127.0.0.1 here: %s" % sock.error_string)
        accept(loop, ls).close()
        sock.abort()
        settle(loop)
        assert rec.names()[-3:] == ["ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED", "DISCONNECTED"]
    finally:
        ls.close()


def test_abort_in_host_found_then_bind_and_connect_uses_the_new_descriptor(loop):
    # The reproduced bug: asyncio's clean-up of the cancelled sock_connect
    # hit the new socket that reused the descriptor number.
    ls, port = py_server()
    try:
        state = {"n": 0}

        def on(s, name, a):
            if name == "HOST_FOUND" and state["n"] == 0:
                state["n"] = 1
                s.abort()
                assert s.bind(0)
                assert s.connect("127.0.0.1", port)
        rec = Recorder(on)
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.connect("127.0.0.1", port)
        run_until(loop, lambda: sock.state == CONNECTED, "the second connection")
        conn = accept(loop, ls)
        while conn.getpeername()[1] != sock.local_port:  # the aborted attempt's, if it got there
            conn.close()
            conn = accept(loop, ls)
        assert sock.write(b"carried") == 7
        conn.sendall(b"back")
        run_until(loop, lambda: sock.bytes_available == 4, "the reply")
        assert conn.recv(100) == b"carried"
        assert conn.getpeername()[1] == sock.local_port
        settle(loop)
        assert rec.names().count("CONNECTED") == 1
        sock.abort()
        conn.close()
    finally:
        ls.close()


def test_abort_with_data_pending_reports_no_unsent_bytes(loop):
    ls, port = py_server()
    try:
        sock, rec, conn = client_with_unsent_bytes(loop, ls, port, 8 << 20)
        reported_before = sum(a for n, a, _ in rec.events if n == "BYTES_WRITTEN")
        rec.clear()
        sock.abort()
        settle(loop, 0.1)
        assert [n for n, _, _ in rec.events if n == "BYTES_WRITTEN"] == []
        # only what the kernel had taken was ever reported
        assert 0 < reported_before < 8 << 20
        assert sock.bytes_to_write == 0
        conn.close()
    finally:
        ls.close()


# ---------------------------------------------------------------- Qt's order

def test_failed_connect_changes_state_before_the_error(loop):
    holder, sock, rec = refused_attempt(loop)
    try:
        run_until(loop, lambda: "ERROR" in [e[0] for e in rec.events], "the refusal")
        assert rec.names() == ["STATE_CHANGED HOST_LOOKUP", "STATE_CHANGED CONNECTING", "HOST_FOUND",
                               "STATE_CHANGED UNCONNECTED", "ERROR %d" % SocketError.CONNECTION_REFUSED]
        # as Qt, the device stays open: a write fails as "not connected"...
        assert sock.open_mode == 3 and sock.finished
        assert sock.write(b"x") == -1 and sock.error == SocketError.UNKNOWN
        # ...and closing it runs about_to_close
        sock.close()
        run_until(loop, lambda: "ABOUT_TO_CLOSE" in [e[0] for e in rec.events], "about_to_close")
        assert sock.open_mode == 0
    finally:
        holder.close()


def test_write_on_a_device_not_open_for_writing_keeps_the_error(loop):
    """Qt's QIODevice::write refuses before writeData: error() stays the refusal."""
    holder, sock, rec = refused_attempt(loop, 1)  # READ_ONLY
    try:
        run_until(loop, lambda: "ERROR" in [e[0] for e in rec.events], "the refusal")
        assert sock.write(b"x") == -1
        assert sock.error == SocketError.CONNECTION_REFUSED and "not open for writing" in sock.error_string
    finally:
        holder.close()


def test_refused_with_writes_waiting_closes_the_device(loop):
    """As Qt: the writes' flush fails with the attempt, and the device closes."""
    holder, sock, rec = refused_attempt(loop)
    try:
        assert sock.write(b"lost with the attempt") == 21
        run_until(loop, lambda: "ABOUT_TO_CLOSE" in [e[0] for e in rec.events], "about_to_close")
        assert rec.names()[-3:] == ["STATE_CHANGED UNCONNECTED", "ERROR %d" % SocketError.CONNECTION_REFUSED,
                                    "ABOUT_TO_CLOSE"]
        assert sock.open_mode == 0
    finally:
        holder.close()


@pytest.mark.parametrize("verb", ["disconnect", "close"])
def test_disconnect_or_close_while_connecting_completes_sends_then_closes(loop, verb):
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        sock.notify_bytes_written = True
        assert sock.connect("127.0.0.1", port)
        assert sock.write(b"for this peer") == 13
        getattr(sock, verb)()
        assert sock.state == LOOKUP  # as Qt: nothing changes yet
        conn = accept(loop, ls)
        assert recv_all(loop, conn) == b"for this peer"
        run_until(loop, lambda: sock.state == U and "DISCONNECTED" in rec.names(), "the close")
        expected = ["STATE_CHANGED HOST_LOOKUP", "STATE_CHANGED CONNECTING", "HOST_FOUND",
                    "STATE_CHANGED CONNECTED", "CONNECTED", "STATE_CHANGED CLOSING",
                    "BYTES_WRITTEN 13", "STATE_CHANGED UNCONNECTED", "DISCONNECTED"]
        if verb == "close":
            expected.insert(1, "ABOUT_TO_CLOSE")
        assert rec.names() == expected
    finally:
        ls.close()


def test_written_bytes_of_a_failed_attempt_never_reach_a_later_peer(loop):
    holder, dead = refused_port()
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.connect("127.0.0.1", dead)
        assert sock.write(b"SECRET-FOR-FIRST-PEER") == 21
        sock.disconnect()
        run_until(loop, lambda: sock.error == SocketError.CONNECTION_REFUSED, "the refusal")
        assert sock.bytes_to_write == 0
        assert sock.connect("127.0.0.1", port)
        run_until(loop, lambda: sock.state == CONNECTED, "connected")
        conn = accept(loop, ls)
        sock.write(b"fresh")
        sock.disconnect()
        assert recv_all(loop, conn) == b"fresh"
    finally:
        holder.close()
        ls.close()


def test_nothing_of_an_old_connection_reaches_a_new_one(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        sock.notify_bytes_written = True
        conn = accept(loop, ls)
        conn.sendall(b"old unread")
        run_until(loop, lambda: sock.bytes_available == 10, "the bytes")
        sock.write(b"x" * 1000)
        sock.close()
        assert sock.bytes_available == 0
        run_until(loop, lambda: sock.state == U, "closed")
        settle(loop)
        assert sock.connect("127.0.0.1", port)
        rec.clear()
        run_until(loop, lambda: sock.state == CONNECTED, "the new connection")
        conn2 = accept(loop, ls)
        settle(loop)
        assert sock.bytes_available == 0
        names = rec.names()
        assert "DISCONNECTED" not in names and not any(n.startswith("BYTES_WRITTEN") for n in names)
        sock.write(b"new")
        run_until(loop, lambda: "BYTES_WRITTEN 3" in rec.names(), "the new count")
        conn2.sendall(b"n")
        run_until(loop, lambda: sock.bytes_available == 1, "new bytes")
        assert sock.read() == b"n"
        sock.abort()
        conn.close()
        conn2.close()
    finally:
        ls.close()


def test_close_twice_reports_about_to_close_once(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        conn = accept(loop, ls)
        rec.clear()
        sock.close()
        sock.close()
        run_until(loop, lambda: sock.state == U, "closed")
        settle(loop)
        sock.close()
        settle(loop)
        assert rec.names().count("ABOUT_TO_CLOSE") == 1
        assert rec.names() == ["ABOUT_TO_CLOSE", "STATE_CHANGED CLOSING",
                               "STATE_CHANGED UNCONNECTED", "DISCONNECTED"]
        conn.close()
    finally:
        ls.close()


def test_peer_reset_during_graceful_close_is_reported_while_closing(loop):
    ls, port = py_server()
    try:
        sock, rec, conn = client_with_unsent_bytes(loop, ls, port, 6 << 20)
        sock.disconnect()
        assert sock.state == CLOSING
        settle(loop)
        assert sock.bytes_to_write > 0  # the peer is not reading
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # reset
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the end")
        errors = [e for e in rec.events if e[0] == "ERROR"]
        assert errors == [("ERROR", SocketError.REMOTE_HOST_CLOSED, "CLOSING")]
        names = rec.names()
        # Qt's order: the error, the device closes, the state, the end
        tail = names[names.index("ERROR 1"):]
        assert tail == ["ERROR 1", "ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED", "DISCONNECTED"], names
        written = sum(a for n, a, _ in rec.events if n == "BYTES_WRITTEN")
        assert written < 6 << 20  # the discarded bytes are not counted
    finally:
        ls.close()


def test_bytes_arriving_while_close_flushes_are_not_kept(loop):
    """close() closes the device: what the peer sends while the close still
    flushes is neither buffered nor announced (Qt stops reading)."""
    ls, port = py_server()
    try:
        sock, rec, conn = client_with_unsent_bytes(loop, ls, port, 6 << 20)
        sock.close()
        assert sock.state == CLOSING and sock.bytes_to_write > 0
        conn.sendall(b"too late")
        settle(loop)
        assert sock.bytes_available == 0 and "READY_READ" not in rec.names()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        run_until(loop, lambda: sock.state == U, "the end")
        assert sock.bytes_available == 0
    finally:
        ls.close()


def test_bytes_before_a_reset_survive_a_write_that_meets_it_first(loop):
    """The write fails on the reset connection before asyncio read what came
    ahead of the reset: those bytes are still the script's (ready_read, then
    the error, as Qt), and the failed write is never counted as written."""
    ls, port = py_server()
    try:
        sock, rec, conn = reporting_client(loop, ls, port)
        conn.sendall(b"last words")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # reset
        time.sleep(0.05)  # the kernel has both; the loop has seen neither
        assert sock.write(b"w" * 1000) == 1000
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the end")
        names = rec.names()
        assert names.index("READY_READ") < names.index("ERROR %d" % SocketError.REMOTE_HOST_CLOSED), names
        assert not [n for n in names if n.startswith("BYTES_WRITTEN")], names
        assert sock.read() == b"last words"
    finally:
        ls.close()


def test_remote_close_order(loop):
    ls, port = py_server()
    try:
        replies = []

        def on(s, name, a):
            if name == "READY_READ":
                s.read()
            if name == "ERROR":
                replies.append(s.write(b"answer"))
        sock, rec = client(loop, port, Recorder(on))
        conn = accept(loop, ls)
        rec.clear()
        conn.sendall(b"last words")
        conn.shutdown(socket.SHUT_WR)
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the close")
        assert [(n, st) for n, _, st in rec.events] == [
            ("READY_READ", "CONNECTED"), ("ERROR", "CONNECTED"), ("STATE_CHANGED", "CLOSING"),
            ("STATE_CHANGED", "UNCONNECTED"), ("DISCONNECTED", "UNCONNECTED")]
        assert replies == [6]
        assert recv_all(loop, conn) == b"answer"
        conn.close()
    finally:
        ls.close()


def test_both_ends_stay_known_after_the_transport_ended_until_unconnected(loop):
    """A reset takes the transport away before ERROR is delivered; the socket
    is still CONNECTED then, so it still names both ends (kept from the ended
    transport), and once UNCONNECTED it names none and holds nothing of them."""
    ls, port = py_server()
    try:
        seen = {}

        def on(s, name, a):  # (asks nothing before: nothing is cached)
            if name in ("ERROR", "DISCONNECTED"):
                seen[name] = (s._transport is None, s.local_address, s.local_port,
                              s.remote_address, s.remote_port)
        sock, rec = client(loop, port, Recorder(on))
        conn = accept(loop, ls)
        ends = ("127.0.0.1", conn.getpeername()[1], "127.0.0.1", port)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # linger 0: a reset
        run_until(loop, lambda: "DISCONNECTED" in seen, "the end")
        assert seen["ERROR"] == (True,) + ends
        assert seen["DISCONNECTED"] == (True, "", 0, "", 0)
        assert sock._local is None and sock._remote is None
    finally:
        ls.close()


def test_a_socket_tells_its_listener_only_the_events_it_wants_when_due(loop):
    """events_wanted filters as events are delivered, not as they are
    posted: a bit set in between still gets its event (a Lua handler set
    right after the call that caused it hears of it)."""
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        conn = accept(loop, ls)
        rec.clear()
        sock.events_wanted = 1 << Event.DISCONNECTED
        conn.close()  # the peer closes: ERROR and two state changes, unwanted
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the end")
        assert rec.names() == ["DISCONNECTED"]

        sock2, rec2 = client(loop, port)
        conn2 = accept(loop, ls)
        rec2.clear()
        sock2.events_wanted = 0
        sock2.abort()  # posts STATE_CHANGED and DISCONNECTED now
        sock2.events_wanted = 1 << Event.STATE_CHANGED
        turns(loop)
        assert rec2.names() == ["STATE_CHANGED UNCONNECTED"]
        conn2.close()
    finally:
        ls.close()


def test_a_server_and_a_timer_tell_only_the_events_they_want(loop):
    """The same mask on every Reporter: NEW_CONNECTION and TIMEOUT are
    dropped while their bit is clear, and told once it is set."""
    from luanet.core.timer import Timer

    events = EventQueue(loop)
    told = []
    server = TcpServer(events, lambda obj, event, a, b: told.append(event), bind_address="127.0.0.1")
    timer = Timer(events, lambda obj, event, a, b: told.append(event))
    try:
        assert server.listen(0)
        server.events_wanted = 0
        peer = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
        run_until(loop, lambda: server.has_pending_connections, "the connection")
        turns(loop)
        timer.events_wanted = 0
        timer.single_shot = True
        timer.start(0.001)
        run_until(loop, lambda: not timer.active, "the timeout")
        turns(loop)
        assert told == []

        server.events_wanted = timer.events_wanted = -1
        peer2 = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
        timer.start(0.001)
        run_until(loop, lambda: len(told) == 2, "both events")
        assert sorted(told) == sorted([int(Event.NEW_CONNECTION), int(Event.TIMEOUT)])
        peer.close()
        peer2.close()
    finally:
        timer.stop()
        server.release()


def test_a_failing_step_is_logged_and_the_rest_of_its_batch_runs(loop, caplog):
    """One broken step must not starve the steps posted after it: they run
    in the same batch, in order, and the failure is logged with its step."""
    events = EventQueue(loop)
    ran = []

    def broken():
        ran.append("broken")
        raise RuntimeError("boom")

    events.post(ran.append, 1)
    events.post(broken)
    events.post(ran.append, 2)
    turn = events.turn
    run_until(loop, lambda: len(ran) == 3, "the batch")
    assert ran == [1, "broken", 2] and events.turn == turn + 1
    failed = [r for r in caplog.records if r.name == "luanet" and "broken" in r.getMessage()]
    assert len(failed) == 1 and str(failed[0].exc_info[1]) == "boom"


def test_disconnect_in_the_turn_of_a_write_closes_from_the_loop(loop):
    """Qt sends what write() buffered from its loop, so a disconnect() in the
    same turn leaves the socket CLOSING (a connect() right after is refused)
    and reports what was written before the end; a disconnect() in a later
    turn, with nothing left to send, ends the connection inside the call."""
    ls, port = py_server()
    try:
        sock, rec, conn = reporting_client(loop, ls, port)
        events = sock._events
        events.post(lambda: None)  # a batch of its own: one loop turn
        turns(loop)
        turn = events.turn
        assert sock.write(b"0123456789") == 10
        sock.disconnect()
        assert events.turn == turn and sock.state == CLOSING
        assert sock.connect("127.0.0.1", port) is False and sock.error == SocketError.OPERATION
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the end")
        assert rec.names()[-4:] == ["ERROR %d" % SocketError.OPERATION, "BYTES_WRITTEN 10",
                                    "STATE_CHANGED UNCONNECTED", "DISCONNECTED"], rec.names()
        assert recv_all(loop, conn) == b"0123456789"
        conn.close()

        sock2, rec2 = client(loop, port)
        conn2 = accept(loop, ls)
        assert sock2.write(b"abc") == 3
        sock2._events.post(lambda: None)
        turns(loop)  # the write's turn is over
        sock2.disconnect()
        assert sock2.state == U
        assert recv_all(loop, conn2) == b"abc"
        conn2.close()
    finally:
        ls.close()


def test_bind_then_connect_reports_both_state_changes(loop):
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.bind(0)
        assert sock.connect("127.0.0.1", port)
        run_until(loop, lambda: "CONNECTED" in rec.names(), "connected")
        assert rec.names() == ["STATE_CHANGED BOUND", "STATE_CHANGED HOST_LOOKUP",
                               "STATE_CHANGED CONNECTING", "HOST_FOUND",
                               "STATE_CHANGED CONNECTED", "CONNECTED"]
        sock.abort()
    finally:
        ls.close()


def test_connect_while_busy_reports_an_operation_error(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        rec.clear()
        assert sock.connect("127.0.0.1", port) is False
        assert sock.state == CONNECTED  # nothing else changed
        settle(loop)
        assert rec.names() == ["ERROR %d" % SocketError.OPERATION]
        sock.abort()
    finally:
        ls.close()


def test_write_only_sockets_do_not_read(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port, mode=2)
        conn = accept(loop, ls)
        conn.sendall(b"ignored")
        assert sock.write(b"out") == 3
        sock.disconnect()
        assert recv_all(loop, conn) == b"out"
        run_until(loop, lambda: sock.state == U, "closed")
        assert sock.bytes_available == 0
        assert "READY_READ" not in rec.names()
    finally:
        ls.close()


def test_abort_before_connected_was_delivered_reports_no_disconnect(loop):
    # the kernel connected, but the owner has not seen CONNECTED yet: for
    # the owner the socket never connected
    ls, port = py_server()
    try:
        rec = Recorder()
        sock = TcpSocket(EventQueue(loop), rec)
        assert sock.connect("127.0.0.1", port)
        done = loop.create_future()

        def watch():  # runs every loop iteration, ahead of the posted events
            if sock.state == CONNECTED:
                sock.abort()
                done.set_result("CONNECTED" in rec.names())
            else:
                loop.call_soon(watch)
        loop.call_soon(watch)
        if loop.run_until_complete(asyncio.wait_for(done, SAFETY)):
            pytest.skip("CONNECTED was delivered before the abort")
        settle(loop)
        assert "CONNECTED" not in rec.names()
        assert "DISCONNECTED" not in rec.names()
        assert rec.names()[-2:] == ["ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED"]
    finally:
        ls.close()


def test_abort_then_connect_reports_the_end_before_the_new_start(loop):
    ls, port = py_server()
    try:
        sock, rec = client(loop, port)
        accept(loop, ls).close()
        rec.clear()
        sock.abort()
        assert sock.connect("127.0.0.1", port)
        sock.close()
        run_until(loop, lambda: "DISCONNECTED" in rec.names(), "the close")
        # Qt's order: the aborted connection's about_to_close and state
        # change, then the new one's; no disconnected of the aborted one
        assert rec.names()[:4] == ["ABOUT_TO_CLOSE", "STATE_CHANGED UNCONNECTED",
                                   "STATE_CHANGED HOST_LOOKUP", "ABOUT_TO_CLOSE"], rec.names()
        assert rec.names().count("DISCONNECTED") == 1
    finally:
        ls.close()


def test_connection_number_changes_when_a_connection_starts_or_ends(loop):
    ls, port = py_server()
    try:
        sock, _ = client(loop, port)
        conn = accept(loop, ls)
        first = sock.connection
        sock.write(b"x")
        assert sock.connection == first
        sock.disconnect()
        assert sock.connection == first  # ended inside the call (nothing to send), as Qt
        run_until(loop, lambda: sock.state == U, "closed")
        closed = sock.connection
        assert sock.connect("127.0.0.1", port)
        assert sock.connection != closed
        started = sock.connection
        sock.abort()
        assert sock.connection != started
        conn.close()
    finally:
        ls.close()


# ---------------------------------------------------------------- cascades

@pytest.mark.parametrize("order", ["connect-abort", "abort-connect"])
def test_handlers_that_reconnect_and_abort_keep_the_event_count_bounded(loop, order):
    ls, port = py_server()
    try:
        def on(s, name, a):
            if name in ("STATE_CHANGED", "DISCONNECTED"):
                if order == "connect-abort":
                    s.connect("127.0.0.1", port)
                    s.abort()
                else:
                    s.abort()
                    s.connect("127.0.0.1", port)
        rec = Recorder(on)
        sock = TcpSocket(EventQueue(loop), rec)
        sock.connect("127.0.0.1", port)
        sock.abort()
        per_turn = []
        for _ in range(200):
            before = len(rec.events)
            loop.run_until_complete(asyncio.sleep(0))
            per_turn.append(len(rec.events) - before)
        # a handful per turn (the last cycle's ABOUT_TO_CLOSE and state
        # changes), the same at the end as at the start: no growth
        assert max(per_turn) <= 8, per_turn
        assert max(per_turn[-50:]) <= max(per_turn[:50]), per_turn
        assert sum(per_turn[-50:]) > 0  # it does keep cycling
        sock.abort()
        rec.on = None
        settle(loop)
        assert sock.finished
    finally:
        ls.close()


# ---------------------------------------------------------------- servers

def test_server_release_closes_what_it_handed_out(loop):
    server = TcpServer(EventQueue(loop), bind_address="127.0.0.1")
    assert server.listen(0)
    peer = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
    try:
        run_until(loop, lambda: server.has_pending_connections, "a connection")
        sock = server.next_pending_connection()
        server.release()
        assert not server.listening
        assert recv_all(loop, peer) == b""
        run_until(loop, lambda: sock.finished, "the socket closed")
        assert not hasattr(server, "destroy") and not hasattr(server, "pending_count")
    finally:
        peer.close()


def fail_first_transport(loop):
    """Making the next accepted connection's transport fails (fault
    injection into the loop's own call, on either loop); returns a list
    that gets an entry when it did."""
    failed = []
    name = "_make_socket_transport" if hasattr(loop, "_make_socket_transport") else "connect_accepted_socket"
    real = getattr(loop, name)

    def fail_once():
        if not failed:
            failed.append(name)
            raise OSError(errno.ENOBUFS, "injected: no buffer space")

    if name == "connect_accepted_socket":  # uvloop: the public coroutine
        async def make(*args, **kwargs):
            fail_once()
            return await real(*args, **kwargs)
    else:
        def make(*args, **kwargs):
            fail_once()
            return real(*args, **kwargs)
    setattr(loop, name, make)
    return failed


def test_a_connection_the_loop_cannot_wrap_is_closed_and_the_next_one_served(loop, caplog):
    failed = fail_first_transport(loop)
    server = TcpServer(EventQueue(loop), bind_address="127.0.0.1")
    assert server.listen(0)
    first = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
    second = None
    try:
        assert recv_all(loop, first) == b""  # closed by the server, never queued
        assert failed and not server.has_pending_connections
        said = [r.getMessage() for r in caplog.records if r.name == "luanet"]
        assert len(said) == 1 and "could not take an accepted connection" in said[0]
        assert "injected: no buffer space" in said[0]
        second = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
        run_until(loop, lambda: server.has_pending_connections, "the second connection")
        sock = server.next_pending_connection()
        assert sock.state == CONNECTED and not server.has_pending_connections
        sock.write(b"still served")
        sock.disconnect()
        assert recv_all(loop, second) == b"still served"
    finally:
        first.close()
        if second is not None:
            second.close()
        server.release()


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_bind_address_may_be_a_host_name(name):
    s = dual_stack_socket(name, 0)
    try:
        assert s.getsockname()[1] > 0
    finally:
        s.close()
