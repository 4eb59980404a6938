"""OS errors to the API's error codes, with Qt's wording where Qt has one."""

from __future__ import annotations

import errno
import os
from typing import Tuple

from .constants import SocketError

# accept() failures that mean "no descriptors or memory left": the server
# reports them and pauses, as Qt does.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# accept() failures that concern one half-made connection only: skip it.
TRANSIENT_ACCEPT_ERRNOS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
     errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
     errno.EINTR, errno.EAGAIN}
)

_BY_ERRNO = {
    errno.EADDRINUSE: (SocketError.ADDRESS_IN_USE, "The bound address is already in use"),
    errno.EACCES: (SocketError.SOCKET_ACCESS, "The address is protected"),
    errno.EPERM: (SocketError.SOCKET_ACCESS, "The address is protected"),
    errno.EADDRNOTAVAIL: (SocketError.SOCKET_ADDRESS_NOT_AVAILABLE, "The address is not available"),
    errno.ECONNREFUSED: (SocketError.CONNECTION_REFUSED, "Connection refused"),
    errno.ECONNRESET: (SocketError.REMOTE_HOST_CLOSED, "The remote host closed the connection"),
    errno.EPIPE: (SocketError.REMOTE_HOST_CLOSED, "The remote host closed the connection"),
    errno.ETIMEDOUT: (SocketError.SOCKET_TIMEOUT, "Connection timed out"),
    errno.ENETUNREACH: (SocketError.NETWORK, "Network unreachable"),
    errno.EHOSTUNREACH: (SocketError.NETWORK, "Host unreachable"),
    errno.ENETDOWN: (SocketError.NETWORK, "Network is down"),
}
for _e in RESOURCE_ERRNOS:
    _BY_ERRNO[_e] = (SocketError.SOCKET_RESOURCE, "Out of resources")


def classify(exc: BaseException) -> Tuple[SocketError, str]:
    """The API error code and a human-readable string for an exception."""
    err = getattr(exc, "errno", None)
    if err in _BY_ERRNO:
        code, text = _BY_ERRNO[err]
        return code, f"{text} ({os.strerror(err)})" if text.lower() != os.strerror(err).lower() else text
    if isinstance(exc, OSError) and exc.strerror:
        return SocketError.UNKNOWN, exc.strerror
    return SocketError.UNKNOWN, str(exc) or type(exc).__name__
