"""TcpServer: a QTcpServer-like listener with its own accept loop.

asyncio's create_server accepts whenever the socket is readable and swallows
EMFILE; the API needs more control than that. Here the listening socket is
watched only while accepting is allowed: not paused, and the pending queue
(counting connections still being wrapped in a transport) below
max_pending_connections. Everything else waits in the kernel's backlog, so no
connection is dropped because the queue is full or the server is paused.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket as _socket
from _socket import socket as _raw_socket  # socket.socket's C base
from typing import Any, Deque, Final, Iterator, List, Optional, Set, Tuple, cast

from .addresses import dual_stack_socket
from .budget import MemoryBudget
from .constants import Event, SocketError
from .errors import RESOURCE_ERRNOS, TRANSIENT_ACCEPT_ERRNOS, classify
from .events import EventQueue, Listener, Reporter
from .socket import TcpSocket
from .states import UNCONNECTED

DEFAULT_MAX_PENDING: Final = 30
# accept() calls per readiness callback, so one busy server can't starve the loop.
ACCEPT_BATCH: Final = 64
# Without an accept-error handler, accepting is retried after this back-off
# (doubling up to the maximum) instead of staying paused (API.md section 6).
ACCEPT_RETRY_FIRST: Final = 0.1
ACCEPT_RETRY_MAX: Final = 5.0

log = logging.getLogger("luanet")

# bound once: an enum member looked up on its class costs ~10x a global
_NEW_CONNECTION: Final = int(Event.NEW_CONNECTION)


class _Handover:
    """What uvloop's connect_accepted_socket gets for the socket and the
    protocol factory: one per server, reused for every connection. It reads
    the descriptor, family and type and calls the factory before its first
    wait. The transport keeps it, and calls close() once libuv has closed the
    descriptor. A socket object per connection would cost its making and 48 B
    for the connection's life."""

    __slots__ = ("fd", "family", "type", "sock")

    def __init__(self) -> None:
        self.fd = -1
        self.family = int(_socket.AF_INET)
        self.type = int(_socket.SOCK_STREAM)
        self.sock: Optional[TcpSocket] = None

    def fileno(self) -> int:
        return self.fd

    def __call__(self) -> TcpSocket:  # the protocol factory, called during a hand-over
        return cast(TcpSocket, self.sock)

    def close(self) -> None:
        pass  # libuv has closed the descriptor


