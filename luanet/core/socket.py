"""TcpSocket: a QTcpSocket-like stream on an asyncio transport.

State lives here and changes synchronously (a script that reads ``state`` right
after ``connect()`` sees HOST_LOOKUP), always through TRANSITIONS
(core/states.py), the one table that also says which events each change
reports, in Qt's order. Events go
through the EventQueue, so handlers run later, from the loop, in order.

One connection at a time, as a value: ``_gen`` counts connections. Every step
a socket posts carries the ``_gen`` it was posted under and does nothing once
it changed, so after ``abort()``, after a close completes, or after a new
``connect()`` nothing of the old connection reaches the listener (its unread
bytes are dropped with it, its pending writes discarded). The events a change
itself reports (the final STATE_CHANGED, DISCONNECTED) are posted under the new
value. STATE_CHANGED and ABOUT_TO_CLOSE carry ``_sgen`` instead, which only
``abort()`` changes: they are history, in Qt's order (bind() then connect()
reports BOUND then HOST_LOOKUP; abort() then connect() reports about_to_close
and UNCONNECTED before HOST_LOOKUP), but what an aborted attempt announced
goes with it. That bounds
what handlers can make the loop do: handlers that connect and abort in a cycle
leave only the events since the last abort() alive. An abort() before the
owner got CONNECTED ends what is, for the owner, an attempt: no DISCONNECTED.

Descriptors are ours until closed: connecting is a plain non-blocking
``connect`` watched with add_writer, and the writer is removed before the
descriptor is closed, so nothing (asyncio's clean-up of a cancelled
sock_connect, say) touches a number the kernel may already have reused. A
transport made for an attempt that has ended meanwhile finds out through its
own _Attempt and is aborted; an aborted transport is given a protocol that
ignores it, so its late connection_lost reaches nobody.

Remote close is a three-step sequence across batches (see events.py):
  1. every byte received so far is announced (READY_READ);
  2. ERROR(REMOTE_HOST_CLOSED) while the state is still CONNECTED;
  3. only in a later batch, after handlers of 2 had their chance to write, the
     transport is closed gracefully (what they wrote is sent) and the state
     goes CLOSING -> UNCONNECTED with DISCONNECTED.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket as _socket
from typing import Any, Final, List, Optional, Tuple, cast

from .addresses import dual_stack_socket, plain_address
from .budget import MemoryBudget
from .constants import MODE_READ, MODE_WRITE, Event, SocketError, SocketState, open_mode_valid
from .errors import classify
from .events import EventQueue, Listener, Reporter
from .states import (
    BOUND,
    CHANGES,
    CLOSING,
    CONNECTED,
    CONNECTED_EVENT,
    CONNECTING,
    HOST_LOOKUP,
    STATE_CHANGED,
    UNCONNECTED,
)

# Received bytes the listener has not taken yet, beyond which reading pauses
# until the next batch hands them over. Keeps what one READY_READ carries (and
# what a connection queued in its server holds) bounded, without ever making
# the peer wait on the script: the next batch always comes. Two of asyncio's
# largest reads (256 KiB): at one, every full read of a bulk transfer paused
# and resumed reading (two epoll_ctl calls and asyncio's Python around them,
# 13% of a MiB's instructions).
READ_AHEAD_LIMIT: Final = 1 << 19

# Why reading is paused (bits of _pauses): it resumes only when none holds.
_AHEAD: Final = 1   # READ_AHEAD_LIMIT / read_buffer_size bytes not taken yet
_BUDGET: Final = 2  # the host's memory budget is spent (parked in it)
_OWNER: Final = 4   # the owner's own buffer is full (pause_for_owner)

_NO_ADDRESS: Final = ("", 0)
# As plain ints: compiled, an enum member is an object, compared by a call
_READY_READ: Final = int(Event.READY_READ)
_BYTES_WRITTEN: Final = int(Event.BYTES_WRITTEN)
_ABOUT_TO_CLOSE: Final = int(Event.ABOUT_TO_CLOSE)
_ERROR: Final = int(Event.ERROR)
_REMOTE_HOST_CLOSED: Final = SocketError.REMOTE_HOST_CLOSED

# A socket's steps (EventQueue.post_step, TcpSocket._run_step): an Event's
# value is that event to report; these are the rest.
_ANNOUNCE_READ: Final = -1
_REMOTE_CLOSED: Final = -2
_CLOSE_AFTER_REMOTE: Final = -3
_RESET_WHILE_CLOSING: Final = -4
_FINISH_CLOSE: Final = -5
_ANNOUNCE_ATTACHED: Final = -6
_REPORT_WRITTEN: Final = -7
_IN_PROGRESS: Final = frozenset({errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY})
BUDGET_SPENT: Final = ("The host's max_memory budget is spent: nothing was queued "
                "(the peers have not taken what was written yet)")


class _Protocol(Reporter):
    """asyncio's protocol callbacks, doing nothing: the base of this module's
    protocols. Not asyncio.Protocol itself, which asyncio never asks for (it
    calls these by name): mypyc compiles this module, and a compiled class
    cannot derive from an interpreted one. (A Reporter for TcpSocket: a
    compiled class has one base.)"""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass


def _as_protocol(protocol: _Protocol) -> asyncio.BaseProtocol:
    """How asyncio's signatures name what it calls by name only."""
    return cast(asyncio.BaseProtocol, protocol)


class _Discard(_Protocol):
    """Given to a transport we aborted: whatever it still reports goes nowhere."""


_DISCARD: Final = _as_protocol(_Discard())


