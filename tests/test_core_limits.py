"""luanet.core without Lua: the memory budget on the read and write paths,
read_buffer_size and the owner's pause (issue 8, API.md sections 1 and 6),
and accept errors with and without a handler (logged once, retried with
back-off). Real sockets on 127.0.0.1; descriptor exhaustion runs in a child
process with a lowered RLIMIT_NOFILE."""

from __future__ import annotations

import os
import socket

import pytest

from luanet.core import EventQueue, SocketError, TcpServer
from luanet.core.budget import MemoryBudget
from luanet.core.socket import READ_AHEAD_LIMIT

from conftest import SAFETY, run_child_script
from test_core_lifetime import LOOPS, Recorder, checked_loop, run_until, settle, turns

MiB = 1 << 20


@pytest.fixture(params=LOOPS)
def loop(request):
    yield from checked_loop(request.param)


class Heap:
    """Stands in for the Lua heap the budget also counts."""

    def __init__(self):
        self.used = 0

    def __call__(self):
        return self.used


def accepted_pair(loop, budget=None, listener=None):
    """(server, python peer, the server's TcpSocket for it)."""
    server = TcpServer(EventQueue(loop), socket_listener=listener, bind_address="127.0.0.1",
                       budget=budget)
    assert server.listen(0)
    peer = socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
    run_until(loop, lambda: server.has_pending_connections, "the connection")
    sock = server.next_pending_connection()
    turns(loop)
    return server, peer, sock


class Sender:
    """A non-blocking peer sending payload, a step at a time."""

    def __init__(self, peer, payload):
        peer.setblocking(False)
        self.peer, self.payload, self.sent = peer, payload, 0

    def step(self):
        if self.sent < len(self.payload):
            try:
                self.sent += self.peer.send(self.payload[self.sent:self.sent + MiB])
            except BlockingIOError:
                pass

    def until(self, loop, predicate, what):
        def go():
            self.step()
            return predicate()
        run_until(loop, go, what)

    def all_read(self, loop, sock, got):
        """Send the rest and read everything."""
        def go():
            self.step()
            got.append(sock.read())
            return sum(map(len, got)) >= len(self.payload)
        run_until(loop, go, "all the bytes")
        return b"".join(got)

    def steps(self, loop, n=20):
        for _ in range(n):
            self.step()
            turns(loop, 1)


# ---------------------------------------------------------------- reading

def test_read_pauses_when_the_budget_is_spent_and_resumes_after_poll(loop):
    heap = Heap()
    budget = MemoryBudget(8 * MiB, heap)
    server, peer, sock = accepted_pair(loop, budget)
    try:
        heap.used = 8 * MiB - 1000  # almost nothing left
        sender = Sender(peer, os.urandom(6 * MiB))
        sender.until(loop, lambda: sock.bytes_available > 0, "the first bytes")
        sender.steps(loop)
        held = sock.bytes_available
        assert budget.held == held > 0
        got = [sock.read()]  # the owner takes them: still paused, the budget is spent
        assert budget.held == 0
        sender.steps(loop)
        assert sock.bytes_available == 0  # nothing read meanwhile
        heap.used = 0
        budget.poll()  # room again: the parked reader resumes
        assert sender.all_read(loop, sock, got) == sender.payload
        assert budget.held == 0
    finally:
        peer.close()
        server.release()


def test_unread_bytes_stay_below_read_buffer_size(loop):
    server, peer, sock = accepted_pair(loop)
    try:
        sock.read_buffer_size = 1000
        assert sock.read_buffer_size == 1000
        sender = Sender(peer, os.urandom(4 * MiB))
        sender.until(loop, lambda: sock.bytes_available >= 1000, "the first bytes")
        sender.steps(loop)
        first = sock.bytes_available
        sender.steps(loop)
        assert sock.bytes_available == first  # paused: nothing more was read
        assert sender.all_read(loop, sock, []) == sender.payload
    finally:
        peer.close()
        server.release()


