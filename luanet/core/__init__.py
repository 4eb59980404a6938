"""The semantics of net.TcpServer / net.TcpSocket on asyncio. Knows nothing of Lua."""

from .constants import Event, OpenMode, SocketError, SocketState
from .events import EventQueue
from .server import DEFAULT_MAX_PENDING, TcpServer
from .socket import TcpSocket

__all__ = ["Event", "EventQueue", "OpenMode", "SocketError", "SocketState",
           "TcpServer", "TcpSocket", "DEFAULT_MAX_PENDING"]