class _Attempt(_Protocol):
    """The first protocol of a transport made for a connect attempt: hands the
    transport to its socket if the attempt is still the socket's current one,
    else aborts it (the script aborted or reconnected while it was made)."""

    __slots__ = ("sock",)

    def __init__(self, sock: TcpSocket):
        self.sock = sock

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = self.sock
        dial = sock._dial
        if dial is None or dial.attempt is not self:
            transport.set_protocol(_DISCARD)
            transport.abort()  # type: ignore[attr-defined]
            return
        transport.set_protocol(_as_protocol(sock))
        sock.connection_made(transport)


class _Dial:
    """What only connecting needs, made by the first connect() or bind():
    an accepted connection never has one, which keeps the many idle ones
    small."""

    __slots__ = ("lookup", "addrs", "csock", "attempt", "making", "last_exc",
                 "close_pending", "bound", "pre_connect", "connecting")

    def __init__(self) -> None:
        self.lookup: Optional[asyncio.Future[Any] | asyncio.Handle] = None  # lookup under way
        self.addrs: Optional[List[Tuple[int, Any]]] = None  # addresses still to try
        self.csock: Optional[_socket.socket] = None  # connecting, watched by add_writer
        self.attempt: Optional[_Attempt] = None  # transport being made for it
        self.making: Optional[asyncio.BaseTransport] = None
        self.last_exc: Optional[BaseException] = None
        self.close_pending = False  # disconnect()/close() while connecting
        self.bound: Optional[_socket.socket] = None  # bind()'s socket, until connected
        self.pre_connect: Optional[List[bytes]] = None  # writes made while connecting
        self.connecting = False

    def holds_nothing(self) -> bool:
        """No lookup, descriptor or transport of an attempt left."""
        return (self.lookup is None and self.csock is None and self.making is None
                and self.attempt is None and self.bound is None)