class TcpServer(Reporter):
    """A QTcpServer: listens, queues accepted connections as TcpSockets (up
    to ``max_pending_connections``) and reports to ``listener``.

    Arguments:
        events: the queue its events are posted to (and whose loop it uses).
        listener: called as ``listener(server, event, a, b)`` for
            NEW_CONNECTION and ACCEPT_ERROR.
        socket_listener: the listener given to every socket it hands out.
        bind_address: listen on this address (or host name) only; None: on
            all interfaces (dual-stack where the system has IPv6).
        budget: the host's MemoryBudget, handed to every accepted socket.
        reuse_port: set SO_REUSEPORT so other processes can serve the port.
    """

    __slots__ = ("socket_listener", "_events", "_loop", "_bind_address",
                 "_lsock", "_watching", "_paused", "_max_pending", "_queue", "_wrapping",
                 "_handed_out", "_family", "error", "error_string", "_budget",
                 "accept_error_handled", "_retry", "_retry_delay", "_logged", "reuse_port",
                 "_handover", "_handed", "_wrap_logged", "__weakref__")

    def __init__(self, events: EventQueue, listener: Optional[Listener] = None,
                 socket_listener: Optional[Listener] = None, bind_address: Optional[str] = None,
                 budget: Optional[MemoryBudget] = None, reuse_port: bool = False):
        self.reuse_port = reuse_port  # share the port with other processes (SO_REUSEPORT)
        self.listener = listener
        self.tag = None
        self.events_wanted = -1  # all
        self.socket_listener = socket_listener  # given to the sockets it hands out
        self._events = events
        self._loop = events.loop
        self._bind_address = bind_address
        self._lsock: Optional[_socket.socket] = None
        self._family = int(_socket.AF_INET)
        self._watching = False
        self._paused = False
        self._max_pending = DEFAULT_MAX_PENDING
        self._queue: Deque[TcpSocket] = collections.deque()
        self._wrapping = 0  # accepted, transport not made yet; counts as queued
        self._handed_out: Set[TcpSocket] = set()
        self._handover = _Handover()
        # uvloop: connect_accepted_socket's coroutines waiting to be finished
        self._handed: List[Tuple[Iterator[Any], asyncio.Future[Any], TcpSocket]] = []
        self._wrap_logged = False
        self.error: Optional[SocketError] = None
        self.error_string = ""
        self._budget = budget  # handed to every accepted socket
        # Does the owner handle ACCEPT_ERROR? Then Qt's rule (paused until
        # resume_accepting()); else logged once and retried with back-off.
        self.accept_error_handled = False
        self._retry: Optional[asyncio.TimerHandle] = None
        self._retry_delay = ACCEPT_RETRY_FIRST
        self._logged = False

    # -------------------------------------------------------------- properties
    @property
    def listening(self) -> bool:
        """Whether the server listens."""
        return self._lsock is not None

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen for ``listen(0)``); 0 when not listening."""
        return self._lsock.getsockname()[1] if self._lsock is not None else 0

    @property
    def has_pending_connections(self) -> bool:
        """Whether next_pending_connection() has a socket to give."""
        return bool(self._queue)

    @property
    def max_pending_connections(self) -> int:
        """How many accepted connections may wait (default 30); past it, new
        ones wait in the kernel's backlog. Settable (``value`` >= 0)."""
        return self._max_pending

    @max_pending_connections.setter
    def max_pending_connections(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("max_pending_connections must be a non-negative integer")
        self._max_pending = value
        self._update_watch()

    # ------------------------------------------------------------ operations
    def _fail(self, code: SocketError, text: str) -> bool:
        self.error, self.error_string = code, text
        return False

    def listen(self, port: int) -> bool:
        """Listen on ``port`` (0: any free port); False with ``error`` and
        ``error_string`` set when that fails."""
        if self._lsock is not None:
            return self._fail(SocketError.OPERATION, "The server is already listening")
        if not 0 <= port <= 65535:
            return self._fail(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE,
                              f"Port {port} is out of range (0..65535)")
        try:
            lsock = dual_stack_socket(self._bind_address, port, self.reuse_port)
            lsock.listen(_socket.SOMAXCONN)
        except OSError as exc:
            if "lsock" in locals():
                lsock.close()
            return self._fail(*classify(exc))
        self._lsock = lsock
        self._family = int(lsock.family)
        self._paused = False
        self.error, self.error_string = None, ""
        self._update_watch()
        return True

    def pause_accepting(self) -> None:
        """Accept nothing more until resume_accepting() (connections wait in the backlog)."""
        self._paused = True
        self._update_watch()

    def resume_accepting(self) -> None:
        """Accept again after pause_accepting() or an accept error."""
        self._paused = False
        self._update_watch()

    def next_pending_connection(self) -> Optional[TcpSocket]:
        """The oldest queued connection, now the caller's (None when none waits)."""
        if not self._queue:
            return None
        sock = self._queue.popleft()
        sock.server = self
        self._handed_out.add(sock)
        sock.attach(self.socket_listener)
        self._update_watch()
        return sock

    def pending_and_handed_out(self) -> List[TcpSocket]:
        """Every connection this server still has a hand in (for teardown)."""
        return list(self._queue) + list(self._handed_out)

    def forget(self, sock: TcpSocket) -> None:
        """A handed-out socket ``sock`` is closed: the server no longer owns it."""
        self._handed_out.discard(sock)

    def close(self) -> None:
        """Stop listening; close queued connections; handed-out ones stay."""
        lsock, self._lsock = self._lsock, None
        self._cancel_retry()
        if lsock is not None:
            self._stop_watching(lsock)
            lsock.close()
        while self._queue:
            self._queue.popleft().release()

    def release(self) -> None:
        """The owner is gone: close too every socket this server handed out."""
        self.close()
        self.listener = None
        for sock in list(self._handed_out):
            sock.release()
        self._handed_out.clear()

    # ------------------------------------------------------------ accept loop
    def _room(self) -> int:
        return self._max_pending - len(self._queue) - self._wrapping

    def _update_watch(self) -> None:
        lsock = self._lsock
        if lsock is None:
            return
        want = not self._paused and self._retry is None and self._room() > 0
        if want and not self._watching:
            self._loop.add_reader(lsock.fileno(), self._accept_ready)
            self._watching = True
        elif not want and self._watching:
            self._stop_watching(lsock)

    def _stop_watching(self, lsock: _socket.socket) -> None:
        if self._watching:
            self._loop.remove_reader(lsock.fileno())
            self._watching = False

    def _accept_ready(self) -> None:
        try:
            self._accept_batch()
        finally:
            if self._handed:  # uvloop: after the connection_made calls just scheduled
                self._loop.call_soon(self._finish_handed)

    def _accept_batch(self) -> None:
        lsock = self._lsock
        for _ in range(ACCEPT_BATCH):
            if lsock is None or self._paused or self._room() <= 0:
                break
            try:
                # _accept(): socket.accept() converts family, type and proto
                # to enums on every connection
                fd, _ = lsock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in TRANSIENT_ACCEPT_ERRNOS:
                    continue
                self._accept_failed(exc)
                return
            if self._logged:  # accepting works again: back-off and log start afresh
                self._logged = False
                self._retry_delay = ACCEPT_RETRY_FIRST
            self._wrap(fd)
        self._update_watch()

    def _accept_failed(self, exc: OSError) -> None:
        code, text = classify(exc)
        if exc.errno in RESOURCE_ERRNOS:
            code = SocketError.SOCKET_RESOURCE
        self.error, self.error_string = code, text
        if self.accept_error_handled:
            # As Qt does: stop accepting until the script resumes; otherwise a
            # readable listening socket would spin the loop.
            self._paused = True
            self._update_watch()
            self._events.post_step(self, Event.ACCEPT_ERROR, 0, None, int(code))
            return
        # Nobody to tell: say it once, and try again later by ourselves.
        if not self._logged:
            self._logged = True
            log.warning("TcpServer on port %d cannot accept connections: %s; "
                        "retrying (set accept_error_handler to handle this yourself)",
                        self.port, text)
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, ACCEPT_RETRY_MAX)
        self._retry = self._loop.call_later(delay, self._retry_accepting)
        self._update_watch()

    def _retry_accepting(self) -> None:
        self._retry = None
        self._update_watch()

    def _cancel_retry(self) -> None:
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
        self._retry_delay = ACCEPT_RETRY_FIRST
        self._logged = False

    def _socket_of(self, fd: int) -> _raw_socket:
        """The socket object for an accepted descriptor, non-blocking and
        without Nagle: the C socket type (socket.socket converts family,
        type and proto to enums, for us and again for the loop)."""
        try:
            conn = _raw_socket(self._family, _socket.SOCK_STREAM, 0, fd)
        except OSError:
            os.close(fd)
            raise
        try:
            conn.setblocking(False)
            # Replies go out as written, not held back for an ACK (Nagle): asyncio
            # sets this only for sockets whose proto says TCP, and ours says 0.
            conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            conn.close()
            raise
        return conn

    def _wrap(self, fd: int) -> None:
        make_transport = self._events.make_socket_transport
        if make_transport is None:  # uvloop: its public API
            self._hand_over(fd, self._accepted())
            return
        try:
            conn = self._socket_of(fd)
        except OSError:
            return  # that connection is gone (its descriptor closed), not the server
        sock = self._accepted()
        try:
            # asyncio's selector loops: what their own servers do for each
            # accepted connection, minus the task, coroutine and waiter
            make_transport(conn, sock, None)
        except Exception as exc:
            conn.close()
            self._not_wrapped(sock, exc)

    def _accepted(self) -> TcpSocket:
        """The socket of a connection being wrapped, counted as queued from now."""
        sock = TcpSocket(self._events, None, self._bind_address, self._budget)
        sock.detach()
        sock.server = self  # its connection_made tells us (wrapped() below)
        self._wrapping += 1
        return sock

    def _hand_over(self, fd: int, sock: TcpSocket) -> None:
        """Give ``fd`` to uvloop's ``connect_accepted_socket``, whose
        coroutine runs here up to its wait for connection_made, and is
        finished by _finish_handed: what a Task would do, without the Task,
        the future's callback and their loop steps per connection."""
        handover = self._handover
        handover.fd, handover.family, handover.sock = fd, self._family, sock
        try:
            coro = self._loop.connect_accepted_socket(handover, handover)  # type: ignore[arg-type, type-var]
            steps = coro.__await__()
            waiter = next(steps, None)
        except (Exception, asyncio.CancelledError) as exc:
            os.close(fd)
            self._not_wrapped(sock, exc)
            return
        finally:
            handover.sock = None
        if waiter is not None:  # None: it ended without a wait (connection_made has come)
            self._handed.append((steps, waiter, sock))

    def _finish_handed(self) -> None:
        """Run after the connection_made calls this accept batch's hand-overs
        scheduled, so each coroutine ends at once."""
        handed, self._handed = self._handed, []
        for steps, waiter, sock in handed:
            try:
                self._finish(steps, waiter, sock)
            except Exception:  # a bug of ours; a coroutine dropped would close its connection
                log.exception("TcpServer: finishing the hand-over of a connection failed")

    def _finish(self, steps: Iterator[Any], waiter: asyncio.Future[Any], sock: TcpSocket) -> None:
        if not waiter.done():  # not expected: its connection_made is still to come
            waiter.add_done_callback(lambda _: self._finish(steps, waiter, sock))
            return
        try:
            next(steps, None)  # it ends, and its StopIteration stays in C
        except (Exception, asyncio.CancelledError) as exc:
            self._not_wrapped(sock, exc)  # the transport failed before connection_made

    def _not_wrapped(self, sock: TcpSocket, exc: BaseException) -> None:
        if sock.state is not UNCONNECTED:
            return  # it failed after connection_made: the socket's own close follows
        self._wrapping -= 1
        sock.server = None
        if not self._wrap_logged:  # said once: it may fail for every connection
            self._wrap_logged = True
            log.warning("TcpServer on port %d: the event loop could not take an accepted "
                        "connection (%r); it was closed", self.port, exc)
        self._update_watch()

    def wrapped(self, sock: TcpSocket) -> None:
        """Called by the connection_made of ``sock``, a socket this server
        accepted: its transport is up, it joins the queue."""
        self._wrapping -= 1
        if self._lsock is None:
            sock.release()  # closed while we were wrapping it
        else:
            self._queue.append(sock)
            self._events.post_step(self, _NEW_CONNECTION)
        self._update_watch()

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        """A step this server posted: the event ``step`` to report."""
        self._tell(step, a, b)

    def __repr__(self) -> str:
        if self._lsock is not None:
            return f"TcpServer(listening, port {self.port})"
        return "TcpServer(not listening)"
