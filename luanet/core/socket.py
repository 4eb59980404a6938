"""TcpSocket: a QTcpSocket-like stream on an asyncio transport.

State lives here and changes synchronously (a script that reads ``state`` right
after ``disconnect()`` sees CLOSING); events go through the EventQueue, so
handlers run later, from the loop, in order.

Remote close is a three-step sequence across batches (see events.py):
  1. every byte received so far is announced (READY_READ);
  2. ERROR(REMOTE_HOST_CLOSED) while the state is still CONNECTED;
  3. only in a later batch, after handlers of 2 had their chance to write, the
     transport is closed gracefully (what they wrote is sent) and the state
     goes CLOSING -> UNCONNECTED with DISCONNECTED.
"""

from __future__ import annotations

import asyncio
import socket as _socket
from typing import Callable, List, Optional

from .constants import Event, OpenMode, SocketError, SocketState
from .errors import classify
from .events import EventQueue

Listener = Callable[[object, int, object, object], None]

# Received bytes the listener has not taken yet, beyond which reading pauses
# until the next batch hands them over. Keeps what one READY_READ carries (and
# what a connection queued in its server holds) bounded, without ever making
# the peer wait on the script: the next batch always comes.
READ_AHEAD_LIMIT = 1 << 18

_CONNECTED = SocketState.CONNECTED
_NO_ADDRESS = ("", 0)
_READY_READ = Event.READY_READ
_READABLE = (OpenMode.READ_ONLY, OpenMode.READ_WRITE)
_WRITABLE = (OpenMode.WRITE_ONLY, OpenMode.READ_WRITE)


