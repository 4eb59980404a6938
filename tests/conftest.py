"""Shared helpers for the luanet test suite.

Every test drives a real ``LuaHost`` (real Lua through lupa) against real
sockets on 127.0.0.1. Python clients are plain ``socket`` objects; a client
that blocks runs in a thread (``in_thread``) while the main thread drives the
host's loop with ``host.run_until`` (``wait_for``).

Timeouts here are safety nets only (``SAFETY`` seconds): no test passes or
fails because something was fast or slow.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

import pytest

from luanet import LuaHost, _compiled

SAFETY = 10.0
ALL_LUAS = ["5.1", "5.2", "5.3", "5.4", "5.5", "luajit"]
GC_LUAS = ["5.4", "5.1", "luajit"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``source`` read luanet's source (its text, docstrings),
    which the compiled modules do not carry: they run on the source version
    (`make test` runs them again with LUANET_NO_EXTENSIONS=1)."""
    if not _compiled.ACTIVE:
        return
    skip = pytest.mark.skip(reason="reads the source: runs with LUANET_NO_EXTENSIONS=1 (make test)")
    for item in items:
        if "source" in item.keywords:
            item.add_marker(skip)


# The README scenario, written only from the docs: listen(0), a
# new_connection_handler that takes the connection and echoes in its
# ready_read_handler. The script keeps no reference to the socket.
DOC_ECHO = """
server = net.TcpServer.new()
server.new_connection_handler = function(server)
    local socket = server:next_pending_connection()
    socket.ready_read_handler = function(socket)
        socket:write_string(socket:read_all_string())
    end
end
assert(server:listen(0))
"""


# --------------------------------------------------------------------------
# hosts

class HostFactory:
    """Makes LuaHosts that report handler errors into one list and are
    closed when the test ends."""

    def __init__(self):
        self.errors: list = []
        self.hosts: list = []

    def __call__(self, lua="5.4", sandbox=True, bind_address="127.0.0.1", **kw):
        kw.setdefault("on_error", self.errors.append)
        host = LuaHost(lua=lua, sandbox=sandbox, bind_address=bind_address, **kw)
        self.hosts.append(host)
        return host

    def close_all(self):
        while self.hosts:
            self.hosts.pop().close()


@pytest.fixture
def make_host():
    factory = HostFactory()
    try:
        yield factory
    finally:
        factory.close_all()
    # A handler error nobody expected is a failure; tests that expect errors
    # check them and clear the list.
    assert factory.errors == [], "unexpected Lua handler errors: %r" % factory.errors


@pytest.fixture
def host(make_host):
    return make_host()


@pytest.fixture
def errors(make_host):
    """The list on_error appends to, for every host made by make_host."""
    return make_host.errors


# --------------------------------------------------------------------------
# reading Lua values

def lua_int(host, expr) -> int:
    """A Lua number as a Python int (5.1 and LuaJIT numbers are floats)."""
    value = host.eval(expr)
    assert isinstance(value, (int, float)) and not isinstance(value, bool), (expr, value)
    assert float(value).is_integer(), (expr, value)
    return int(value)


def lua_list(host, table_expr) -> list:
    """A Lua array of strings/numbers as a list of str (joined in Lua, so only
    strings cross the bridge)."""
    n = lua_int(host, "#(%s)" % table_expr)
    if n == 0:
        return []
    joined = host.eval("table.concat(%s, '\\0')" % table_expr)
    assert isinstance(joined, bytes), joined
    return joined.decode("latin-1").split("\0")


def run_until(host, predicate, what="condition", timeout=SAFETY):
    ok = host.run_until(predicate, timeout)
    assert ok is True, "timed out (safety net, %ss) waiting for %s" % (timeout, what)


# --------------------------------------------------------------------------
# threads

def in_thread(fn, *args, **kwargs) -> concurrent.futures.Future:
    """Run a blocking function in a daemon thread; return a Future."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def runner():
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    threading.Thread(target=runner, daemon=True).start()
    return fut


def wait_for(host, fut, timeout=SAFETY):
    """Drive the host's loop until the future is done; return its result."""
    done = host.run_until(fut.done, timeout)
    assert done is True, "client did not finish within the safety net of %ss" % timeout
    return fut.result()


# --------------------------------------------------------------------------
# plain socket clients

