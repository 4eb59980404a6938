"""Socket states, error codes and open modes, with the values the docs (and Qt) use."""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing.TypeGuard is 3.10+; annotations here are never evaluated
    from typing import TypeGuard


class SocketState(IntEnum):
    """A TcpSocket's state (``state`` / ``state_changed``), Qt's values."""

    UNCONNECTED = 0
    HOST_LOOKUP = 1
    CONNECTING = 2
    CONNECTED = 3
    BOUND = 4
    CLOSING = 5  # the docs' value; Qt's ListeningState (5) has no place here


class SocketError(IntEnum):
    """What went wrong (``error``), Qt's QAbstractSocket::SocketError values."""

    CONNECTION_REFUSED = 0
    REMOTE_HOST_CLOSED = 1
    HOST_NOT_FOUND = 2
    SOCKET_ACCESS = 3
    SOCKET_RESOURCE = 4
    SOCKET_TIMEOUT = 5
    DATAGRAM_TOO_LARGE = 6
    NETWORK = 7
    ADDRESS_IN_USE = 8
    SOCKET_ADDRESS_NOT_AVAILABLE = 9
    UNSUPPORTED_SOCKET_OPERATION = 10
    UNFINISHED_SOCKET_OPERATION = 11
    OPERATION = 19
    TEMPORARY = 22
    UNKNOWN = -1


class OpenMode(IntEnum):
    """Flags of ``connect``'s open mode (QIODevice::OpenMode), to be summed."""

    NOT_OPEN = 0
    READ_ONLY = 1
    WRITE_ONLY = 2
    READ_WRITE = 3
    APPEND = 4
    TRUNCATE = 8


class Event(IntEnum):
    """What core objects report to their listener (see EventQueue)."""

    # TcpServer
    NEW_CONNECTION = 1      # () a connection joined the pending queue
    ACCEPT_ERROR = 2        # (error code)
    # TcpSocket
    READY_READ = 10         # () new bytes in the read buffer
    BYTES_WRITTEN = 11      # (count)
    ABOUT_TO_CLOSE = 12     # ()
    CONNECTED = 13          # ()
    DISCONNECTED = 14       # ()
    ERROR = 15              # (error code)
    STATE_CHANGED = 16      # (new state)
    HOST_FOUND = 17         # ()
    # Timer
    TIMEOUT = 20            # () the timer fired


# Open modes are flags, as Qt's OpenMode: any sum of the members above is a
# mode, provided it reads or writes (APPEND_MODE implies writing).
MODE_READ = 1        # OpenMode.READ_ONLY
MODE_WRITE = 2 | 4   # OpenMode.WRITE_ONLY or OpenMode.APPEND
_ALL_MODE_FLAGS = 1 | 2 | 4 | 8


def open_mode_valid(mode: object) -> TypeGuard[int]:
    """True for a usable open mode: an int made only of OpenMode flags that
    reads (1) and/or writes (2 or 4). TRUNCATE_MODE alone, NOT_OPEN_MODE and
    unknown bits are not. The one rule for core and for Lua's argument check."""
    return (isinstance(mode, int) and not isinstance(mode, bool)
            and mode & ~_ALL_MODE_FLAGS == 0 and mode & (MODE_READ | MODE_WRITE) != 0)
