"""luanet.core on its own (no Lua): socket options and flow control of the
connections a TcpServer accepts, on each event loop implementation here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import pytest

from luanet.core import EventQueue, TcpServer
from luanet.core.socket import READ_AHEAD_LIMIT

from conftest import SAFETY

LOOPS = ["asyncio"]
try:
    import uvloop  # noqa: F401
    LOOPS.append("uvloop")
except ImportError:
    pass


@pytest.fixture(params=LOOPS)
def loop(request):
    loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
    yield loop
    loop.close()


def run_until(loop, predicate):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.005)
    loop.run_until_complete(asyncio.wait_for(poll(), SAFETY))


@contextlib.contextmanager
def connected_clients(loop, n, max_pending=30):
    """A listening server with ``max_pending`` and ``n`` clients connected to it."""
    server = TcpServer(EventQueue(loop), bind_address="127.0.0.1")
    server.max_pending_connections = max_pending
    assert server.listen(0)
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=SAFETY)
               for _ in range(n)]
    try:
        yield server, clients
    finally:
        for client in clients:
            client.close()
        server.release()
        loop.run_until_complete(asyncio.sleep(0.01))


@pytest.fixture
def accepted(loop):
    """(server, python client socket, the server's TcpSocket for it)"""
    with connected_clients(loop, 1) as (server, (client,)):
        run_until(loop, lambda: server.has_pending_connections)
        yield server, client, server.next_pending_connection()


def test_accepted_connections_send_small_writes_at_once(accepted):
    # Nagle off: a reply written in two pieces is not held back for an ACK
    _, _, sock = accepted
    raw = sock._transport.get_extra_info("socket")
    assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_queued_connection_reads_ahead_only_to_the_limit_and_loses_nothing(loop):
    # A connection waiting in the server's queue holds at most about
    # READ_AHEAD_LIMIT bytes; the rest waits in the kernel until it is taken.
    with connected_clients(loop, 1) as (server, (client,)):
        run_until(loop, lambda: server.has_pending_connections)
        queued = server.pending_and_handed_out()[0]
        payload = os.urandom(64 * READ_AHEAD_LIMIT)  # more than loopback buffers hold
        client.setblocking(False)
        sent = 0
        for _ in range(100):
            try:
                sent += client.send(payload[sent:])
            except BlockingIOError:
                pass
            loop.run_until_complete(asyncio.sleep(0.005))
        assert READ_AHEAD_LIMIT <= queued.bytes_available < 2 * READ_AHEAD_LIMIT
        assert sent < len(payload)  # the peer was held back, not the data dropped

        sock = server.next_pending_connection()
        assert sock is queued
        got = sock.read()
        for _ in range(2000):  # reading resumed once the socket was taken
            if sent == len(payload):
                break
            try:
                sent += client.send(payload[sent:])
            except BlockingIOError:
                pass
            loop.run_until_complete(asyncio.sleep(0.001))
            got += sock.read()
        parts = [got]

        def all_read():  # reading pauses while unread bytes sit at the limit
            parts.append(sock.read())
            return sum(map(len, parts)) >= len(payload)
        run_until(loop, all_read)
        assert b"".join(parts) == payload


def take_all(server):
    socks = []
    while server.has_pending_connections:
        socks.append(server.next_pending_connection())
    return socks


def echo_each(loop, socks, clients):
    """Each client sends a greeting that the server's sockets write back (as
    read from the TcpSocket): every client must get its own."""
    assert len(socks) == len(clients)
    for i, client in enumerate(clients):
        client.sendall(b"client %d" % i)
    run_until(loop, lambda: all(sock.bytes_available > 0 for sock in socks))
    for sock in socks:
        sock.write(sock.read())
    loop.run_until_complete(asyncio.sleep(0.01))
    for i, client in enumerate(clients):
        assert client.recv(100) == b"client %d" % i


def test_a_burst_accepted_in_one_batch_is_queued_whole(loop):
    # uvloop: every connection of one accept batch is handed to the loop
    # before any of their connection_made calls runs
    with connected_clients(loop, 40, max_pending=100) as (server, clients):
        run_until(loop, lambda: len(server.pending_and_handed_out()) == len(clients))
        echo_each(loop, take_all(server), clients)
        assert server._wrapping == 0 and not server._handed  # every hand-over finished


def test_a_hand_over_finished_before_its_connection_made_waits_for_it(loop):
    # uvloop: _finish_handed normally runs after the connection_made calls;
    # run before them, it must wait for each one, not cut it short
    if hasattr(loop, "_make_socket_transport"):
        pytest.skip("uvloop's hand-over only: asyncio's loops make transports at once")
    with connected_clients(loop, 1) as (server, clients):
        server._accept_batch()  # accepted and handed over; connection_made not yet run
        assert len(server._handed) == 1 and not server._handed[0][1].done()
        server._finish_handed()
        run_until(loop, lambda: server.has_pending_connections)
        echo_each(loop, take_all(server), clients)
        assert server._wrapping == 0 and not server._handed


def test_the_pending_limit_is_exact_on_each_loop(loop):
    # max_pending_connections counts connections still being wrapped too:
    # beyond it, connections wait in the kernel's backlog, none is dropped
    with connected_clients(loop, 10, max_pending=3) as (server, clients):
        run_until(loop, lambda: len(server.pending_and_handed_out()) == 3)
        loop.run_until_complete(asyncio.sleep(0.05))  # nothing more comes
        assert len(server.pending_and_handed_out()) == 3 and server._wrapping == 0
        taken = []
        while len(taken) < len(clients):
            while server.has_pending_connections:
                taken.append(server.next_pending_connection())
                assert len(server._queue) + server._wrapping <= 3
            run_until(loop, lambda: server.has_pending_connections or len(taken) == len(clients))
        echo_each(loop, taken, clients)
