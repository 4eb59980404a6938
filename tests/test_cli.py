"""`luanet run` as a user runs it: a real process, real sockets, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LUANET = [sys.executable, "-m", "luanet"]


def start(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(LUANET + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=kw.pop("cwd", ROOT), env=env, **kw)


def read_line_with(proc, needle: bytes, timeout=10.0) -> bytes:
    """The first stdout line containing needle (fails if the process prints
    nothing like it in time: that is how an unflushed print shows up)."""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
            for line in buf.splitlines():
                if needle in line:
                    return line
        elif proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"no line with {needle!r}; got {buf!r}; stderr {proc.stderr.read()!r}")


def port_from(line: bytes) -> int:
    return int(line.rsplit(b" ", 1)[1])


@pytest.fixture
def script(tmp_path):
    def write(source: str, name="script.lua") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path
    return write


ECHO = """
server = net.TcpServer.new()
assert(server:listen(0))
server.new_connection_handler = function(s)
  local c = s:next_pending_connection()
  c.ready_read_handler = function(c) c:write_string(c:read_all_string()) end
end
print("listening on port " .. server.port)
"""


def test_example_echo_serves_and_sigterm_exits_zero():
    proc = start(["run", "examples/echo.lua"])
    try:
        port = int(read_line_with(proc, b"listening on port").split(b"port ")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(bytes(range(256)))
            got = b""
            while len(got) < 256:
                got += c.recv(4096)
            assert got == bytes(range(256))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def start_big_writer(script, mib):
    """`luanet run` of a server that writes `mib` MiB to its first client;
    returns (process, client) once the write is made."""
    path = script("""
    server = net.TcpServer.new()
    assert(server:listen(0))
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      c:write_string(string.rep("z", %d * 1024 * 1024))
      print("written")
    end
    print("listening on port " .. server.port)
    """ % mib)
    proc = start(["run", str(path)])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        read_line_with(proc, b"written")
    except BaseException:
        proc.kill()
        raise
    return proc, client


def test_ctrl_c_flushes_what_was_written_then_exits_zero(script):
    proc, client = start_big_writer(script, 4)
    try:
        proc.send_signal(signal.SIGINT)  # while 4 MiB still sit unread in the pipe
        got = 0
        while True:
            data = client.recv(1 << 16)
            if not data:
                break
            got += len(data)
        client.close()
        assert got == 4 * 1024 * 1024
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_script_error_prints_file_and_line_and_exits_one(script):
    path = script("local x = 1\nerror('broken plugin')\n")
    # run as a user does, from the script's folder (Lua shortens long chunk names)
    proc = subprocess.run(LUANET + ["run", path.name], capture_output=True, timeout=30,
                          cwd=path.parent, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert proc.stderr.startswith(b"luanet: script.lua:2: broken plugin\n"), proc.stderr


def test_missing_script_is_a_clear_error():
    proc = subprocess.run(LUANET + ["run", "no/such/script.lua"], capture_output=True, timeout=30)
    assert proc.returncode == 1
    assert b"no/such/script.lua" in proc.stderr


def test_arg_is_set_as_standalone_lua_sets_it(script):
    path = script("print(arg[0], arg[1], arg[2], #arg, select('#', ...), ...)")
    proc = subprocess.run(LUANET + ["run", str(path), "one", "--lua", "5.1", "two"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}\tone\ttwo\t2\t2\tone\ttwo\n".encode()


@pytest.mark.parametrize("version,expected", [("5.1", b"Lua 5.1"), ("5.3", b"Lua 5.3"),
                                              ("luajit", b"LuaJIT")])
def test_lua_version_option(script, version, expected):
    path = script("print(jit and jit.version or _VERSION)")
    proc = subprocess.run(LUANET + ["run", str(path), "--lua", version], capture_output=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(expected)


def test_unknown_lua_version_is_a_usage_error(script):
    proc = subprocess.run(LUANET + ["run", str(script("print(1)")), "--lua", "6.0"],
                          capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"unknown Lua version '6.0'" in proc.stderr


def test_sandbox_option_removes_io(script):
    path = script("print(io == nil, os.execute == nil, type(string.format))")
    plain = subprocess.run(LUANET + ["run", str(path)], capture_output=True, timeout=30)
    boxed = subprocess.run(LUANET + ["run", str(path), "--sandbox"], capture_output=True, timeout=30)
    assert plain.stdout == b"false\tfalse\tfunction\n"
    assert boxed.stdout == b"true\ttrue\tfunction\n"


def test_bind_option_confines_listen(script):
    path = script(ECHO)
    proc = start(["run", str(path), "--bind", "127.0.0.1"])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping")
            assert c.recv(10) == b"ping"
        six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with pytest.raises(OSError):
            six.connect(("::1", port))
        six.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_exits_by_itself_when_nothing_is_open(script):
    path = script("""
    local server = net.TcpServer.new()
    assert(server:listen(0))
    local client = net.TcpSocket.new()
    client.connected_handler = function(c) c:write_string("hi"); c:disconnect() end
    client:connect("127.0.0.1", server.port)
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      c.ready_read_handler = function(c) print("got " .. c:read_all_string()) end
      c.disconnected_handler = function() print("done"); server:close() end
    end
    """)
    proc = subprocess.run(LUANET + ["run", str(path)], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"got hi\ndone\n"


def test_handler_error_is_reported_and_server_keeps_serving(script):
    path = script(ECHO.replace("c.ready_read_handler = function(c)",
                               "c.ready_read_handler = function(c) if c:peek_string(4) == 'boom' then error('handler failed') end"))
    proc = start(["run", str(path)])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"boom")
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"fine")
            assert c.recv(10) == b"fine"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert b"handler failed" in proc.stderr.read()
    finally:
        proc.kill()


@pytest.mark.parametrize("where", ["top level", "handler"])
def test_ctrl_c_ends_a_script_stuck_in_lua(script, where):
    # The loop never gets control back, so it cannot handle the signal: the
    # signal thread notices and exits with 128 + SIGINT after its grace time.
    if where == "top level":
        source = 'print("looping"); while true do end'
    else:
        source = ECHO + """
        server.new_connection_handler = function(s)
          s:next_pending_connection()
          print("looping")
          while true do end
        end
        """
    proc = start(["run", str(script(source))])
    try:
        if where == "handler":
            port = port_from(read_line_with(proc, b"listening on port"))
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        read_line_with(proc, b"looping")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 128 + signal.SIGINT
        assert b"has not returned to the event loop" in proc.stderr.read()
    finally:
        proc.kill()


def test_second_ctrl_c_exits_at_once_while_closing(script):
    # A client that never reads keeps the graceful close waiting; a second
    # Ctrl-C does not wait for it.
    proc, client = start_big_writer(script, 64)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # still flushing to a client that does not read
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 128 + signal.SIGINT
        client.close()
    finally:
        proc.kill()
