"""Scripts a user would write, run under a real ``luanet run`` (issue 11).

Each script in tests/scripts/ was written only from the user-facing docs
(README.md, docs/cli.md, API.md and the seed page), as a script author would
write it. Every test starts ``luanet run --lua V SCRIPT`` as a child process,
talks to it with plain Python sockets on 127.0.0.1 (or is talked to by it)
and checks the exact bytes exchanged, on Lua 5.4, 5.1 and LuaJIT.

Timeouts are safety nets only (``SAFETY``): no test passes or fails because
something was fast or slow. Every child process is ended in a ``finally``.
Heavier sizes run under ``LUANET_STRESS=1`` (``make stress``).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
LUAS = ["5.4", "5.1", "luajit"]
SAFETY = 15.0
NL = b"\n"
STRESS = os.environ.get("LUANET_STRESS") == "1"


# --------------------------------------------------------------------------
# helpers

class Script:
    """``luanet run --lua LUA SCRIPT ARGS...`` as a child process whose stdout
    lines are collected by a thread (so a chatty script never blocks)."""

    def __init__(self, name: str, *args: str, lua: str, options: tuple = ()):
        self.cmd = [sys.executable, "-m", "luanet", "run", "--lua", lua, *options,
                    str(SCRIPTS / name), *args]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self.lines: list = []
        self.stderr: list = []
        self._new = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=args, daemon=True)
                         for args in ((self.proc.stdout, self.lines), (self.proc.stderr, self.stderr))]
        for t in self._readers:
            t.start()

    def _read(self, stream, into):
        for line in stream:
            with self._new:
                into.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def output(self) -> str:
        with self._new:
            return ("stdout:\n  " + "\n  ".join(self.lines)
                    + "\nstderr:\n  " + "\n  ".join(self.stderr))

    def wait_line(self, pattern: str, start: int = 0, timeout: float = SAFETY):
        """Wait for a stdout line (at index >= start) matching the regex;
        return (index, match)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    break
                self._new.wait(min(left, 0.1))
        raise AssertionError(f"no line matching {pattern!r} (exit {self.proc.poll()})\n{self.output()}")

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._new:
            return sum(1 for line in self.lines if rx.search(line))

    def port(self) -> int:
        return int(self.wait_line(r"^listening on (\d+)$")[1].group(1))

    def stop(self) -> int:
        """SIGTERM (a clean stop), then SIGKILL if it does not end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SAFETY)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._readers:          # the last lines, up to EOF
            t.join(SAFETY)
        return self.proc.returncode

    def check_clean_exit(self):
        rc = self.stop()
        assert rc == 0, f"exit {rc}\n{self.output()}"
        assert not [line for line in self.stderr if "error" in line.lower()], self.output()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def connect(port: int, nodelay: bool = True, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(SAFETY)
    s.connect(("127.0.0.1", port))
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            raise AssertionError(f"timed out after {len(buf)} of {n} bytes: {bytes(buf[-200:])!r}") from None
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes: {bytes(buf[-200:])!r}")
        buf += chunk
    return bytes(buf)


def recv_lines(s: socket.socket, count: int) -> bytes:
    buf = bytearray()
    while buf.count(b"\n") < count:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"EOF after {bytes(buf).count(NL)} of {count} lines: {bytes(buf)!r}")
        buf += chunk
    return bytes(buf)


def recv_to_eof(s: socket.socket) -> bytes:
    """Everything until the peer closes (a reset counts as the end too)."""
    buf = bytearray()
    while True:
        try:
            chunk = s.recv(1 << 20)
        except ConnectionResetError:
            return bytes(buf)
        if not chunk:
            return bytes(buf)
        buf += chunk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listener(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    s.settimeout(SAFETY)
    return s


def run_threads(*fns):
    """Run the functions at once; re-raise the first exception; never hang."""
    errors: list = []
    results: list = [None] * len(fns)

    def wrap(i, fn):
        try:
            results[i] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY * 2)
        assert not t.is_alive(), "a client thread did not finish (safety timeout)"
    if errors:
        raise errors[0]
    return results


# --------------------------------------------------------------------------
# 1. line-based control server

@pytest.mark.parametrize("lua", LUAS)
def test_control_server(lua):
    with Script("control.lua", lua=lua) as script:
        port = script.port()

        # many commands in one packet
        a = connect(port)
        cmds = b"".join(b"SET %d %d\n" % (ch, ch % 256) for ch in range(1, 101))
        cmds += b"".join(b"GET %d\n" % ch for ch in range(1, 101, 9))
        a.sendall(cmds)
        want = b"".join(b"OK %d %d\n" % (ch, ch % 256) for ch in range(1, 101))
        want += b"".join(b"%d %d\n" % (ch, ch % 256) for ch in range(1, 101, 9))
        assert recv_exact(a, len(want)) == want

        # partial lines across packets, \r\n, errors
        b = connect(port)
        for piece in [b"SE", b"T 200 ", b"7", b"\r\nGE", b"T 200\n", b"GET 3", b"00\nFOO bar\n",
                      b"SET 513 1\nSET 1 256\nSET 1\n\n"]:
            b.sendall(piece)
            time.sleep(0.01)  # separate packets (not an assertion)
        want_b = (b"OK 200 7\n200 7\n300 0\nERR unknown command FOO\nERR bad channel\n"
                  b"ERR bad value\nERR usage: SET <ch> <value>\nERR empty command\n")
        assert recv_exact(b, len(want_b)) == want_b

        # several clients at once, each on its own channels
        def worker(k):
            def run():
                s = connect(port)
                try:
                    chans = range(300 + 20 * k, 300 + 20 * k + 20)
                    for ch in chans:           # one command per packet, interleaved with others
                        s.sendall(b"SET %d %d\n" % (ch, k))
                    got = recv_lines(s, len(chans))
                    assert got == b"".join(b"OK %d %d\n" % (ch, k) for ch in chans)
                finally:
                    s.close()
            return run
        run_threads(*(worker(k) for k in range(4)))

        # a line that never ends is refused instead of buffered without end
        e = connect(port)
        e.sendall(b"SET 1 " + b"9" * 2000)
        assert recv_to_eof(e) == b"ERR line too long\n"
        e.close()

        # commands sent just before the client half-closes are still answered
        f = connect(port)
        f.sendall(b"GET 200\nGET 2\n")
        f.shutdown(socket.SHUT_WR)
        assert recv_to_eof(f) == b"200 7\n2 2\n"
        f.close()

        # LIST sees every client's settings; QUIT closes the connection
        a.sendall(b"LIST\nQUIT\nGET 1\n")
        expected = {ch: ch % 256 for ch in range(1, 101)}
        expected[200] = 7
        expected.update({ch: k for k in range(4) for ch in range(300 + 20 * k, 320 + 20 * k)})
        want_list = b"".join(b"%d %d\n" % (ch, v) for ch, v in sorted(expected.items())) + b"END\nBYE\n"
        assert recv_to_eof(a) == want_list      # nothing after BYE: the GET was not answered
        a.close()
        b.close()
        script.check_clean_exit()


# --------------------------------------------------------------------------
# 2. a client that reconnects to a device

@pytest.mark.parametrize("lua", LUAS)
def test_reconnecting_client(lua):
    port = free_port()                      # nothing listens there yet: attempts are refused
    base, cap = 0.05, 0.8
    with Script("reconnect.lua", "127.0.0.1", str(port), "0.1", str(base), str(cap),
                lua=lua) as script:
        # the device starts late: the script backs off meanwhile
        script.wait_line(r"^attempt 6$")     # after 5 refusals: 0.05+0.1+0.2+0.4+0.8 s of back-off
        time.sleep(0.5)                     # a window to count attempts in (not an assertion)
        attempts = script.count(r"^attempt \d+$")
        # a busy loop makes thousands of attempts in those 2 s; the back-off makes 6 or 7
        assert 6 <= attempts <= 12, script.output()
        delays = [float(m) for m in re.findall(r"retry in ([\d.]+)", "\n".join(script.lines))]
        assert delays[:5] == [0.05, 0.1, 0.2, 0.4, 0.8], script.output()
        assert all(d == cap for d in delays[5:]), script.output()

        dev = listener(port)
        try:
            conn, _ = dev.accept()
            conn.settimeout(SAFETY)
            conn.sendall(b"HELLO 1\nstatus ok\n")
            assert recv_lines(conn, 1).startswith(b"PING 1\n")     # the heartbeat
            k, _ = script.wait_line(r"^got: status ok$")
            assert script.lines[k - 1] == "got: HELLO 1"
            # the device drops the connection and goes away for a while
            conn.close()
            dev.close()
            script.wait_line(r"^disconnected$", k)
            # the back-off starts again from the base after a good connection
            j, m = script.wait_line(r"^retry in ([\d.]+)$", k)
            assert float(m.group(1)) == base, script.output()
            n = script.count(r"^attempt \d+$")
            script.wait_line(rf"^attempt {n + 2}$", j)              # refused twice more
            dev = listener(port)                                    # the device comes back
            conn, _ = dev.accept()
            conn.settimeout(SAFETY)
            conn.sendall(b"HELLO 2\n")
            assert recv_lines(conn, 2).startswith(b"PING ")
            script.wait_line(r"^got: HELLO 2$", j)
            # no busy loop while connected either: nothing but heartbeats
            total = script.count(r"^attempt \d+$")
            time.sleep(0.3)
            assert script.count(r"^attempt \d+$") == total
        finally:
            dev.close()
        script.check_clean_exit()


# --------------------------------------------------------------------------
# 3. a relay

def relay_exchange(relay_port: int, up: socket.socket, size: int, who_closes: str):
    """One client through the relay: both sides send `size` random bytes at
    once; each must get the other's bytes exactly, then `who_closes` closes
    and the other side must see the end after exactly those bytes."""
    rnd = random.Random(size ^ hash(who_closes))
    a_data = rnd.randbytes(size)
    b_data = rnd.randbytes(size + 17)
    client = connect(relay_port)
    conn, _ = up.accept()
    conn.settimeout(SAFETY)
    try:
        def client_side():
            return recv_exact(client, len(b_data))

        def upstream_side():
            return recv_exact(conn, len(a_data))

        got_b, got_a, _, _ = run_threads(client_side, upstream_side,
                                         lambda: client.sendall(a_data), lambda: conn.sendall(b_data))
        assert got_a == a_data, "client -> upstream bytes differ"
        assert got_b == b_data, "upstream -> client bytes differ"
        if who_closes == "upstream":
            conn.sendall(b"last words")
            conn.close()
            assert recv_to_eof(client) == b"last words"
        else:
            client.sendall(b"goodbye")
            client.close()
            assert recv_to_eof(conn) == b"goodbye"
    finally:
        client.close()
        conn.close()


def relay_one_way(relay_port: int, up: socket.socket, size: int, sender: str):
    """`sender` sends `size` bytes and closes at once, while the other side
    is not reading yet: the relay must deliver every byte, then close."""
    data = random.Random(size).randbytes(size)
    client = connect(relay_port)
    conn, _ = up.accept()
    conn.settimeout(SAFETY)
    src, dst = (client, conn) if sender == "client" else (conn, client)
    try:
        def send_and_close():
            src.sendall(data)
            src.close()

        def late_slow_reader():
            time.sleep(0.3)                 # let the relay's queues fill (not an assertion)
            buf = bytearray()
            while True:                     # then read slowly, so that the relay's queue
                chunk = dst.recv(32768)     # towards dst stays full until the end
                if not chunk:
                    return bytes(buf)
                buf += chunk
                time.sleep(0.001)

        _, got = run_threads(send_and_close, late_slow_reader)
        assert len(got) == len(data) and got == data
    finally:
        client.close()
        conn.close()


@pytest.mark.parametrize("lua", LUAS)
def test_relay(lua):
    size = 1 << 20
    up = listener(0)
    try:
        with Script("relay.lua", "127.0.0.1", str(up.getsockname()[1]), lua=lua) as script:
            port = script.port()
            relay_exchange(port, up, size, "upstream")
            relay_exchange(port, up, size, "client")
            relay_one_way(port, up, 4 * size, "upstream")   # more than the kernel's buffers hold
            relay_one_way(port, up, 4 * size, "client")
            # a client that sends and closes at once (it may still be queued
            # in the server when its bytes and its close arrive)
            quick = connect(port)
            quick.sendall(b"quick words")
            quick.close()
            conn, _ = up.accept()
            conn.settimeout(SAFETY)
            assert recv_to_eof(conn) == b"quick words"
            conn.close()
            i = -1
            for _ in range(5):              # every link was closed on both sides
                i, m = script.wait_line(r"^link closed, (\d+) open$", i + 1)
            assert m.group(1) == "0", script.output()
            # an upstream that is not there: the client is closed, not left hanging
            dead = free_port()
            script.check_clean_exit()
        with Script("relay.lua", "127.0.0.1", str(dead), lua=lua) as script:
            client = connect(script.port())
            client.sendall(b"hello?")
            assert recv_to_eof(client) == b""
            client.close()
            script.wait_line(r"^link closed, 0 open$")
            script.check_clean_exit()
    finally:
        up.close()


@pytest.mark.stress
@pytest.mark.parametrize("lua", LUAS)
def test_relay_stress(lua):
    """Several links at once, 8 MiB each way under LUANET_STRESS=1."""
    size = (8 << 20) if STRESS else (256 << 10)
    up = listener(0)
    try:
        with Script("relay.lua", "127.0.0.1", str(up.getsockname()[1]), lua=lua) as script:
            port = script.port()
            links = []
            for k in range(3):                  # one at a time, so that accept() pairs them up
                rnd = random.Random(k)
                client = connect(port)
                conn, _ = up.accept()
                conn.settimeout(SAFETY)
                links.append((client, conn, rnd.randbytes(size), rnd.randbytes(size + k)))
            fns = []
            for client, conn, a_data, b_data in links:
                fns += [partial(recv_exact, client, len(b_data)), partial(recv_exact, conn, len(a_data)),
                        partial(client.sendall, a_data), partial(conn.sendall, b_data)]
            results = run_threads(*fns)
            for k, (client, conn, a_data, b_data) in enumerate(links):
                assert results[4 * k] == b_data
                assert results[4 * k + 1] == a_data
                client.close()
                assert recv_to_eof(conn) == b""
                conn.close()
            script.wait_line(r"^link closed, 0 open$")
            script.check_clean_exit()
    finally:
        up.close()


# --------------------------------------------------------------------------
# 4. a binary framed protocol

def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("lua", LUAS)
def test_framed_server(lua):
    with Script("framed.lua", "0", str(1 << 20), lua=lua) as script:
        port = script.port()
        codec = script.wait_line(r"^codec: (.*)$")[1].group(1)
        assert codec == ("pure-lua" if lua in ("5.1", "5.2", "luajit") else "string.pack")

        rnd = random.Random(4)
        sizes = [0, 1, 3, 4, 5, 255, 256, 65535, 65536, 200_000] + [rnd.randrange(0, 3000) for _ in range(30)]
        payloads = [rnd.randbytes(n) for n in sizes]
        stream = b"".join(frame(p) for p in payloads)
        want = b"".join(frame(p[::-1]) for p in payloads)

        s = connect(port)
        # split at random points, headers included, one piece per packet
        cuts = sorted(rnd.sample(range(1, len(stream)), 60)) + [1, 2, 3, 5, 6]
        cuts = sorted(set(cuts))
        pieces = [stream[i:j] for i, j in zip([0] + cuts, cuts + [len(stream)])]

        def send_pieces():
            for p in pieces:
                s.sendall(p)
                time.sleep(0.002)   # separate packets (not an assertion)

        got, _ = run_threads(lambda: recv_exact(s, len(want)), send_pieces)
        assert got == want

        # many frames in one packet
        small = [rnd.randbytes(rnd.randrange(0, 40)) for _ in range(200)]
        s.sendall(b"".join(frame(p) for p in small))
        want_small = b"".join(frame(p[::-1]) for p in small)
        assert recv_exact(s, len(want_small)) == want_small

        # a frame longer than the limit closes the connection, nothing is answered
        s.sendall((2 << 20).to_bytes(4, "big") + b"x" * 10)
        assert recv_to_eof(s) == b""
        script.wait_line(r"^frame too large: 2097152$")
        s.close()

        # the server still serves others; frames sent right before the client
        # half-closes are answered before the server closes
        t = connect(port)
        t.sendall(frame(b"abc") + frame(b"") + frame(b"\x00\xff\n"))
        t.shutdown(socket.SHUT_WR)
        assert recv_to_eof(t) == frame(b"cba") + frame(b"") + frame(b"\n\xff\x00")
        t.close()
        script.check_clean_exit()


# --------------------------------------------------------------------------
# 5. a broadcast server that drops a client that does not read

@pytest.mark.parametrize("lua", LUAS)
def test_broadcast_server(lua):
    limit = 64 * 1024
    with Script("broadcast.lua", "0", str(limit), lua=lua) as script:
        port = script.port()
        a, b, c = connect(port), connect(port), connect(port)
        script.wait_line(r"^joined client3$")

        lines = b"".join(b"a says %d\n" % i for i in range(100))
        a.sendall(lines)                                    # many lines in one packet
        assert recv_exact(b, len(lines)) == lines
        assert recv_exact(c, len(lines)) == lines
        b.sendall(b"par")
        time.sleep(0.02)
        b.sendall(b"tial from b\n")                          # a line across packets
        # a's next bytes are b's line: a never got its own lines back
        assert recv_exact(a, 15) == b"partial from b\n"
        assert recv_exact(c, 15) == b"partial from b\n"

        # d never reads: its queue grows until the server drops it
        d = connect(port, rcvbuf=4096)
        script.wait_line(r"^joined client4$")
        line = b"x" * 1023 + b"\n"
        batch = line * 64                                   # 64 KiB per batch
        sent = 0
        dropped = None
        while dropped is None:
            a.sendall(batch)
            sent += len(batch)
            assert recv_exact(b, len(batch)) == batch       # the readers keep up
            assert recv_exact(c, len(batch)) == batch
            with script._new:
                dropped = next((ln for ln in script.lines if ln.startswith("dropped client4")), None)
            assert sent < (64 << 20), "the silent client was never dropped\n" + script.output()
        m = re.match(r"dropped client4: bytes_to_write (\d+) > (\d+)$", dropped)
        assert m, dropped
        assert limit < int(m.group(1)) <= limit + len(line)   # dropped at the first line past the limit
        got_d = recv_to_eof(d)
        assert len(got_d) < sent and got_d == (line * (len(got_d) // len(line) + 1))[:len(got_d)]
        d.close()

        # the others go on; a line sent right before leaving still goes out
        c.sendall(b"still here\n")
        assert recv_exact(a, 11) == b"still here\n"
        assert recv_exact(b, 11) == b"still here\n"
        e = connect(port)
        script.wait_line(r"^joined client5$")
        e.sendall(b"hello and goodbye\n")
        e.close()
        assert recv_exact(a, 18) == b"hello and goodbye\n"
        assert recv_exact(b, 18) == b"hello and goodbye\n"
        assert recv_exact(c, 18) == b"hello and goodbye\n"
        script.wait_line(r"^left client5$")
        for s in (a, b, c):
            s.close()
        script.wait_line(r"^left client3$")
        script.check_clean_exit()


@pytest.mark.parametrize("lua", LUAS)
def test_broadcast_stop_accounts_for_every_byte(lua):
    """SIGTERM while a client is not reading (no drop limit this time): what
    it received plus what luanet run reports as discarded is everything the
    script wrote to it (README: nothing is cut off silently)."""
    with Script("broadcast.lua", "0", str(1 << 30), lua=lua, options=("--grace", "0.5")) as script:
        port = script.port()
        a, b, d = connect(port), connect(port), connect(port)
        script.wait_line(r"^joined client3$")
        data = (b"z" * 1023 + b"\n") * 8192                 # 8 MiB: more than the kernel's buffers
        run_threads(lambda: a.sendall(data), lambda: recv_exact(b, len(data)))
        # b got every line, so the script has written all of them to d too
        rc = script.stop()
        got = recv_to_eof(d)
        assert got == data[:len(got)]
        m = re.search(r"(\d+) bytes to 1 peer could not be delivered", "\n".join(script.stderr))
        discarded = int(m.group(1)) if m else 0
        assert len(got) + discarded == len(data), script.output()
        assert rc == (1 if discarded else 0), script.output()
        for s in (a, b, d):
            s.close()