def plain_address(host: str) -> str:
    """IPv4 peers of a dual-stack socket in dotted form, never ::ffff:a.b.c.d."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def dual_stack_socket(bind_address: Optional[str], port: int) -> _socket.socket:
    """A bound, non-blocking TCP socket: all interfaces (IPv6 and IPv4) unless
    bind_address confines it."""
    if bind_address is None:
        try:
            sock = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            address = ("0.0.0.0", port)
        else:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
            address = ("::", port)
    else:
        info = _socket.getaddrinfo(bind_address, port, type=_socket.SOCK_STREAM,
                                   flags=_socket.AI_NUMERICHOST | _socket.AI_PASSIVE)
        family, _, _, _, address = info[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class TcpSocket(asyncio.Protocol):
    """One TCP connection, client or accepted, with a read buffer.

    ``listener(sock, event, a, b)`` receives the events; ``tag`` is free for
    the owner (the bridge stores its handle id there).
    """

    __slots__ = (
        "tag", "listener", "_events", "_loop", "_bind_address", "state", "open_mode",
        "error", "error_string", "_transport", "_rchunks", "_rlen", "_read_posted", "_read_paused",
        "_attached", "_early_end", "_closing_remote", "_written_total",
        "_written_reported", "_written_posted", "notify_bytes_written",
        "_connect_task", "_bound", "_pre_connect", "_connecting", "_local",
        "_remote", "server",
    )

    def __init__(self, events: EventQueue, listener: Optional[Listener] = None,
                 bind_address: Optional[str] = None):
        self.tag = None
        self.listener = listener
        self._events = events
        self._loop = events.loop
        self._bind_address = bind_address
        self.state = SocketState.UNCONNECTED
        self.open_mode = OpenMode.NOT_OPEN
        self.error: Optional[SocketError] = None
        self.error_string = ""
        self._transport: Optional[asyncio.Transport] = None
        self._rchunks: List[bytes] = []  # the read buffer, as received
        self._rlen = 0
        self._read_posted = False
        self._read_paused = False
        # Accepted sockets wait in the server's queue "detached": events about
        # them are held back until the script takes them (see attach()).
        self._attached = True
        self._early_end: Optional[BaseException | bool] = None
        self._closing_remote = False
        self._written_total = 0
        self._written_reported = 0
        self._written_posted = False
        self.notify_bytes_written = False
        self._connect_task: Optional[asyncio.Task] = None
        self._bound: Optional[_socket.socket] = None
        self._pre_connect: Optional[List[bytes]] = None  # writes made while connecting
        self._connecting = False
        # Socket names as the OS gives them (converted when a script asks);
        # for a connection, read from the transport only when first needed:
        # most connections never are asked, and each saves the memory.
        self._local: Optional[tuple] = None
        self._remote: Optional[tuple] = None
        self.server = None  # the TcpServer that handed this socket out, if any

    # ------------------------------------------------------------------ events
    def _emit(self, event: int, a: object = None, b: object = None) -> None:
        listener = self.listener
        if listener is not None:
            listener(self, event, a, b)

    def _post(self, event: int, a: object = None, b: object = None) -> None:
        self._events.post(self._emit, event, a, b)

    def _set_state(self, state: SocketState) -> None:
        if state != self.state:
            self.state = state
            self._post(Event.STATE_CHANGED, int(state))

    def _set_error(self, code: SocketError, text: str) -> None:
        self.error = code
        self.error_string = text

    def _fail(self, code: SocketError, text: str, post: bool = True) -> None:
        self._set_error(code, text)
        if post:
            self._post(Event.ERROR, int(code))

    # -------------------------------------------------------------- properties
    @property
    def is_open(self) -> bool:
        return self.open_mode != OpenMode.NOT_OPEN

    @property
    def valid(self) -> bool:
        return self.state == SocketState.CONNECTED and self._transport is not None

    @property
    def readable(self) -> bool:
        return self.open_mode in _READABLE

    @property
    def writeable(self) -> bool:
        return self.open_mode in _WRITABLE

    @property
    def local_address(self) -> str:
        return self._addresses()[0][0] if self.state != SocketState.UNCONNECTED else ""

    @property
    def local_port(self) -> int:
        return self._addresses()[0][1] if self.state != SocketState.UNCONNECTED else 0

    @property
    def remote_address(self) -> str:
        return self._addresses()[1][0] if self.state in (SocketState.CONNECTED, SocketState.CLOSING) else ""

    @property
    def remote_port(self) -> int:
        return self._addresses()[1][1] if self.state in (SocketState.CONNECTED, SocketState.CLOSING) else 0

    @property
    def finished(self) -> bool:
        """No descriptor left: transport gone, no connect under way, nothing bound."""
        return self._transport is None and self._connect_task is None and self._bound is None

    @property
    def bytes_to_write(self) -> int:
        pending = sum(map(len, self._pre_connect)) if self._pre_connect else 0
        if self._transport is not None:
            pending += self._transport.get_write_buffer_size()
        return pending

    # ------------------------------------------------------------ read buffer
    @property
    def bytes_available(self) -> int:
        return self._rlen

    @property
    def can_read_line(self) -> bool:
        return any(b"\n" in chunk for chunk in self._rchunks)

    def _flat(self) -> bytes:
        """The whole read buffer as one chunk (joined only when it is several)."""
        chunks = self._rchunks
        if len(chunks) > 1:
            chunks[:] = [b"".join(chunks)]
        return chunks[0] if chunks else b""

    def read(self, max_size: Optional[int] = None) -> bytes:
        chunks = self._rchunks
        if max_size is None and len(chunks) == 1:  # the usual case: one chunk, all of it
            data = chunks.pop()
            self._rlen = 0
            return data
        if max_size is None or max_size >= self._rlen:
            data = self._flat()
            self._rchunks.clear()
            self._rlen = 0
            return data
        flat = self._flat()
        data, self._rchunks[0] = flat[:max_size], flat[max_size:]
        self._rlen -= len(data)
        return data

    def read_line(self, max_size: Optional[int] = None) -> bytes:
        flat = self._flat()
        end = flat.find(b"\n")
        end = len(flat) if end < 0 else end + 1
        if max_size is not None:
            end = min(end, max_size)
        return self.read(end)

    def peek(self, max_size: int) -> bytes:
        return self._flat()[:max_size]

    def _clear_read_buffer(self) -> None:
        self._rchunks.clear()
        self._rlen = 0

    def _pause_reading(self) -> None:
        transport = self._transport
        if not self._read_paused and transport is not None and not transport.is_closing():
            self._read_paused = True
            transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    # ----------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        # high=0: pause/resume_writing then tell exactly when the buffer drains,
        # which is when BYTES_WRITTEN can be reported.
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]
        self._local = self._remote = None  # the transport knows them now
        if self.open_mode == OpenMode.NOT_OPEN:
            self.open_mode = OpenMode.READ_WRITE
        if self._connecting:
            self._connecting = False
            self._set_state(SocketState.CONNECTED)
            self._post(Event.CONNECTED)
            pending, self._pre_connect = self._pre_connect or (), None
            for chunk in pending:
                self._send(chunk)
        else:
            self.state = SocketState.CONNECTED

    def _addresses(self) -> tuple:
        """(local, remote) (host, port) pairs; ("", 0) for an end not known."""
        if self._remote is None:
            transport = self._transport
            if transport is None:
                return self._address(self._local), _NO_ADDRESS
            self._keep_addresses(transport)
        return self._address(self._local), self._address(self._remote)

    def _keep_addresses(self, transport) -> None:
        # as the transport gives them; converted only when a script asks
        self._local = transport.get_extra_info("sockname")
        self._remote = transport.get_extra_info("peername")

    @staticmethod
    def _address(name) -> tuple:
        if isinstance(name, tuple) and len(name) >= 2:
            return plain_address(str(name[0])), int(name[1])
        return "", 0

    def data_received(self, data: bytes) -> None:
        self._rchunks.append(data)
        self._rlen += len(data)
        if self._attached and not self._read_posted:
            self._read_posted = True
            self._events.post(self._announce_read)
        if self._rlen >= READ_AHEAD_LIMIT:
            self._pause_reading()  # until _announce_read (or attach) runs

    def _announce_read(self) -> None:
        self._read_posted = False
        listener = self.listener
        if self._rlen and listener is not None:
            listener(self, _READY_READ, None, None)
        if self._read_paused:
            self._resume_reading()

    def eof_received(self) -> bool:
        if self._attached:
            self._events.post(self._remote_closed, None)
        else:
            self._early_end = True
        return True  # keep our half open: the script may still answer

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._transport is not None and self._remote is None:
            self._keep_addresses(self._transport)  # handlers may ask until UNCONNECTED
        transport, self._transport = self._transport, None
        if transport is None and self.state == SocketState.UNCONNECTED:
            return  # aborted by us: already reported
        if self.state == SocketState.CLOSING or self._closing_remote:
            self._events.post(self._finish_close)
        elif not self._attached:
            self._early_end = exc or True
        else:
            self._events.post(self._remote_closed, exc)

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        self._report_written()

    # ------------------------------------------------------ close sequences
    def _remote_closed(self, exc: Optional[BaseException]) -> None:
        if self._closing_remote or self.state != SocketState.CONNECTED:
            return  # the script closed first: its own close sequence is running
        self._closing_remote = True
        if exc is None:
            self._fail(SocketError.REMOTE_HOST_CLOSED, "The remote host closed the connection", post=False)
        else:
            self._fail(*classify(exc), post=False)
        # Inline, not posted: this step already runs in a batch, right after
        # the READY_READ for the last bytes.
        self._emit(Event.ERROR, int(self.error))
        self._events.post(self._close_after_remote)

    def _close_after_remote(self) -> None:
        if self.state != SocketState.CONNECTED:
            return
        self._set_state(SocketState.CLOSING)
        if self._transport is not None:
            self._transport.close()  # sends what handlers wrote, then connection_lost
        else:
            self._events.post(self._finish_close)

    def _finish_close(self) -> None:
        if self.state == SocketState.UNCONNECTED:
            return
        self._report_written()
        self._set_state(SocketState.UNCONNECTED)
        self._post(Event.DISCONNECTED)
        self._forget()

    def _forget(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.forget(self)

    # ------------------------------------------------ queue hand-over (server)
    def detach(self) -> None:
        self._attached = False

    def attach(self, listener: Optional[Listener]) -> None:
        """Handed to the script: announce what happened while it was queued."""
        self.listener = listener
        self._attached = True
        if self._rlen and not self._read_posted:
            self._read_posted = True
            self._events.post(self._announce_read)
        early, self._early_end = self._early_end, None
        if early is not None:
            self._events.post(self._remote_closed, None if early is True else early)

    # ------------------------------------------------------------ operations
    def connect(self, host: str, port: int, mode: int = OpenMode.READ_WRITE) -> bool:
        if self.state not in (SocketState.UNCONNECTED, SocketState.BOUND):
            self._fail(SocketError.OPERATION,
                       "The socket is already connecting or connected", post=False)
            return False
        if not 0 <= port <= 65535:
            self._fail(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE,
                       f"Port {port} is out of range (0..65535)")
            return False
        self.error, self.error_string = None, ""
        self.open_mode = OpenMode(mode)
        self._clear_read_buffer()
        self._closing_remote = False
        self._remote = None  # forget a previous connection's ends; bind()'s local one stays
        if self._bound is None:
            self._local = None
        self._written_total = self._written_reported = 0
        self._connecting = True
        self._set_state(SocketState.HOST_LOOKUP)
        self._connect_task = self._loop.create_task(self._connect(host, port))
        return True

    async def _connect(self, host: str, port: int) -> None:
        loop = self._loop
        family = self._bound.family if self._bound is not None else 0
        try:
            infos = await loop.getaddrinfo(host, port, type=_socket.SOCK_STREAM,
                                           family=_socket.AF_INET if family == _socket.AF_INET else 0)
        except (OSError, UnicodeError):
            infos = []
        if not infos:
            self._connect_failed(SocketError.HOST_NOT_FOUND, "Host not found")
            return
        self._post(Event.HOST_FOUND)
        self._set_state(SocketState.CONNECTING)
        last_exc: Optional[BaseException] = None
        for fam, _, _, _, address in infos:
            sock = self._bound
            if sock is not None:
                if fam == _socket.AF_INET and sock.family == _socket.AF_INET6:
                    address = ("::ffff:" + address[0], address[1], 0, 0)
                elif fam != sock.family:
                    continue
            else:
                sock = _socket.socket(fam, _socket.SOCK_STREAM)
                sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                last_exc = exc
                if sock is not self._bound:
                    sock.close()
                continue
            except BaseException:
                if sock is not self._bound:
                    sock.close()
                raise
            self._bound = None
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                await loop.create_connection(lambda: self, sock=sock)
            except OSError as exc:
                sock.close()
                last_exc = exc
                break
            except BaseException:
                sock.close()
                raise
            self._connect_task = None
            return
        code, text = classify(last_exc) if last_exc else (SocketError.CONNECTION_REFUSED, "Connection refused")
        self._connect_failed(code, text)

    def _connect_failed(self, code: SocketError, text: str) -> None:
        self._connecting = False
        self._connect_task = None
        self._pre_connect = None
        self._close_bound()
        self._fail(code, text)
        self.open_mode = OpenMode.NOT_OPEN
        self._set_state(SocketState.UNCONNECTED)

    def bind(self, port: int) -> bool:
        if self.state != SocketState.UNCONNECTED:
            self._fail(SocketError.OPERATION, "The socket is already bound or connected", post=False)
            return False
        if not 0 <= port <= 65535:
            self._fail(SocketError.SOCKET_ADDRESS_NOT_AVAILABLE, f"Port {port} is out of range (0..65535)")
            return False
        try:
            self._bound = dual_stack_socket(self._bind_address, port)
        except OSError as exc:
            self._fail(*classify(exc))
            return False
        self._local, self._remote = self._bound.getsockname(), None
        self._set_state(SocketState.BOUND)
        return True

    def write(self, data: bytes) -> int:
        if self._transport is not None and self.state == _CONNECTED and self.open_mode in _WRITABLE:
            if data:
                self._send(data)
            return len(data)
        return self._write_unless_connected(data)

    def _write_unless_connected(self, data: bytes) -> int:
        """write() for a socket that is not connected and writable: queued
        while connecting (as Qt does), else -1 with the error set."""
        state = self.state
        connected = state == SocketState.CONNECTED and self._transport is not None
        if not connected and state not in (SocketState.HOST_LOOKUP, SocketState.CONNECTING):
            self._fail(SocketError.OPERATION, "The socket is not connected", post=False)
            return -1
        if self.open_mode not in _WRITABLE:
            self._fail(SocketError.OPERATION, "The socket is not open for writing", post=False)
            return -1
        if data:
            if self._pre_connect is None:
                self._pre_connect = []
            self._pre_connect.append(bytes(data))  # Qt buffers writes made while connecting
        return len(data)

    def _send(self, data: bytes) -> None:
        self._transport.write(data)  # type: ignore[union-attr]
        self._written_total += len(data)
        if self.notify_bytes_written and not self._written_posted:
            self._written_posted = True
            self._events.post(self._report_written)

    def _report_written(self) -> None:
        self._written_posted = False
        if not self.notify_bytes_written:
            self._written_reported = self._written_total
            return
        unsent = self._transport.get_write_buffer_size() if self._transport is not None else 0
        sent = self._written_total - unsent
        if sent > self._written_reported:
            count, self._written_reported = sent - self._written_reported, sent
            self._events.post(self._emit, Event.BYTES_WRITTEN, count, None)

    def disconnect(self) -> None:
        state = self.state
        if state == SocketState.CONNECTED:
            self._set_state(SocketState.CLOSING)
            if self._transport is not None:
                self._transport.close()  # flushes first; connection_lost follows
            else:
                self._events.post(self._finish_close)
        elif state in (SocketState.HOST_LOOKUP, SocketState.CONNECTING):
            self._cancel_connect()
            self._set_state(SocketState.UNCONNECTED)
            self._post(Event.DISCONNECTED)
        elif state == SocketState.BOUND:
            self._close_bound()
            self._set_state(SocketState.UNCONNECTED)

    def close(self) -> None:
        """about_to_close, then a graceful disconnect; buffered input is dropped."""
        if self.open_mode != OpenMode.NOT_OPEN or self.state != SocketState.UNCONNECTED:
            self._post(Event.ABOUT_TO_CLOSE)
        self.open_mode = OpenMode.NOT_OPEN
        self._clear_read_buffer()
        self.disconnect()

    def abort(self) -> None:
        """Close now; unsent data is discarded."""
        was = self.state
        transport, self._transport = self._transport, None
        self._cancel_connect()
        self._close_bound()
        self._pre_connect = None
        self.open_mode = OpenMode.NOT_OPEN
        if transport is not None:
            transport.abort()
        if was != SocketState.UNCONNECTED:
            self._set_state(SocketState.UNCONNECTED)
            if was in (SocketState.CONNECTED, SocketState.CLOSING, SocketState.HOST_LOOKUP,
                       SocketState.CONNECTING):
                self._post(Event.DISCONNECTED)
        self._forget()

    def release(self) -> None:
        """The owner is gone: no more events; close gracefully (written data is sent)."""
        self.listener = None
        if self.state in (SocketState.CONNECTED,) and self._transport is not None:
            self.state = SocketState.CLOSING
            self._transport.close()
        elif self.state != SocketState.CLOSING:
            self.abort()
        self._forget()

    def _cancel_connect(self) -> None:
        task, self._connect_task = self._connect_task, None
        self._connecting = False
        if task is not None and not task.done():
            task.cancel()

    def _close_bound(self) -> None:
        sock, self._bound = self._bound, None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        state = SocketState(self.state).name
        if self.state in (SocketState.CONNECTED, SocketState.CLOSING):
            (lhost, lport), (rhost, rport) = self._addresses()
            return f"TcpSocket({state}_STATE, {lhost}:{lport} -> {rhost}:{rport})"
        return f"TcpSocket({state}_STATE)"
