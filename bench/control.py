"""What every benchmark server shares: loop choice, fd limit, and the control channel.

A server prints its port as the first line of stdout, then answers each
"stats" line on stdin with one JSON line of its own resource use. "quit" or
EOF on stdin stops it. The server measures itself (getrusage of its own
process), so the load generator's speed does not enter the CPU figures.
"""

import asyncio
import json
import os
import resource
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def new_loop(name):
    """A fresh event loop of the named implementation ("asyncio" or "uvloop")."""
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "asyncio":
        return asyncio.new_event_loop()
    raise SystemExit(f"unknown loop {name!r}")


def loop_name(loop):
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def stats(loop, **extra):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "utime": ru.ru_utime,
        "stime": ru.ru_stime,
        "rss": rss_pages * PAGE,
        "maxrss": ru.ru_maxrss * 1024,
        "loop": loop_name(loop),
        "pid": os.getpid(),
        **extra,
    }


def serve_control(loop, on_stop, extra=lambda: {}):
    """Answers "stats" lines on stdin from inside the loop; calls on_stop() at "quit"/EOF."""
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable():
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(fd)
            on_stop()
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            cmd = line.strip().decode()
            if cmd == "stats":
                sys.stdout.write(json.dumps(stats(loop, **extra())) + "\n")
                sys.stdout.flush()
            elif cmd == "quit":
                loop.remove_reader(fd)
                on_stop()
                return

    loop.add_reader(fd, readable)


def announce_port(port):
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


def serve(loop, protocol_factory):
    """A plain loop server on 127.0.0.1 (port printed), controlled by stdin,
    until "quit". The backlog is as large as the kernel allows (somaxconn
    caps it): the idle scenario opens thousands of connections in a burst."""
    server = loop.run_until_complete(
        loop.create_server(protocol_factory, "127.0.0.1", 0, backlog=4096))
    announce_port(server.sockets[0].getsockname()[1])
    serve_control(loop, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()