class TcpSocket(_Protocol):
    """One TCP connection, client or accepted, with a read buffer.

    ``listener``, ``events_wanted`` and ``tag`` are a Reporter's (events.py).
    ``budget`` (a MemoryBudget with a limit) is charged for the bytes held
    here: received and not read yet, written and not sent yet.

    Arguments:
        events: the queue its events are posted to (and whose loop it uses).
        listener: the event callback above; None reports nothing.
        bind_address: ``bind()`` binds this address only; None: all interfaces.
        budget: the host's MemoryBudget (one without a limit is not charged).
    """

    __slots__ = (
        "_events", "_bind_address", "state", "open_mode",
        "error", "error_string", "_transport", "_rchunks", "_rlen", "_read_posted", "_pauses",
        "_read_limit", "_read_buffer_size", "_budget", "_wheld", "_wpaused", "_rslow",
        "_attached", "_early_end", "_closing_remote", "_written_total",
        "_written_reported", "_written_sent", "_written_posted", "notify_bytes_written",
        "_gen", "_sgen", "_seen", "_dial", "_wturn", "_local",
        "_remote", "server",
    )

    def __init__(self, events: EventQueue, listener: Optional[Listener] = None,
                 bind_address: Optional[str] = None, budget: Optional[MemoryBudget] = None):
        self.listener = listener
        self.tag = None
        self.events_wanted = -1  # all
        self._events = events
        self._bind_address = bind_address
        self.state = UNCONNECTED
        self.open_mode = 0  # OpenMode flags (an int: any sum of them is a mode)
        self.error: Optional[SocketError] = None
        self.error_string = ""
        self._transport: Optional[asyncio.Transport] = None
        # the read buffer, as received: None, one chunk (the usual case, no
        # list per socket), or a list of them
        self._rchunks: Optional[bytes | List[bytes]] = None
        self._rlen = 0
        self._pauses = 0  # _AHEAD | _BUDGET | _OWNER
        self._read_buffer_size = 0
        self._read_limit = READ_AHEAD_LIMIT
        # Only a budget with a limit is charged: unlimited hosts pay nothing.
        self._budget = budget if budget is not None and budget.limit is not None else None
        self._wheld = 0  # written bytes charged to the budget, not known sent yet
        self._early_end: Optional[BaseException | bool] = None
        self._written_total = 0     # bytes given to the transport, this connection
        self._written_reported = 0  # of those, reported through BYTES_WRITTEN
        self._written_sent = 0      # of those, known to have left the transport
        self._wturn = -1  # the turn (EventQueue.turn) of the last write
        self._gen = 0  # the connection; steps posted under another value are stale
        self._sgen = 0  # abort()s: STATE_CHANGED posted before is stale
        self._dial: Optional[_Dial] = None  # connect()/bind() state, made by them
        # Socket names as the OS gives them (converted when a script asks);
        # for a connection, read from the transport only when first needed:
        # most connections never are asked, and each saves the memory. From
        # the end of a connection until UNCONNECTED, _remote may hold the
        # ended transport instead, which still knows both ends.
        self._local: Optional[Tuple[Any, ...]] = None
        self._remote: object = None
        # The flags, together: compiled, fields are laid out in the order
        # they are first assigned, and adjacent flags share one 8-byte slot.
        self._read_posted = False
        # data_received takes the slow path: bytes to charge, or not to keep
        self._rslow = self._budget is not None
        self._wpaused = False  # the transport holds unsent bytes (pause_writing)
        # Accepted sockets wait in the server's queue "detached": events about
        # them are held back until the script takes them (see attach()).
        self._attached = True
        self._closing_remote = False
        self._written_posted = False
        self.notify_bytes_written = False
        self._seen = False  # the owner got CONNECTED (or took an accepted connection)
        self.server: Any = None  # the TcpServer that handed this socket out, if any

    # ------------------------------------------------------------------ events
    def _emit(self, gen: int, sgen: int, event: int, a: object = None, b: object = None) -> None:
        listener = self.listener
        if listener is None:
            return
        # == on events, never `is`: compiled by mypyc they arrive as plain ints
        if event == STATE_CHANGED or event == _ABOUT_TO_CLOSE:
            if sgen != self._sgen:
                return
        elif gen != self._gen:
            return
        elif event == CONNECTED_EVENT:
            self._seen = True
        self._tell(event, a, b)

    def _post(self, event: int, a: object = None, b: object = None) -> None:
        self._events.post_step(self, event, self._gen, self._sgen, a, b)

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        """A step this socket posted: an event to report (x: the _sgen it was
        posted under), or one of the codes above."""
        if step >= 0:
            self._emit(gen, cast(int, x), step, a, b)
        elif step == _ANNOUNCE_READ:
            self._announce_read()
        elif step == _REMOTE_CLOSED:
            self._remote_closed(gen, cast(Optional[BaseException], a))
        elif step == _CLOSE_AFTER_REMOTE:
            self._close_after_remote(gen)
        elif step == _RESET_WHILE_CLOSING:
            self._reset_while_closing(gen, cast(BaseException, a))
        elif step == _FINISH_CLOSE:
            self._finish_close(gen)
        elif step == _ANNOUNCE_ATTACHED:
            self._announce_attached(gen, cast(bool, x), cast(Optional[BaseException], a), cast(bool, b))
        elif step == _REPORT_WRITTEN:
            self._report_written(gen)

    def _change(self, what: str, arg: object = None) -> None:
        """The one way the state changes: TRANSITIONS says to what, and which
        events report it."""
        new, number, events = CHANGES[self.state][what]
        self.state = new
        if new is UNCONNECTED:
            self._local = self._remote = None  # no end is reported any more
        for event in events:
            self._post(event, number if event == STATE_CHANGED else arg)

    def _new_connection(self) -> None:
        """Whatever was posted for the connection so far is stale from now on."""
        self._gen += 1
        self._seen = False
        self._written_total = self._written_reported = self._written_sent = 0
        self._written_posted = False
        self._closing_remote = False

    def _close_device(self) -> None:
        """The device closes (Qt's QIODevice::close()): about_to_close if it was open."""
        if self.open_mode:
            self.open_mode = 0
            self._post(_ABOUT_TO_CLOSE)

    def _set_error(self, code: SocketError, text: str) -> None:
        self.error = code
        self.error_string = text

    # -------------------------------------------------------------- properties
    @property
    def connection(self) -> int:
        """A number that changes whenever a connection (or attempt) ends or starts."""
        return self._gen

    @property
    def is_open(self) -> bool:
        """Whether the socket is open (its open mode is not NOT_OPEN)."""
        return self.open_mode != 0

    @property
    def valid(self) -> bool:
        """Whether the socket is connected and has its transport."""
        return self.state == CONNECTED and self._transport is not None

    @property
    def readable(self) -> bool:
        """Whether it was opened for reading."""
        return bool(self.open_mode & MODE_READ)

    @property
    def writeable(self) -> bool:
        """Whether it was opened for writing."""
        return bool(self.open_mode & MODE_WRITE)

    @property
    def local_address(self) -> str:
        """The local address (as text); "" when unconnected."""
        return self._addresses()[0][0] if self.state != UNCONNECTED else ""

    @property
    def local_port(self) -> int:
        """The local port; 0 when unconnected."""
        return self._addresses()[0][1] if self.state != UNCONNECTED else 0

    @property
    def remote_address(self) -> str:
        """The peer's address (as text) while connected or closing; "" otherwise."""
        return self._addresses()[1][0] if self.state in (CONNECTED, CLOSING) else ""

    @property
    def remote_port(self) -> int:
        """The peer's port while connected or closing; 0 otherwise."""
        return self._addresses()[1][1] if self.state in (CONNECTED, CLOSING) else 0

    @property
    def finished(self) -> bool:
        """No descriptor left: transport gone, no connect under way, nothing bound."""
        dial = self._dial
        return self._transport is None and (dial is None or dial.holds_nothing())

    @property
    def bytes_to_write(self) -> int:
        """Bytes written and not sent yet (including those written while connecting)."""
        dial = self._dial
        pending = sum(map(len, dial.pre_connect)) if dial is not None and dial.pre_connect else 0
        if self._transport is not None:
            pending += self._transport.get_write_buffer_size()
        return pending

    @property
    def read_buffer_size(self) -> int:
        """Qt's readBufferSize: the most unread bytes held here (0: no limit
        of its own; reading still pauses at READ_AHEAD_LIMIT until the owner
        takes them)."""
        return self._read_buffer_size

    @read_buffer_size.setter
    def read_buffer_size(self, size: int) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("read_buffer_size must be a non-negative integer")
        self._read_buffer_size = size
        self._read_limit = min(READ_AHEAD_LIMIT, size) if size else READ_AHEAD_LIMIT
        if self._rlen >= self._read_limit:
            self._pause(_AHEAD)
        else:
            self._unpause(_AHEAD)

    # ------------------------------------------------------------ read buffer
    @property
    def bytes_available(self) -> int:
        """Bytes in the read buffer, waiting to be read."""
        return self._rlen

    def read(self, max_size: Optional[int] = None) -> bytes:
        """Up to max_size bytes (all without it) from the read buffer."""
        if max_size is None or max_size >= self._rlen:
            pieces = self.read_pieces()
            return b"".join(pieces) if isinstance(pieces, list) else pieces
        chunks = self._rchunks
        flat = b"".join(chunks) if isinstance(chunks, list) else cast(bytes, chunks)
        data = flat[:max_size]
        self._rchunks = flat[max_size:]
        self._rlen -= len(data)
        if self._budget is not None:
            self._budget.release(len(data))
        if self._pauses and self._rlen < self._read_limit:
            self._unpause(_AHEAD)  # the owner took them: read on
        return data

    def read_pieces(self) -> bytes | List[bytes]:
        """All of the read buffer as it arrived: one bytes object, or a list
        of them when several pieces wait (joining them would copy every
        byte once more). For an owner that takes everything."""
        chunks = self._rchunks
        if chunks is None:
            return b""
        if self._budget is not None:
            self._budget.release(self._rlen)
        self._rchunks = None
        self._rlen = 0
        if self._pauses:
            self._unpause(_AHEAD)
        return chunks

    def _clear_read_buffer(self) -> None:
        if self._budget is not None:
            self._budget.release(self._rlen)
        self._rchunks = None
        self._rlen = 0
        self._unpause(_AHEAD)

    def _pause(self, why: int) -> None:
        if not self._pauses:
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
        self._pauses |= why

    def _unpause(self, why: int) -> None:
        pauses = self._pauses
        if pauses & why:
            self._pauses = pauses = pauses & ~why
            if not pauses:
                transport = self._transport
                if transport is not None and not transport.is_closing():
                    transport.resume_reading()

    def pause_for_owner(self) -> None:
        """The owner's buffer reached read_buffer_size: stop reading until
        resume_for_owner() (independent of the other reasons to pause)."""
        self._pause(_OWNER)

    def resume_for_owner(self) -> None:
        """Read again: the owner's read buffer has room once more."""
        self._unpause(_OWNER)

    def resume_for_budget(self) -> None:
        """Called by MemoryBudget.poll() once there is room again."""
        self._unpause(_BUDGET)

    # ----------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: the connection is up on ``transport``."""
        self._transport = transport  # type: ignore[assignment]
        # high=0: pause/resume_writing then tell exactly when the buffer drains,
        # which is when BYTES_WRITTEN can be reported.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]
        self._local = self._remote = None  # the transport knows them now
        if self._pauses:
            transport.pause_reading()  # type: ignore[attr-defined]
        dial = self._dial
        if dial is None or not dial.connecting:  # accepted by a server
            if self.open_mode == 0:
                self.open_mode = 3
            self._rslow = self._budget is not None or not self.open_mode & MODE_READ
            self._seen = True
            self._change("accept")
            if self.server is not None:
                self.server.wrapped(self)
            return
        dial.making = dial.attempt = None
        dial.connecting = False
        self._change("connected")
        pending, dial.pre_connect = dial.pre_connect or (), None
        for chunk in pending:
            self._send(chunk)
        if self._wheld and not self._wpaused:
            self._budget.release(self._wheld)  # type: ignore[union-attr]
            self._wheld = 0
        if dial.close_pending:  # disconnect()/close() while connecting: Qt's order
            dial.close_pending = False
            # from the loop, after CONNECTED was posted: the handlers of the
            # connection see it connected, then it closes
            self._disconnect(at_once=False)

    def _addresses(self) -> Tuple[Tuple[str, int], Tuple[str, int]]:
        """(local, remote) (host, port) pairs; ("", 0) for an end not known."""
        remote = self._remote
        if remote is None or remote.__class__ is not tuple:
            # not asked yet: the transport, or the one that just ended, knows
            transport = self._transport if remote is None else remote
            if transport is None:
                return self._address(self._local), _NO_ADDRESS
            self._keep_addresses(cast(asyncio.BaseTransport, transport))
        return self._address(self._local), self._address(self._remote)

    def _keep_addresses(self, transport: asyncio.BaseTransport) -> None:
        # as the transport gives them; converted only when a script asks
        self._local = transport.get_extra_info("sockname")
        self._remote = transport.get_extra_info("peername")

    @staticmethod
    def _address(name: object) -> Tuple[str, int]:
        if isinstance(name, tuple) and len(name) >= 2:
            return plain_address(str(name[0])), int(name[1])
        return "", 0

    def data_received(self, data: bytes) -> None:
        """asyncio: ``data`` arrived; it goes to the read buffer."""
        if self._rslow:
            if not self._data_received_slow(data):
                return
        chunks = self._rchunks
        if chunks is None:
            self._rchunks = data
        elif isinstance(chunks, list):
            chunks.append(data)
        else:
            self._rchunks = [chunks, data]
        self._rlen += len(data)
        if self._attached and not self._read_posted:
            self._read_posted = True
            self._events.post_step(self, _ANNOUNCE_READ)
        if self._rlen >= self._read_limit:
            self._pause(_AHEAD)  # until _announce_read (or attach) runs

    def _data_received_slow(self, data: bytes) -> bool:
        """Budget accounting, and write-only sockets: False when the bytes
        are not to be kept."""
        if not self.open_mode & MODE_READ:
            # as Qt: a socket not open for reading hands nothing out, but
            # still reads, so the peer's close or reset is noticed
            return False
        budget = self._budget
        if budget is not None:
            budget.charge(len(data))
            if budget.room() <= 0:
                self._pause(_BUDGET)
                budget.park(self)
        return True

    def _announce_read(self) -> None:
        # No generation here: abort() and connect() empty the buffer, so a
        # stale announcement finds nothing (or the new connection's bytes).
        self._read_posted = False
        listener = self.listener
        if self._rlen and listener is not None:
            listener(self, _READY_READ, None, None)
        if self._pauses and self._rlen < self._read_limit:
            self._unpause(_AHEAD)  # only if the owner took the bytes

    def eof_received(self) -> bool:
        """asyncio: the peer closed its side (REMOTE_HOST_CLOSED follows)."""
        if self._attached:
            self._events.post_step(self, _REMOTE_CLOSED, self._gen)
        else:
            self._early_end = True
        return True  # keep our half open: the script may still answer

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """asyncio: the transport is gone; ``exc`` says why (None: a clean close)."""
        if exc is not None and self._transport is not None and self.state is CONNECTED:
            self._read_rest()
        self._drop_transport(exc)
        gen = self._gen
        if self.state is CLOSING and not self._closing_remote:
            if exc is not None:  # reset while our close flushed: report it, as Qt
                self._events.post_step(self, _RESET_WHILE_CLOSING, gen, None, exc)
            else:
                self._events.post_step(self, _FINISH_CLOSE, gen)
        elif self._closing_remote:
            self._events.post_step(self, _FINISH_CLOSE, gen)
        elif not self._attached:
            self._early_end = exc or True
        else:
            self._events.post_step(self, _REMOTE_CLOSED, gen, None, exc)

    def _read_rest(self) -> None:
        """A send failed (the peer reset) before asyncio read what arrived
        ahead of the reset: it is still in the kernel, and it is the
        script's, as in Qt, where readyRead comes before the error."""
        sock = self._transport.get_extra_info("socket")  # type: ignore[union-attr]
        try:
            rest = _socket.socket(fileno=os.dup(sock.fileno()))
        except (OSError, ValueError, AttributeError):
            return
        with rest:
            rest.setblocking(False)
            while self._transport is not None:
                try:
                    data = rest.recv(READ_AHEAD_LIMIT)
                except OSError:
                    return
                if not data:
                    return
                self.data_received(data)

    def _drop_transport(self, exc: Optional[BaseException]) -> None:
        """What the end of the transport means here, however it ended."""
        transport, self._transport = self._transport, None
        if transport is not None and self._remote is None:
            # Handlers may ask until UNCONNECTED. The transport keeps both
            # ends after it closed (asyncio's as Python values, uvloop's as
            # raw addresses): converting them now would cost every connection
            # two address conversions that few scripts ask for.
            self._remote = transport
        self._pauses = 0
        if self._budget is not None:
            self._budget.unpark(self)
        if exc is None or not self._wpaused:
            self._written_sent = self._written_total  # flushed (close() waits for it)
        self._wpaused = False
        self._release_written()

    def pause_writing(self) -> None:
        """asyncio: the transport's write buffer is full."""
        self._wpaused = True

    def resume_writing(self) -> None:
        """asyncio: the transport's write buffer drained."""
        self._wpaused = False
        self._written_sent = self._written_total
        self._release_written()
        self._report_written(self._gen)

    def _release_written(self) -> None:
        if self._wheld:
            self._budget.release(self._wheld)  # type: ignore[union-attr]
            self._wheld = 0

    # ------------------------------------------------------ close sequences
    def _remote_closed(self, gen: int, exc: Optional[BaseException]) -> None:
        if gen != self._gen or self._closing_remote or self.state is not CONNECTED:
            return  # stale, or the script closed first: its own close sequence runs
        self._closing_remote = True
        if exc is None:
            self._set_error(_REMOTE_HOST_CLOSED, "The remote host closed the connection")
        else:
            self._set_error(*classify(exc))
        # Inline, not posted: this step already runs in a batch, right after
        # the READY_READ for the last bytes.
        self._emit(gen, self._sgen, _ERROR, int(self.error))  # type: ignore[arg-type]
        self._events.post_step(self, _CLOSE_AFTER_REMOTE, gen)

    def _close_after_remote(self, gen: int) -> None:
        if gen != self._gen or self.state is not CONNECTED:
            return
        self._change("close")
        if self._transport is not None:
            self._transport.close()  # sends what handlers wrote, then connection_lost
        else:
            self._events.post_step(self, _FINISH_CLOSE, gen)

    def _reset_while_closing(self, gen: int, exc: BaseException) -> None:
        if gen != self._gen or self.state is not CLOSING:
            return
        self._set_error(*classify(exc))
        self._emit(gen, self._sgen, _ERROR, int(self.error))  # type: ignore[arg-type]
        self._close_device()  # as Qt: the device closes with the error
        self._events.post_step(self, _FINISH_CLOSE, gen)

    def _finish_close(self, gen: int) -> None:
        if gen != self._gen or self.state is not CLOSING:
            return
        self._end_close(new_connection=True)

    def _end_close(self, new_connection: bool) -> None:
        """CLOSING -> UNCONNECTED, what was sent reported first. From the
        loop, the connection ends here (what is still posted for it is
        stale); inside disconnect() it ends at the next connect(), so what it
        posted before (connected, data) still comes first, as in Qt."""
        unreported = self._written_sent - self._written_reported
        notify = self.notify_bytes_written
        if new_connection:
            self._new_connection()
        else:
            self._written_reported = self._written_sent
        if notify and unreported > 0:
            self._post(_BYTES_WRITTEN, unreported)
        self._change("closed")
        self._forget()

    def _forget(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.forget(self)

    # ------------------------------------------------ queue hand-over (server)
    def detach(self) -> None:
        """Queued in a server: hold events back until attach()."""
        self._attached = False

    def attach(self, listener: Optional[Listener]) -> None:
        """Handed to the script: ``listener`` gets the events from now on, and
        what happened while it was queued is announced."""
        self.listener = listener
        self._attached = True
        early, self._early_end = self._early_end, None
        self._read_posted = True
        # One step for both, in the remote-close order: the bytes first (the
        # owner may take them right now; READY_READ's b=True then says they
        # were handed over already), then the end.
        self._events.post_step(self, _ANNOUNCE_ATTACHED, self._gen, self._rlen > 0,
                               None if early is None else (None if early is True else early),
                               early is not None)

    def _announce_attached(self, gen: int, had_bytes: bool, exc: Optional[BaseException],
                           ended: bool) -> None:
        self._read_posted = False
        if gen != self._gen:
            return
        listener = self.listener
        if listener is not None and (had_bytes or self._rlen):
            listener(self, _READY_READ, None, True)
        if self._pauses and self._rlen < self._read_limit:
            self._unpause(_AHEAD)
        if ended:
            self._remote_closed(gen, exc)

    # ------------------------------------------------------------ connecting
    def connect(self, host: str, port: int, mode: object = 3) -> bool:
        """Start connecting to ``host`` (a name or address) at ``port``, open in
        ``mode`` (OpenMode flags, an int; READ_WRITE by default); False (error
        set, nothing else changed) when the socket is busy or an argument is
        unusable, a mode of any other type included."""
        if self.state is not UNCONNECTED and self.state is not BOUND:
            self._set_error(SocketError.OPERATION, "The socket is already connecting or connected")
            self._post(Event.ERROR, int(SocketError.OPERATION))  # as Qt
            return False
        if not isinstance(port, int) or not 0 <= port <= 65535:
            self._set_error(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE,
                            f"Port {port} is out of range (0..65535)")
            return False
        if not open_mode_valid(mode):
            self._set_error(SocketError.OPERATION,
                            f"Invalid open mode {mode}: it must read (1) and/or write (2, 4)")
            return False
        self._new_connection()
        self._clear_read_buffer()
        self._pauses = 0  # the owner's buffer for the new connection is empty too
        if self._budget is not None:
            self._budget.unpark(self)
        self.error, self.error_string = None, ""
        self.open_mode = mode
        self._rslow = self._budget is not None or not mode & MODE_READ
        self._remote = None  # forget a previous connection's ends; bind()'s local one stays
        dial = self._dialing()
        bound = dial.bound
        if bound is None:
            self._local = None
        dial.connecting = True
        dial.close_pending = False
        dial.last_exc = None
        self._change("connect")
        family = _socket.AF_INET if bound is not None and bound.family == _socket.AF_INET else 0
        loop = self._events.loop
        try:  # an address needs no resolver thread (and no task to cancel)
            infos = _socket.getaddrinfo(host, port, family, _socket.SOCK_STREAM, 0,
                                        _socket.AI_NUMERICHOST)
        except (OSError, UnicodeError, ValueError, TypeError):
            infos = None
        if infos is not None:
            dial.lookup = loop.call_soon(self._resolved, self._gen, infos)
            return True
        lookup: asyncio.Future[Any]
        try:
            lookup = asyncio.ensure_future(
                loop.getaddrinfo(host, port, type=_socket.SOCK_STREAM, family=family), loop=loop)
        except (OSError, UnicodeError, ValueError, TypeError) as exc:
            lookup = loop.create_future()
            lookup.set_exception(exc)
        dial.lookup = lookup
        lookup.add_done_callback(functools.partial(self._looked_up, self._gen))
        return True

    def _dialing(self) -> _Dial:
        """The connect state, made the first time it is needed."""
        dial = self._dial
        if dial is None:
            dial = self._dial = _Dial()
        return dial

    def _looked_up(self, gen: int, lookup: asyncio.Future[Any]) -> None:
        if lookup.cancelled():
            return
        exc = lookup.exception()  # retrieved even when stale
        if gen == self._gen:
            self._resolved(gen, [] if exc is not None else lookup.result())

    def _resolved(self, gen: int, infos: List[Any]) -> None:
        if gen != self._gen:
            return
        dial = self._dialing()
        dial.lookup = None
        if not infos:
            self._connect_failed(SocketError.HOST_NOT_FOUND, "Host not found")
            return
        dial.addrs = [(info[0], info[4]) for info in infos]
        self._change("found")
        self._try_next()

    def _try_next(self) -> None:
        """Connect to the next address; on to the one after when it fails."""
        dial = self._dialing()
        bound = dial.bound
        while dial.addrs:
            family, address = dial.addrs.pop(0)
            sock = bound
            try:
                if sock is not None:
                    if family == _socket.AF_INET and sock.family == _socket.AF_INET6:
                        address = ("::ffff:" + address[0], address[1], 0, 0)
                    elif family != sock.family:
                        continue
                else:
                    sock = _socket.socket(family, _socket.SOCK_STREAM)
                    sock.setblocking(False)
                err = sock.connect_ex(address)
            except OSError as exc:
                dial.last_exc = exc
                if sock is not None and sock is not bound:
                    sock.close()
                continue
            if err == 0:
                self._connected(sock)
                return
            if err in _IN_PROGRESS:
                dial.csock = sock
                self._events.loop.add_writer(sock.fileno(), self._connect_ready)
                return
            dial.last_exc = OSError(err, os.strerror(err))
            if sock is not bound:
                sock.close()
        last = dial.last_exc
        code, text = classify(last) if last is not None else (SocketError.CONNECTION_REFUSED,
                                                              "Connection refused")
        self._connect_failed(code, text)

    def _connect_ready(self) -> None:
        dial = self._dialing()
        sock, dial.csock = dial.csock, None
        if sock is None:
            return
        self._events.loop.remove_writer(sock.fileno())
        err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err == 0:
            self._connected(sock)
            return
        dial.last_exc = OSError(err, os.strerror(err))
        if sock is not dial.bound:
            sock.close()
        self._try_next()

    def _connected(self, sock: _socket.socket) -> None:
        """The kernel connected: wrap the socket in a transport."""
        dial = self._dialing()
        dial.bound = None  # the transport owns it now
        dial.addrs = None
        attempt = dial.attempt = _Attempt(self)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        except OSError:
            pass
        loop = self._events.loop
        make_transport = self._events.make_socket_transport
        if make_transport is not None:
            # asyncio's selector loops: no task, so nothing to cancel; the
            # transport calls attempt.connection_made from the loop.
            try:
                dial.making = make_transport(sock, attempt, None)
            except Exception as exc:
                dial.attempt = None
                sock.close()
                self._connect_failed(*classify(exc))
            return
        # other loops (uvloop): the public API; never cancelled, the attempt
        # decides what becomes of the transport. connect_accepted_socket, not
        # create_connection(sock=): uvloop's create_connection takes charge of
        # the socket object only once connection_made has returned, so a
        # transport closed inside it (close() while connecting) left the
        # object to close the descriptor a second time when collected, by
        # then perhaps another connection's. connect_accepted_socket takes
        # charge of it before and detaches it when the transport closes.
        task = loop.create_task(loop.connect_accepted_socket(lambda: _as_protocol(attempt), sock))
        task.add_done_callback(functools.partial(self._made, attempt, sock))

    def _made(self, attempt: _Attempt, sock: _socket.socket, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            exc: Optional[BaseException] = asyncio.CancelledError()
        else:
            exc = task.exception()
        if exc is None:
            return
        # sock is left alone: the loop may have closed its descriptor already,
        # and closing the number again could hit a socket that reused it.
        dial = self._dial
        if dial is not None and dial.attempt is attempt:
            dial.attempt = None
            self._connect_failed(*classify(exc))

    def _connect_failed(self, code: SocketError, text: str) -> None:
        self._stop_connecting()
        self._close_bound()
        dial = self._dialing()
        had_writes = bool(dial.pre_connect)
        self._drop_pre_connect()
        dial.close_pending = False
        self._set_error(code, text)
        self._change("fail", int(code))
        # The device stays open, as in Qt (close()/abort() after a failed
        # attempt still run about_to_close), unless writes were waiting: Qt
        # closes it then, as their flush fails.
        if had_writes:
            self._close_device()

    def _stop_connecting(self) -> None:
        """End the attempt under way, if any; its descriptors are closed after
        the loop stopped watching them."""
        dial = self._dial
        if dial is None:
            return
        dial.connecting = False
        dial.addrs = None
        lookup, dial.lookup = dial.lookup, None
        if lookup is not None:
            lookup.cancel()
        sock, dial.csock = dial.csock, None
        if sock is not None:
            self._events.loop.remove_writer(sock.fileno())
            if sock is not dial.bound:
                sock.close()
        dial.attempt = None  # a transport still being made aborts itself
        making, dial.making = dial.making, None
        if making is not None:
            making.set_protocol(_DISCARD)
            making.abort()  # type: ignore[attr-defined]

    def _drop_pre_connect(self) -> None:
        if self._dial is not None:
            self._dial.pre_connect = None
        self._release_written()

    def bind(self, port: int) -> bool:
        """Bind to ``port`` (0: any free one) before connecting; False with the error set on failure."""
        if self.state is not UNCONNECTED:
            self._set_error(SocketError.OPERATION, "The socket is already bound or connected")
            return False
        if not isinstance(port, int) or not 0 <= port <= 65535:
            self._set_error(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE,
                            f"Port {port} is out of range (0..65535)")
            self._post(Event.ERROR, int(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE))
            return False
        try:
            bound = self._dialing().bound = dual_stack_socket(self._bind_address, port)
        except OSError as exc:
            code, text = classify(exc)
            self._set_error(code, text)
            self._post(Event.ERROR, int(code))
            return False
        self._local, self._remote = bound.getsockname(), None
        self._change("bind")
        return True

    # ------------------------------------------------------------ writing
    def write(self, data: bytes) -> int:
        """Queue data; its length, or -1 with the error set."""
        transport = self._transport
        if transport is not None and self.state is CONNECTED and self.open_mode & 6:
            n = len(data)
            if n:
                if self._budget is not None:
                    return self._write_budgeted(data)
                # _send, written out: this is every echo's write
                transport.write(data)
                self._wturn = self._events.turn
                if transport.is_closing():
                    return n  # the send failed (a reset): nothing of it went out
                self._written_total += n
                if self.notify_bytes_written and not self._written_posted:
                    self._written_posted = True
                    self._events.post_step(self, _REPORT_WRITTEN, self._gen)
            return n
        return self._write_unless_connected(data)

    def _write_budgeted(self, data: bytes) -> int:
        budget = self._budget
        n = len(data)
        if not budget.fits(n):  # type: ignore[union-attr]
            self._set_error(SocketError.SOCKET_RESOURCE, BUDGET_SPENT)
            return -1
        budget.charge(n)  # type: ignore[union-attr]
        self._wheld += n
        if self._transport is not None:
            self._send(data)
            if not self._wpaused:  # all of it went to the kernel
                self._release_written()
        else:
            self._hold_until_connected(data)
        return n

    def _write_unless_connected(self, data: bytes) -> int:
        """write() for a socket that is not connected and writable: queued
        while connecting (as Qt does), else -1 with the error set."""
        if not self.open_mode & MODE_WRITE:
            # as Qt's QIODevice::write: a device not open for writing refuses
            # before writeData, and error() is left as it was
            self.error_string = ("The socket is not open for writing" if self.open_mode
                                 else "The socket is not open")
            return -1
        state = self.state
        if state is not HOST_LOOKUP and state is not CONNECTING:
            # as Qt's writeData: UnknownSocketError, "Socket is not connected"
            self._set_error(SocketError.UNKNOWN, "The socket is not connected")
            return -1
        if data:
            if self._budget is not None:
                return self._write_budgeted(data)
            self._hold_until_connected(data)  # as Qt buffers writes made while connecting
        return len(data)

    def _hold_until_connected(self, data: bytes) -> None:
        dial = self._dialing()
        if dial.pre_connect is None:
            dial.pre_connect = []
        dial.pre_connect.append(bytes(data))

    def _send(self, data: bytes) -> None:
        transport = self._transport
        transport.write(data)  # type: ignore[union-attr]
        self._wturn = self._events.turn
        if transport.is_closing():  # type: ignore[union-attr]
            return  # the send failed (a reset): nothing of it went out
        self._written_total += len(data)
        if self.notify_bytes_written and not self._written_posted:
            self._written_posted = True
            self._events.post_step(self, _REPORT_WRITTEN, self._gen)

    def _report_written(self, gen: int) -> None:
        if gen != self._gen:
            return
        self._written_posted = False
        transport = self._transport
        if transport is not None:
            self._written_sent = self._written_total - transport.get_write_buffer_size()
        if not self.notify_bytes_written:
            self._written_reported = self._written_sent
            return
        sent = self._written_sent
        if sent > self._written_reported:
            count, self._written_reported = sent - self._written_reported, sent
            self._post(_BYTES_WRITTEN, count)

    # ------------------------------------------------------------ closing
    def disconnect(self) -> None:
        """Close gracefully: what was written is sent first (while connecting: once connected)."""
        self._disconnect(at_once=True)

    def _disconnect(self, at_once: bool) -> None:
        state = self.state
        if state is CONNECTED:
            self._change("close")
            transport = self._transport
            if (at_once and transport is not None and not self._closing_remote
                    and not transport.get_write_buffer_size() and self._wturn != self._events.turn):
                # Nothing left to send: the connection ends inside the call,
                # as in Qt, so connect() right after works. Bytes written in
                # this same turn count as unsent, as in Qt, which sends them
                # from its loop: CLOSING until then, and a connect() right
                # after is refused with OPERATION_ERROR.
                self._drop_transport(None)
                transport.set_protocol(_DISCARD)
                transport.close()
                self._end_close(new_connection=False)
            elif transport is not None:
                transport.close()  # flushes first; connection_lost follows
            else:
                self._events.post_step(self, _FINISH_CLOSE, self._gen)
        elif state is HOST_LOOKUP or state is CONNECTING:
            self._dialing().close_pending = True  # as Qt: connect, send what was written, then close
        elif state is BOUND:
            self._close_bound()
            self._change("unbind")

    def close(self) -> None:
        """about_to_close (if open), then a graceful disconnect; buffered input is dropped."""
        self._close_device()
        self._rslow = True  # bytes still arriving while it closes are not kept
        self._clear_read_buffer()
        self.disconnect()

    def abort(self) -> None:
        """Close now: unsent data is discarded, unread data dropped, and
        nothing already posted for this connection is reported any more."""
        was = self.state
        if was is UNCONNECTED and self.finished:
            # The connection, if any, has ended already (a second abort(), a
            # disconnect() that had nothing to send, a failed lookup): what its
            # end reported stands, as in Qt, where it ran before abort() was
            # called; abort() ends nothing, it only drops unread bytes and
            # closes the device.
            self._clear_read_buffer()
            self._close_device()
            return
        seen = self._seen
        self._new_connection()
        self._sgen += 1
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.set_protocol(_DISCARD)
            transport.abort()
        self._stop_connecting()
        self._close_bound()
        self._drop_pre_connect()
        self._clear_read_buffer()
        self._pauses = 0
        self._wpaused = False
        if self._dial is not None:
            self._dial.close_pending = False
        self._early_end = None
        if self._budget is not None:
            self._budget.unpark(self)
        self._close_device()  # abort() closes the device, as Qt
        if was is not UNCONNECTED:
            self._change("abort" if seen or (was is not CONNECTED and was is not CLOSING)
                         else "cancel")
        self._forget()

    def release(self) -> None:
        """The owner is gone: no more events; close gracefully (written data is sent)."""
        self.listener = None
        if self.state is CONNECTED and self._transport is not None:
            self._change("close")
            self._transport.close()
        elif (self.state is HOST_LOOKUP or self.state is CONNECTING) and self._dialing().pre_connect:
            self._dialing().close_pending = True  # written while connecting: deliver, then close
        elif self.state is UNCONNECTED and self.finished:
            # what abort() does here, but _close_device()'s about_to_close
            # would reach nobody (most collected sockets end here)
            self._clear_read_buffer()
            self.open_mode = 0
        elif self.state is not CLOSING:
            self.abort()
        self._forget()

    def _close_bound(self) -> None:
        dial = self._dial
        if dial is None:
            return
        sock, dial.bound = dial.bound, None
        if sock is not None:
            if sock is dial.csock:
                dial.csock = None
                self._events.loop.remove_writer(sock.fileno())
            sock.close()

    def __repr__(self) -> str:
        state = SocketState(self.state).name
        if self.state in (CONNECTED, CLOSING):
            (lhost, lport), (rhost, rport) = self._addresses()
            return f"TcpSocket({state}_STATE, {lhost}:{lport} -> {rhost}:{rport})"
        return f"TcpSocket({state}_STATE)"
