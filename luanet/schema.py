"""What scripts see, defined once: classes, their Python-backed properties,
their handler fields and the events behind them, and their constants.

The bridge hands ``lua_schema()`` to the Lua half when a runtime starts;
``lua/objects.lua`` builds the getters, setters and handler fields from it, so
adding a property, handler or constant is a change here and nowhere else.
Properties computed in Lua (the read buffer's ``bytes_available``, ...) are
defined in ``lua/net.lua`` beside the buffer they read. ``tests/test_schema.py``
checks the LuaLS stubs in ``lua/types/`` against the running objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .core.constants import Event, OpenMode, SocketError, SocketState, open_mode_valid

# A deferred call (the callback of an ``*_async`` method) is due. Exists only
# between the bridge and the Lua dispatcher.
CALL_EVENT = 0

# Events Lua needs whether or not a handler is set, because they change the
# object's state there: data for the read buffer, a connection the script
# has seen begin (only such a one reports its end), the end of a socket's
# connection (its server lets go of it), a timer that stopped by firing.
ALWAYS_DELIVERED = frozenset({Event.READY_READ, Event.CONNECTED, Event.DISCONNECTED, Event.TIMEOUT})

Getter = Callable[[Any], Any]
Setter = Callable[[Any, Any], None]


@dataclass(frozen=True)
class Prop:
    """A property read (and maybe written) through Python.

    ``kind`` is what Lua checks a written value against (``count``: a
    non-negative integer; ``seconds``: a non-negative number; ``boolean``),
    and for reads, ``string`` marks values that cross as bytes."""

    name: str
    get: Getter
    set: Optional[Setter] = None
    kind: str = "value"


@dataclass(frozen=True)
class ClassSpec:
    name: str                                   # as scripts see it: net.TcpServer
    var: str                                    # how the docs name an instance: server
    props: Tuple[Prop, ...]
    handlers: Mapping[str, Tuple[Event, int]]   # field -> (event, arguments it takes)
    constants: Mapping[str, int] = field(default_factory=dict)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _code(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def _set_max_pending(server: Any, value: Any) -> None:
    server.max_pending_connections = int(value)


def _set_read_buffer_size(sock: Any, value: Any) -> None:
    sock.read_buffer_size = int(value)


def _set_interval(timer: Any, value: Any) -> None:
    timer.interval = float(value)


def _set_single_shot(timer: Any, value: Any) -> None:
    timer.single_shot = bool(value)


def _socket_constants() -> Dict[str, int]:
    consts: Dict[str, int] = {}
    consts.update({f"{s.name}_STATE": int(s) for s in SocketState})
    consts.update({f"{e.name}_ERROR": int(e) for e in SocketError})
    consts.update({f"{m.name}_MODE": int(m) for m in OpenMode})
    return consts


TCP_SERVER = ClassSpec(
    name="TcpServer", var="server",
    props=(
        Prop("listening", lambda s: s.listening),
        Prop("port", lambda s: s.port),
        Prop("max_pending_connections", lambda s: s.max_pending_connections,
             _set_max_pending, "count"),
        Prop("has_pending_connections", lambda s: s.has_pending_connections),
        Prop("error_string", lambda s: _text(s.error_string), kind="string"),
        Prop("error", lambda s: _code(s.error)),
    ),
    handlers={
        "new_connection_handler": (Event.NEW_CONNECTION, 1),
        "accept_error_handler": (Event.ACCEPT_ERROR, 2),
    },
)

TCP_SOCKET = ClassSpec(
    name="TcpSocket", var="socket",
    props=(
        Prop("state", lambda s: int(s.state)),
        Prop("error", lambda s: _code(s.error)),
        Prop("error_string", lambda s: _text(s.error_string), kind="string"),
        Prop("valid", lambda s: s.valid),
        Prop("local_address", lambda s: _text(s.local_address), kind="string"),
        Prop("local_port", lambda s: s.local_port),
        Prop("remote_address", lambda s: _text(s.remote_address), kind="string"),
        Prop("remote_port", lambda s: s.remote_port),
        Prop("is_open", lambda s: s.is_open),
        Prop("open_mode", lambda s: int(s.open_mode)),
        Prop("bytes_to_write", lambda s: s.bytes_to_write),
        Prop("readable", lambda s: s.readable),
        Prop("writeable", lambda s: s.writeable),
        Prop("read_buffer_size", lambda s: s.read_buffer_size, _set_read_buffer_size, "count"),
    ),
    handlers={
        "ready_read_handler": (Event.READY_READ, 1),
        "bytes_written_handler": (Event.BYTES_WRITTEN, 2),
        "about_to_close_handler": (Event.ABOUT_TO_CLOSE, 1),
        "connected_handler": (Event.CONNECTED, 1),
        "disconnected_handler": (Event.DISCONNECTED, 1),
        "error_handler": (Event.ERROR, 2),
        "state_changed_handler": (Event.STATE_CHANGED, 2),
        "host_found_handler": (Event.HOST_FOUND, 1),
    },
    constants=_socket_constants(),
)

TIMER = ClassSpec(
    name="Timer", var="timer",
    props=(
        Prop("interval", lambda t: t.interval, _set_interval, "seconds"),
        Prop("single_shot", lambda t: t.single_shot, _set_single_shot, "boolean"),
        Prop("active", lambda t: t.active),
        Prop("remaining", lambda t: t.remaining),
    ),
    handlers={"timeout_handler": (Event.TIMEOUT, 1)},
)

CLASSES: Tuple[ClassSpec, ...] = (TCP_SERVER, TCP_SOCKET, TIMER)


def valid_open_modes() -> List[int]:
    """Every open mode a script may pass (Qt's flags: any sum that reads or writes)."""
    return [mode for mode in range(16) if open_mode_valid(mode)]


def lua_schema() -> Dict[bytes, Any]:
    """The schema as plain data for ``LuaRuntime.table_from`` (names as bytes)."""
    classes: Dict[bytes, Any] = {}
    for spec in CLASSES:
        classes[spec.name.encode()] = {
            b"name": spec.name.encode(),
            b"var": spec.var.encode(),
            b"props": {p.name.encode(): {b"kind": p.kind.encode(), b"writable": p.set is not None}
                       for p in spec.props},
            b"handlers": {h.encode(): {b"event": int(ev), b"arity": arity}
                          for h, (ev, arity) in spec.handlers.items()},
            b"constants": {k.encode(): v for k, v in spec.constants.items()},
        }
    return {
        b"classes": classes,
        b"events": {e.name.encode(): int(e) for e in Event} | {b"CALL": CALL_EVENT},
        b"always_delivered": {int(e): True for e in ALWAYS_DELIVERED},
        b"open_modes": {m: True for m in valid_open_modes()},
    }
