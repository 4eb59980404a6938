"""A socket's states and the one table of their transitions (h11-style).

Every state change of a TcpSocket goes through ``TRANSITIONS``: what happened
(an operation, the network) -> the new state and the events that report it,
in Qt's order. Reading this table is reading when each handler runs.
"""

from __future__ import annotations

from typing import Dict, Final, Tuple

from .constants import Event, SocketState

UNCONNECTED: Final = SocketState.UNCONNECTED
HOST_LOOKUP: Final = SocketState.HOST_LOOKUP
CONNECTING: Final = SocketState.CONNECTING
CONNECTED: Final = SocketState.CONNECTED
BOUND: Final = SocketState.BOUND
CLOSING: Final = SocketState.CLOSING

_SC: Final = Event.STATE_CHANGED

# state -> {what happened: (new state, events reported, in this order)}.
# STATE_CHANGED carries the new state; ERROR the code given to _change().
# Qt's order: the state change first, then what it means.
TRANSITIONS: Final[Dict[SocketState, Dict[str, Tuple[SocketState, Tuple[Event, ...]]]]] = {
    UNCONNECTED: {"connect": (HOST_LOOKUP, (_SC,)),
                  "bind": (BOUND, (_SC,)),
                  "accept": (CONNECTED, ())},  # handed out connected: nothing to report
    BOUND: {"connect": (HOST_LOOKUP, (_SC,)),
            "unbind": (UNCONNECTED, (_SC,)),
            "abort": (UNCONNECTED, (_SC,))},
    HOST_LOOKUP: {"found": (CONNECTING, (_SC, Event.HOST_FOUND)),
                  "fail": (UNCONNECTED, (_SC, Event.ERROR)),
                  "abort": (UNCONNECTED, (_SC,))},  # never connected: no DISCONNECTED
    CONNECTING: {"connected": (CONNECTED, (_SC, Event.CONNECTED)),
                 "fail": (UNCONNECTED, (_SC, Event.ERROR)),
                 "abort": (UNCONNECTED, (_SC,))},
    # abort() of a connection the owner saw connect reports its end as Qt
    # does (about_to_close, state 0, disconnected); nothing of it comes after.
    # "cancel": abort() before CONNECTED reached the owner (it was still
    # posted): for the owner the socket never connected.
    CONNECTED: {"close": (CLOSING, (_SC,)),
                "abort": (UNCONNECTED, (_SC, Event.DISCONNECTED)),
                "cancel": (UNCONNECTED, (_SC,))},
    CLOSING: {"closed": (UNCONNECTED, (_SC, Event.DISCONNECTED)),
              "abort": (UNCONNECTED, (_SC, Event.DISCONNECTED)),
              "cancel": (UNCONNECTED, (_SC,))},
}

# The table as TcpSocket._change() reads it, with numbers: state -> {what
# happened: (new state, its number, the events' numbers)}. Compiled, an enum
# member compared with == or converted with int() is a call into Python; a
# plain int is a machine word (three changes a connection).
CHANGES: Final[Dict[SocketState, Dict[str, Tuple[SocketState, int, Tuple[int, ...]]]]] = {
    state: {what: (new, int(new), tuple(int(event) for event in events))
            for what, (new, events) in moves.items()}
    for state, moves in TRANSITIONS.items()}
STATE_CHANGED: Final = int(Event.STATE_CHANGED)
CONNECTED_EVENT: Final = int(Event.CONNECTED)