def connect(port, address="127.0.0.1", timeout=SAFETY, rcvbuf=None):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((address, int(port)))
    return s


def recv_exact(s, n) -> bytes:
    chunks = []
    got = 0
    while got < n:
        chunk = s.recv(min(1 << 20, n - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_until_eof(s) -> bytes:
    chunks = []
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def echo_once(port, payload: bytes) -> bytes:
    """Connect, send payload, read back len(payload) bytes, close."""
    with connect(port) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


def echo_large(port, payload: bytes) -> bytes:
    """Like echo_once, but sends from a second thread so that a large payload
    cannot deadlock on full buffers."""
    with connect(port) as s:
        sender = in_thread(s.sendall, payload)
        data = recv_exact(s, len(payload))
        sender.result(SAFETY)
        return data


def refused(port, address="127.0.0.1") -> bool:
    """True when a connect to the port is refused."""
    try:
        s = connect(port, address, timeout=2.0)
    except ConnectionRefusedError:
        return True
    s.close()
    return False


def free_port() -> int:
    """A port nothing listens on at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reserved_closed_port():
    """A bound, non-listening socket: its port refuses connections and
    nobody else can take it while the socket lives."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def many_echo_clients(port, n_clients, n_messages, deadline=60.0):
    """Open n_clients connections, each sends n_messages messages one after
    another (the next once the previous came back whole). Non-blocking, one
    thread, one selector. Returns {client: [echoed messages]}."""
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(n_clients):
            s = connect(port)
            s.setblocking(False)
            socks.append(s)
        state = {}
        for i, s in enumerate(socks):
            state[i] = {"sent": 0, "pending": b"", "expect": b"", "got": []}
            sel.register(s, selectors.EVENT_READ, i)

        def message(i, k):
            return b"client %03d message %02d %s\n" % (i, k, bytes([i % 256]) * (k + 1))

        def send_next(i):
            st = state[i]
            msg = message(i, st["sent"])
            st["sent"] += 1
            st["expect"] = msg
            st["pending"] = b""
            socks[i].setblocking(True)
            socks[i].sendall(msg)
            socks[i].setblocking(False)

        for i in range(n_clients):
            send_next(i)
        remaining = n_clients
        end = time.monotonic() + deadline
        while remaining:
            if time.monotonic() > end:
                raise TimeoutError("safety net: %d clients unfinished" % remaining)
            for key, _ in sel.select(timeout=1.0):
                i = key.data
                st = state[i]
                data = socks[i].recv(65536)
                if not data:
                    raise AssertionError("client %d got EOF after %d replies" % (i, len(st["got"])))
                st["pending"] += data
                if len(st["pending"]) >= len(st["expect"]):
                    st["got"].append(st["pending"])
                    if st["sent"] < n_messages:
                        send_next(i)
                    else:
                        sel.unregister(socks[i])
                        remaining -= 1
        return {i: st["got"] for i, st in state.items()}, message
    finally:
        for s in socks:
            s.close()
        sel.close()


# --------------------------------------------------------------------------
# file descriptors and listening sockets

def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def listening_entries(port):
    """(file, local address hex) for every LISTEN socket on port, from
    /proc/net/tcp and /proc/net/tcp6."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, st = fields[1], fields[3]
            addr, port_hex = local.split(":")
            if st == "0A" and int(port_hex, 16) == int(port):
                found.append((name.rsplit("/", 1)[1], addr))
    return found


# --------------------------------------------------------------------------
# child processes that run out of file descriptors

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def run_child_script(tmp_path, source, *args) -> dict:
    """Run a Python script in a child process (its resource limits cannot
    hurt this one) and return the JSON object it prints last. The child
    imports luanet and this module (for exhaust_descriptors)."""
    script = tmp_path / "child.py"
    script.write_text(source)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(TESTS_DIR), TESTS_DIR])
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exhaust_descriptors(room, headroom):
    """In a child process: lower RLIMIT_NOFILE to `headroom` above what is
    open now and fill it with /dev/null, then close `room` of those again,
    so exactly `room` client sockets fit and a server's accept() then fails.
    Returns a function that closes the fillers and restores the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (opened + headroom, hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    for _ in range(room):
        os.close(fillers.pop())

    def release():
        while fillers:
            os.close(fillers.pop())
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return release
