"""Addresses: the dual-stack listening/bound sockets and how peers are shown."""

from __future__ import annotations

import socket as _socket
from typing import Any, Optional, Tuple


def plain_address(host: str) -> str:
    """IPv4 peers of a dual-stack socket in dotted form, never ::ffff:a.b.c.d."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def dual_stack_socket(bind_address: Optional[str], port: int,
                      reuse_port: bool = False) -> _socket.socket:
    """A bound, non-blocking TCP socket: all interfaces (IPv6 and IPv4) unless
    bind_address (an address or a host name such as "localhost") confines it.
    reuse_port: SO_REUSEPORT, so that several processes share a listening
    port and the kernel spreads connections over them (luanet run --workers)."""
    if bind_address is None:
        try:
            sock = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            address: Tuple[Any, ...] = ("0.0.0.0", port)
        else:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)
            address = ("::", port)
    else:
        info = _socket.getaddrinfo(bind_address, port, type=_socket.SOCK_STREAM,
                                   flags=_socket.AI_PASSIVE)
        family, _, _, _, address = info[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