def test_owner_pause_and_read_ahead_pause_are_independent(loop):
    server, peer, sock = accepted_pair(loop)
    try:
        sock.pause_for_owner()
        peer.sendall(b"held back")
        settle(loop)
        turns(loop, 10)
        assert sock.bytes_available == 0  # the owner's buffer is full: not reading
        sock.resume_for_owner()
        run_until(loop, lambda: sock.bytes_available == 9, "the bytes")
        assert sock.read() == b"held back"

        # both pauses: the read-ahead one lifts when the bytes are read, the
        # owner's only with resume_for_owner()
        sender = Sender(peer, os.urandom(16 * READ_AHEAD_LIMIT))
        sender.until(loop, lambda: sock.bytes_available >= READ_AHEAD_LIMIT, "read-ahead full")
        sock.pause_for_owner()
        got = [sock.read()]
        sender.steps(loop)
        assert sock.bytes_available == 0
        sock.resume_for_owner()
        assert sender.all_read(loop, sock, got) == sender.payload
    finally:
        peer.close()
        server.release()


def test_one_full_read_does_not_pause_reading(loop):
    # asyncio hands over up to 256 KiB a read: a read-ahead limit of one read
    # paused and resumed reading after every full read of a bulk transfer
    server, peer, sock = accepted_pair(loop)
    try:
        sock.data_received(bytes(256 * 1024))
        assert sock._transport.is_reading()
        sock.data_received(bytes(READ_AHEAD_LIMIT))
        assert not sock._transport.is_reading()  # past the limit: paused
        assert len(sock.read()) == 256 * 1024 + READ_AHEAD_LIMIT
        assert sock._transport.is_reading()
    finally:
        peer.close()
        server.release()


def test_announce_keeps_reading_paused_when_the_owner_did_not_take_the_bytes(loop):
    rec = Recorder()  # gets READY_READ, reads nothing
    server, peer, sock = accepted_pair(loop, listener=rec)
    try:
        sender = Sender(peer, os.urandom(8 * READ_AHEAD_LIMIT))
        sender.until(loop, lambda: sock.bytes_available >= READ_AHEAD_LIMIT, "read-ahead full")
        sender.steps(loop)
        level = sock.bytes_available
        assert READ_AHEAD_LIMIT <= level < 2 * READ_AHEAD_LIMIT
        sender.steps(loop)
        assert sock.bytes_available == level
        assert "READY_READ" in rec.names()
    finally:
        peer.close()
        server.release()


# ---------------------------------------------------------------- writing

def test_write_past_the_budget_returns_minus_one_and_queues_nothing(loop):
    heap = Heap()
    budget = MemoryBudget(4 * MiB, heap)
    server, peer, sock = accepted_pair(loop, budget)
    try:
        heap.used = 4 * MiB - 100
        before = sock.bytes_to_write
        assert sock.write(b"x" * 200) == -1
        assert sock.error == SocketError.SOCKET_RESOURCE
        assert "max_memory" in sock.error_string
        assert sock.bytes_to_write == before and budget.held == 0
        heap.used = 0
        assert sock.write(b"y" * 200) == 200
        assert peer.recv(1000) == b"y" * 200
    finally:
        peer.close()
        server.release()


def test_written_bytes_are_held_until_sent_and_released_on_abort(loop):
    budget = MemoryBudget(256 * MiB)
    server, peer, sock = accepted_pair(loop, budget)
    try:
        payload = b"w" * (32 * MiB)  # more than loopback buffers take
        assert sock.write(payload) == len(payload)
        assert 0 < budget.held <= len(payload)
        assert budget.held >= sock.bytes_to_write > 0
        # the peer drains part of it: what the transport sent is released at the end
        peer.setblocking(False)
        got = 0

        def drained():
            nonlocal got
            try:
                while True:
                    got += len(peer.recv(4 * MiB))
            except BlockingIOError:
                pass
            return sock.bytes_to_write == 0
        run_until(loop, drained, "the write buffer drained")
        assert budget.held == 0
        # held again, then discarded by abort(): released
        assert sock.write(payload) == len(payload)
        assert budget.held > 0
        sock.abort()
        assert budget.held == 0
    finally:
        peer.close()
        server.release()


def test_write_while_connecting_is_charged_and_a_failed_attempt_releases_it(loop):
    from luanet.core import TcpSocket

    from test_core_lifetime import refused_port
    holder, port = refused_port()
    budget = MemoryBudget(64 * MiB)
    try:
        sock = TcpSocket(EventQueue(loop), Recorder(), budget=budget)
        assert sock.connect("127.0.0.1", port)
        assert sock.write(b"q" * 1000) == 1000
        assert budget.held == 1000
        run_until(loop, lambda: sock.error == SocketError.CONNECTION_REFUSED, "the refusal")
        assert budget.held == 0
    finally:
        holder.close()


# ---------------------------------------------------------------- accepting

EXHAUST = r"""
import asyncio, json, logging, socket, sys
from luanet.core import Event, EventQueue, TcpServer
from conftest import exhaust_descriptors

HANDLED = sys.argv[1] == "handled"
M = 6
out = {"warnings": [], "events": []}


class Grab(logging.Handler):
    def emit(self, record):
        out["warnings"].append((record.levelname, record.getMessage()))


logging.getLogger("luanet").addHandler(Grab())
logging.getLogger("luanet").propagate = False
loop = asyncio.new_event_loop()
accepted = []


def listener(server, event, a, b):
    out["events"].append([int(event), a])
    if event == Event.NEW_CONNECTION:
        while server.has_pending_connections:
            accepted.append(server.next_pending_connection())


server = TcpServer(EventQueue(loop), listener, bind_address="127.0.0.1")
server.accept_error_handled = HANDLED
assert server.listen(0)
port = server.port


def run_until(pred, timeout):
    async def poll():
        while not pred():
            await asyncio.sleep(0.01)
    try:
        loop.run_until_complete(asyncio.wait_for(poll(), timeout))
        return True
    except asyncio.TimeoutError:
        return False


release_descriptors = exhaust_descriptors(room=M, headroom=30)
clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(M)]
out["failed_once"] = run_until(lambda: server.error is not None, 10)
loop.run_until_complete(asyncio.sleep(0.5))  # several retries while still exhausted
out["accepted_exhausted"] = len(accepted)
release_descriptors()
if HANDLED:
    loop.run_until_complete(asyncio.sleep(0.5))
    out["accepted_before_resume"] = len(accepted)
    server.resume_accepting()
out["all_accepted"] = run_until(lambda: len(accepted) == M, 20)
out["port"] = port
out["error"] = int(server.error) if server.error is not None else None
for c in clients:
    c.close()
server.release()
loop.run_until_complete(asyncio.sleep(0.05))
loop.close()
print(json.dumps(out))
"""


def run_exhaust(tmp_path, mode):
    return run_child_script(tmp_path, EXHAUST, mode)


def test_accept_errors_without_a_handler_are_logged_once_and_retried(tmp_path):
    out = run_exhaust(tmp_path, "unhandled")
    assert out["failed_once"] is True
    assert out["error"] == SocketError.SOCKET_RESOURCE
    assert out["accepted_exhausted"] == 0
    warnings = [m for level, m in out["warnings"] if level == "WARNING"]
    assert len(warnings) == 1, out["warnings"]
    assert str(out["port"]) in warnings[0]
    assert "retry" in warnings[0]
    assert [e for e in out["events"] if e[0] == 2] == []  # no ACCEPT_ERROR: nobody handles it
    assert out["all_accepted"] is True  # without resume_accepting()


def test_accept_errors_with_a_handler_pause_until_resumed(tmp_path):
    out = run_exhaust(tmp_path, "handled")
    assert out["failed_once"] is True
    assert [e for e in out["events"] if e[0] == 2] == [[2, SocketError.SOCKET_RESOURCE]]
    assert out["warnings"] == []
    assert out["accepted_before_resume"] == 0  # paused, as Qt, until resume_accepting()
    assert out["all_accepted"] is True
