"""`luanet run` as a user runs it: a real process, real sockets, real signals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
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


def start_big_writer(script, mib, *options):
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
    proc = start(["run", str(path), *options])
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
                               "c.ready_read_handler = function(c) "
                               "if c:peek_string(4) == 'boom' then error('handler failed') end"))
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


# ---------------------------------------------------------------- what the host has
# Parts of `luanet run` need host API that lands separately; each test of
# such a part says so when it skips.
def _host_has():
    import inspect

    from luanet.host import LuaHost
    params = inspect.signature(LuaHost).parameters
    has = {
        "lua_path": "lua_path" in params,
        "read_buffer_size": "read_buffer_size" in params,
        "interrupt": hasattr(LuaHost, "interrupt"),
        "grace": "grace" in inspect.signature(LuaHost.close).parameters,
        "table": callable(getattr(LuaHost, "table", None)),
    }
    try:
        with LuaHost() as host:
            has["timers"] = bool(host.eval("luanet.Timer ~= nil and luanet.after ~= nil"))
    except Exception:
        has["timers"] = False
    return has


HAS = _host_has()


def needs(feature):
    return pytest.mark.skipif(not HAS[feature], reason=f"the host has no {feature} yet (lead's host API)")


def run(args, timeout=30, **kw):
    return subprocess.run(LUANET + list(args), capture_output=True, timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outgoing_address():
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def stderr_of(proc) -> bytes:
    os.set_blocking(proc.stderr.fileno(), False)
    return proc.stderr.read() or b""


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Output:
    """All of a process's stdout so far, read without blocking, for tests
    that wait for several lines in turn."""

    def __init__(self, proc, stream="stdout"):
        self.stream = getattr(proc, stream)
        self.proc = proc
        os.set_blocking(self.stream.fileno(), False)
        self.text = b""

    def pump(self) -> bytes:
        chunk = self.stream.read()
        if chunk:
            self.text += chunk
        return self.text

    def wait_for(self, needle: bytes, count=1, timeout=15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pump().count(needle) >= count:
                return self.text
            if self.proc.poll() is not None:
                self.pump()
                break
            time.sleep(0.02)
        raise AssertionError(f"no {count} x {needle!r} in {self.text!r}")


# ---------------------------------------------------------------- options
RUN_OPTIONS = ["--lua", "--sandbox", "--bind", "--lua-path", "--time-limit", "--max-memory",
               "--read-buffer-size", "--grace", "--watch", "--workers", "--version", "--help"]


@pytest.mark.parametrize("argv", [["run", "--help"], ["run", "-h"], ["run", "x.lua", "--help"],
                                  ["run", "--lua", "5.1", "--help"]])
def test_run_help_exits_zero_and_explains_every_option(argv):
    proc = run(argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    text = proc.stdout.decode()
    for option in RUN_OPTIONS:
        assert option in text, option
    assert "after `--`" in text                 # the argument rule
    assert "Why unsandboxed" in text and "trusted" in text
    assert "exit 130" in text and "exits 1" in text


def test_top_level_help_and_version():
    helped = run(["--help"])
    assert helped.returncode == 0 and b"luanet run" in helped.stdout and b"luanet spec" in helped.stdout
    from luanet import __version__
    for argv in (["--version"], ["run", "--version"]):
        proc = run(argv)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"luanet {__version__} ".encode())
    bare = run([])
    assert bare.returncode == 2 and b"usage:" in bare.stderr


@pytest.mark.parametrize("argv,says", [
    (["--frob", "{script}"], b"unknown option --frob"),
    (["{script}", "--frob"], b"unknown option --frob"),
    (["{script}", "a", "-x"], b"unknown option -x"),
    (["{script}", "--sandbox=yes"], b"option --sandbox takes no value"),
    (["{script}", "--grace"], b"option --grace needs a value"),
    (["{script}", "--grace", "soon"], b"--grace: 'soon' is not a number of seconds >= 0"),
    (["{script}", "--grace=-1"], b"--grace: '-1' is not a number of seconds >= 0"),
    (["{script}", "--time-limit", "0"], b"--time-limit: '0' is not a number of seconds > 0"),
    (["{script}", "--max-memory", "12Q"], b"--max-memory: '12Q' is not a number of bytes"),
    (["{script}", "--read-buffer-size", "-1"], b"--read-buffer-size: '-1' is not a number of bytes"),
    (["{script}", "--workers", "0"], b"--workers: '0' is not a number of workers"),
    (["{script}", "--lua", "6.0"], b"unknown Lua version '6.0'"),
    (["{script}", "--bind", "no-such-host.invalid"], b"--bind: cannot resolve 'no-such-host.invalid'"),
    ([], b"no SCRIPT given"),
    (["--grace", "1"], b"no SCRIPT given"),
])
def test_usage_errors_exit_two_with_one_line_and_run_nothing(script, argv, says):
    path = script('print("the script ran")')
    proc = run(["run"] + [a.format(script=path) for a in argv])
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr.count(b"\n") == 1, proc.stderr
    assert proc.stderr.startswith(b"luanet run: error: ") and says in proc.stderr, proc.stderr


def test_double_dash_hands_the_rest_to_the_script(script):
    path = script("print(#arg, ...)")
    proc = run(["run", "--grace", "1", str(path), "x", "-", "-5", "--", "--grace", "-v", "--"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"6\tx\t-\t-5\t--grace\t-v\t--\n"
    # `--` before the script: the script is the first word after it
    proc = run(["run", "--", str(path), "--lua"])
    assert proc.stdout == b"1\t--lua\n", proc.stderr


def test_arg_has_what_stood_before_the_script_at_negative_indices(script):
    path = script("print(arg[-4], arg[-3], arg[-2], arg[-1], arg[0], arg[1], arg[2], arg[-5])")
    proc = run(["run", "--lua", "5.3", str(path), "a", "--sandbox", "b"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"luanet\trun\t--lua\t5.3\t{path}\ta\tb\tnil\n".encode()


def test_byte_sizes_take_k_m_g_suffixes():
    from luanet.cli import UsageError, parse_bytes
    assert parse_bytes("--max-memory", "65536", 1) == 65536
    assert parse_bytes("--max-memory", "512k", 1) == 512 * 1024
    assert parse_bytes("--max-memory", "64M", 1) == 64 << 20
    assert parse_bytes("--max-memory", "2G", 1) == 2 << 30
    assert parse_bytes("--max-memory", "64MiB", 1) == 64 << 20
    with pytest.raises(UsageError):
        parse_bytes("--max-memory", "0", 1)
    with pytest.raises(UsageError):
        parse_bytes("--max-memory", "1.5M", 1)


def test_max_memory_limits_the_script(script):
    path = script("""
    local t = {}
    for i = 1, 200000 do t[i] = string.rep("x", 64) .. i end
    print("allocated", #t)
    """)
    free = run(["run", str(path)])
    assert free.returncode == 0 and free.stdout == b"allocated\t200000\n", free.stderr
    capped = run(["run", str(path), "--max-memory", "4M"])
    assert capped.returncode == 1
    assert b"not enough memory" in capped.stderr, capped.stderr
    assert capped.stdout == b""


def test_time_limit_stops_a_runaway_handler_and_the_server_goes_on(script):
    path = script(ECHO + """
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      c.ready_read_handler = function(c)
        local data = c:read_all_string()
        if data == "loop" then while true do end end
        c:write_string(data)
      end
    end
    """)
    proc = start(["run", str(path), "--time-limit", "0.3"])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"loop")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as d:
                d.sendall(b"ping")
                assert d.recv(10) == b"ping"   # served once the runaway was stopped
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert b"ready_read_handler" in proc.stderr.read()
    finally:
        proc.kill()


@needs("read_buffer_size")
def test_read_buffer_size_is_every_sockets_default(script):
    path = script("""
    server = net.TcpServer.new()
    assert(server:listen(0))
    local client = net.TcpSocket.new()
    print("client", client.read_buffer_size)
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      print("accepted", c.read_buffer_size)
      server:close(); client:abort(); c:abort()
    end
    client:connect("127.0.0.1", server.port)
    """)
    proc = run(["run", str(path), "--read-buffer-size", "64k"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"client\t65536\naccepted\t65536\n"
    plain = run(["run", str(path)])
    assert plain.stdout == b"client\t0\naccepted\t0\n", plain.stderr


@needs("lua_path")
@pytest.mark.parametrize("sandbox", [False, True])
def test_lua_path_defaults_to_the_scripts_folder(tmp_path, sandbox):
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "helper.lua").write_text("return { name = 'helper' }")
    (app / "pkg" / "init.lua").write_text("return { name = 'pkg' }")
    (app / "main.lua").write_text("print(require('helper').name, require('pkg').name)")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run(["run", str(app / "main.lua")] + (["--sandbox"] if sandbox else []),
               cwd=elsewhere, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"helper\tpkg\n"


@needs("lua_path")
@pytest.mark.parametrize("sandbox", [False, True])
def test_lua_path_option_replaces_the_default(tmp_path, sandbox):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mod_x.lua").write_text("return 'from lib'")
    (tmp_path / "mod_x.lua").write_text("return 'from the script folder'")
    main = tmp_path / "main.lua"
    main.write_text("print((require('mod_x')))")
    templates = f"{tmp_path}/lib/?.lua"
    proc = run(["run", str(main), "--lua-path", templates] + (["--sandbox"] if sandbox else []))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"from lib\n"
    default = run(["run", str(main)] + (["--sandbox"] if sandbox else []))
    assert default.stdout == b"from the script folder\n", default.stderr


def test_bind_takes_a_host_name(script):
    proc = start(["run", str(script(ECHO)), "--bind", "localhost"])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"ping")
            assert c.recv(10) == b"ping"
        six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with pytest.raises(OSError):  # localhost is 127.0.0.1 here, not ::1 too
            six.connect(("::1", port))
        six.close()
        own = outgoing_address()
        if own is not None:  # not on every interface: the machine's own address is refused
            with pytest.raises(OSError):
                socket.create_connection((own, port), timeout=5).close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


# ---------------------------------------------------------------- signals and the grace
def read_all(sock, delay=0.0, chunk=1 << 16) -> int:
    """Bytes read until EOF (or reset), pausing `delay` between reads: a slow reader."""
    got = 0
    while True:
        try:
            data = sock.recv(chunk)
        except ConnectionResetError:
            break
        if not data:
            break
        got += len(data)
        if delay:
            time.sleep(delay)
    return got


def test_sigterm_delivers_everything_to_a_slow_reader_then_exits_zero(script):
    proc, client = start_big_writer(script, 4)
    try:
        proc.send_signal(signal.SIGTERM)
        got = read_all(client, delay=0.01)  # 64 KiB every 10 ms: well inside the grace
        client.close()
        assert got == 4 * 1024 * 1024
        assert proc.wait(10) == 0
        assert b"discarded" not in proc.stderr.read()
    finally:
        proc.kill()


DISCARDED = re.compile(rb"(\d+) bytes? to (\d+) peers? could not be delivered within the ([\d.]+) s grace")


@needs("grace")
def test_grace_running_out_reports_discarded_bytes_and_exits_one(script):
    size = 16 * 1024 * 1024
    proc, client = start_big_writer(script, 16, "--grace", "0.5")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 1
        err = proc.stderr.read()
        found = DISCARDED.search(err)
        assert found, err
        discarded, peers = int(found.group(1)), int(found.group(2))
        assert peers == 1 and found.group(3) == b"0.5"
        assert 0 < discarded < size
        # what was not discarded reached the kernel and still arrives, so
        # nothing is lost without being counted
        got = read_all(client)
        assert got + discarded == size, (got, discarded)
    finally:
        client.close()
        proc.kill()


OWN_LOOP = """
server = net.TcpServer.new()
assert(server:listen(0))
server.new_connection_handler = function(s)
  local c = s:next_pending_connection()
  c:write_string(string.rep("y", 2 * 1024 * 1024))
  print("written")
end
print("listening on port " .. server.port)
while true do %s end
"""


@needs("interrupt")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("loop", ["luanet.run_for(1)",
                                  "luanet.run_until(function() return false end, 5)"])
def test_first_signal_ends_a_script_that_drives_its_own_loop(script, sig, loop):
    proc = start(["run", str(script(OWN_LOOP % loop))])
    try:
        port = port_from(read_line_with(proc, b"listening on port"))
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        read_line_with(proc, b"written")
        proc.send_signal(sig)
        got = read_all(client)
        client.close()
        assert got == 2 * 1024 * 1024  # the clean shutdown ran: everything delivered
        assert proc.wait(10) == 0
        err = proc.stderr.read()
        assert b"interrupted" not in err, err  # not reported as a script error
    finally:
        proc.kill()


def test_second_signal_ends_at_once_with_130_and_a_message(script):
    proc, client = start_big_writer(script, 64, "--grace", "60")
    try:
        err = Output(proc, "stderr")
        proc.send_signal(signal.SIGTERM)
        # still delivering to a client that does not read; after a second it says so
        err.wait_for(b"stopping: delivering what the script wrote (up to 60 s, --grace); "
                     b"interrupt again to exit at once")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 130
        assert b"second interrupt: exiting at once" in err.pump()
    finally:
        client.close()
        proc.kill()


# ---------------------------------------------------------------- --watch
def rewrite(path: Path, text: str) -> None:
    """New content with a modification time that differs from the last one
    (a quick second write can land in the same clock tick)."""
    before = path.stat().st_mtime_ns if path.exists() else None
    path.write_text(text)
    while path.stat().st_mtime_ns == before:
        time.sleep(0.005)
        os.utime(path)


WATCHED_MAIN = """
local util = require("util")
local VERSION = "%s"
server = net.TcpServer.new()
assert(server:listen(0))
server.new_connection_handler = function(s)
  local c = s:next_pending_connection()
  local late = require("late")   -- required from a handler, after the start
  c:write_string(util.version .. " " .. VERSION .. " " .. late .. "\\n")
  c:disconnect()
end
print("listening on port " .. server.port)
"""


def ask(port) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        return c.makefile("rb").readline().strip()


def test_watch_restarts_when_the_script_or_a_required_module_changes(tmp_path):
    main, util, late = tmp_path / "main.lua", tmp_path / "util.lua", tmp_path / "late.lua"
    rewrite(util, "return { version = 'u1' }")
    rewrite(late, "return 'l1'")
    rewrite(main, WATCHED_MAIN % "s1")
    proc = start(["run", "--watch", str(main)])
    out, err = Output(proc), Output(proc, "stderr")
    try:
        out.wait_for(b"listening on port")
        port1 = port_from(out.text.splitlines()[-1])
        assert ask(port1) == b"u1 s1 l1"

        rewrite(util, "return { version = 'u2' }")
        out.wait_for(b"listening on port", count=2)
        assert b"util.lua changed: restarting" in err.pump()
        port2 = port_from(out.text.splitlines()[-1])
        with pytest.raises(OSError):  # the old run's server was closed first
            socket.create_connection(("127.0.0.1", port1), timeout=5).close()
        assert ask(port2) == b"u2 s1 l1"

        rewrite(late, "return 'l2'")  # a module first required inside a handler
        out.wait_for(b"listening on port", count=3)
        assert b"late.lua changed: restarting" in err.pump()
        assert ask(port_from(out.text.splitlines()[-1])) == b"u2 s1 l2"

        rewrite(main, "this is not Lua")  # an error: printed, then the next change is awaited
        err.wait_for(b"waiting for a change")
        assert b"main.lua:1:" in err.text
        assert proc.poll() is None

        rewrite(main, WATCHED_MAIN % "s2")
        out.wait_for(b"listening on port", count=4)
        assert ask(port_from(out.text.splitlines()[-1])) == b"u2 s2 l2"
        assert err.pump().count(b"changed: restarting") == 4

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def test_watch_reruns_a_script_that_finished(tmp_path):
    main = tmp_path / "once.lua"
    rewrite(main, 'print("run one")')
    proc = start(["run", str(main), "--watch"])
    out, err = Output(proc), Output(proc, "stderr")
    try:
        out.wait_for(b"run one")
        err.wait_for(b"finished; waiting for a change to restart")
        rewrite(main, 'print("run two")')
        out.wait_for(b"run two")
        assert out.text == b"run one\nrun two\n"
        proc.send_signal(signal.SIGINT)  # while waiting: a clean exit
        assert proc.wait(10) == 0
    finally:
        proc.kill()


# ---------------------------------------------------------------- --workers
WORKER = """
local port = assert(tonumber(arg[1]), "usage: worker.lua PORT")
server = net.TcpServer.new()
assert(server:listen(port))
server.new_connection_handler = function(s)
  local c = s:next_pending_connection()
  c:write_string(string.format("worker %s pid %s\\n", os.getenv("LUANET_WORKER"),
                               io.open("/proc/self/stat"):read("*n")))
  c:disconnect()
end
print("worker " .. os.getenv("LUANET_WORKER") .. " listening on port " .. server.port)
"""


def alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("how", ["terminal Ctrl-C", "SIGTERM"])
def test_workers_share_one_port_and_all_stop_on_one_signal(script, how):
    port = free_port()
    proc = subprocess.Popen(LUANET + ["run", str(script(WORKER)), str(port), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            start_new_session=True)  # its own group, as a terminal's job
    out = Output(proc)
    try:
        out.wait_for(b"listening on port %d" % port, count=2)
        seen = {}
        for _ in range(400):
            line = ask(port).split()
            seen[line[1]] = int(line[3])
            if len(seen) == 2:
                break
        assert sorted(seen) == [b"1", b"2"]  # the kernel spreads connections over both
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:  # Ctrl-C in a terminal signals the foreground group: the parent, not the workers
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(20) == 0, proc.stderr.read()
        assert not any(alive(pid) for pid in seen.values())
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_workers_report_a_failing_script(script):
    proc = run(["run", str(script("error('no config')")), "--workers", "2"])
    assert proc.returncode == 1
    assert proc.stderr.count(b"no config") == 2
    assert b"luanet[worker 1]:" in proc.stderr and b"luanet[worker 2]:" in proc.stderr


# ---------------------------------------------------------------- real clients, examples
EXAMPLE_LUAS = ["5.4", "5.1", "luajit"]  # issue 11: the examples run on all three


def start_example(name, *args):
    proc = start(["run", f"examples/{name}", *args])
    return proc, Output(proc)


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_against_examples_http():
    proc, out = start_example("http.lua", "0", "--bind", "localhost")
    try:
        port = int(re.search(rb"port (\d+)", out.wait_for(b"port")).group(1))
        got = subprocess.run(["curl", "-sS", "-i", f"http://localhost:{port}/"],
                             capture_output=True, timeout=30)
        assert got.returncode == 0, got.stderr
        head, _, body = got.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200")
        length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
        assert len(body) == length > 0
        missing = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"http://127.0.0.1:{port}/nothing"], capture_output=True, timeout=30)
        assert missing.stdout == b"404"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


@pytest.mark.skipif(not shutil.which("nc"), reason="nc (netcat) is not installed")
def test_nc_against_examples_http():
    proc, out = start_example("http.lua")
    try:
        port = int(re.search(rb"port (\d+)", out.wait_for(b"port")).group(1))
        for _ in (1, 2):
            # -N: shut the sending side down at EOF of stdin (netcat-openbsd), as a
            # user piping a request in does; the reply ends with the server's close
            got = subprocess.run(["nc", "-N", "127.0.0.1", str(port)],
                                 input=b"GET /stats HTTP/1.0\r\n\r\n", capture_output=True,
                                 timeout=30)
            assert got.stdout.startswith(b"HTTP/1.0 200"), got
        bad = subprocess.run(["nc", "-N", "127.0.0.1", str(port)], input=b"HELLO\r\n\r\n",
                             capture_output=True, timeout=30)
        assert bad.stdout.startswith(b"HTTP/1.0 400"), bad
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Drain:
    """A chat member that reads everything it is sent, in a thread."""

    def __init__(self, sock):
        self.sock, self.data, self.closed = sock, bytearray(), False
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            with self.lock:
                self.data += chunk
                del self.data[:-4096]  # keep the tail: what was said last

    def saw(self, needle: bytes) -> bool:
        with self.lock:
            return needle in self.data


@pytest.mark.parametrize("lua", EXAMPLE_LUAS)
def test_chat_drops_a_member_that_never_reads(lua):
    proc, out = start_example("chat.lua", "--lua", lua)
    members = []
    try:
        port = int(re.search(rb"port (\d+)", out.wait_for(b"listening on port")).group(1))

        def join(rcvbuf=None):
            s = socket.socket()
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.connect(("127.0.0.1", port))
            s.settimeout(10)
            members.append(s)
            return s

        join(rcvbuf=4096)  # the stalled member: never reads a byte
        out.wait_for(b"join", count=1)
        listener = Drain(join())
        talker = join()
        out.wait_for(b"join", count=3)
        before = rss_kib(proc.pid)
        line = b"x" * 1000 + b"\n"
        sent = 0
        while b"drop " not in out.pump() and sent < 64 * 1024 * 1024:
            talker.sendall(line * 64)
            sent += len(line) * 64
        assert b"not reading" in out.text, out.text
        assert sent < 8 * 1024 * 1024  # dropped near its 256 KiB backlog, not after megabytes
        # the others carry on, and the server holds nothing for the dropped
        # member however much more is said (16 MiB)
        for n in range(16):
            talker.sendall(line * 1024)
            talker.sendall(b"mark %d\n" % n)
            wait_for(lambda n=n: listener.saw(b"mark %d" % n), what=f"mark {n} at the listener")
        assert not listener.closed
        assert rss_kib(proc.pid) - before < 12 * 1024
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        for s in members:
            s.close()
        proc.kill()


def python_device(port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(20)
    return server


@needs("timers")
@pytest.mark.parametrize("lua", EXAMPLE_LUAS)
def test_reconnect_example_backs_off_reconnects_and_heartbeats(lua):
    port = free_port()
    proc, out = start_example("reconnect.lua", "127.0.0.1", str(port), "0.2", "1", "--lua", lua)
    try:
        # nobody listens: the delays double up to the cap (1 s here)
        out.wait_for(b"retrying in 1 s", count=2)
        delays = re.findall(rb"retrying in ([\d.]+) s", out.text)
        assert delays[:4] == [b"0.25", b"0.5", b"1", b"1"]
        # the device appears late
        device = python_device(port)
        conn, _ = device.accept()
        conn.settimeout(10)
        lines = conn.makefile("rb")
        assert lines.readline() == b"heartbeat 1\n"
        assert lines.readline() == b"heartbeat 2\n"
        conn.sendall(b"status ok\r\n")
        out.wait_for(b"received: status ok")
        # and goes away: the client retries, from the first delay again
        lines.close()  # (the file object holds the socket open too)
        conn.close()
        device.close()
        out.wait_for(b"connected to", count=1)
        text = out.wait_for(b"retrying in", count=len(delays) + 2)
        after = re.findall(rb"retrying in ([\d.]+) s", text.split(b"received: status ok")[1])
        assert after[:2] == [b"0.25", b"0.5"]
        device = python_device(port)  # back again: reconnected, heartbeats go on
        conn, _ = device.accept()
        conn.settimeout(10)
        assert conn.makefile("rb").readline().startswith(b"heartbeat ")
        out.wait_for(b"connected to", count=2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        conn.close()
        device.close()
    finally:
        proc.kill()


STRESS = os.environ.get("LUANET_STRESS") == "1"


@pytest.mark.stress
@needs("grace")
@pytest.mark.parametrize("rate,grace,all_delivered", [(None, "10", True), (2 << 20, "1", False)])
def test_sigterm_during_a_big_reply_to_a_slow_reader(script, rate, grace, all_delivered):
    """The issue's case: SIGTERM while a 50 MiB reply (8 MiB in `make test`)
    is on its way to a reader that reads slowly. Either every byte arrives
    (exit 0), or what could not be sent within the grace is counted on
    stderr (exit 1): what arrived plus what was counted is the whole reply."""
    mib = 50 if STRESS else 8
    proc, client = start_big_writer(script, mib, "--grace", grace)
    try:
        proc.send_signal(signal.SIGTERM)
        got = 0
        while True:
            try:
                data = client.recv(1 << 16)
            except ConnectionResetError:
                break
            if not data:
                break
            got += len(data)
            if rate:
                time.sleep(len(data) / rate)
        code = proc.wait(60)
        err = proc.stderr.read()
        found = DISCARDED.search(err)
        discarded = int(found.group(1)) if found else 0
        assert got + discarded == mib << 20, (got, discarded, err)
        if all_delivered:
            assert code == 0 and discarded == 0, err
        else:
            assert code == 1 and discarded > 0, err
    finally:
        client.close()
        proc.kill()
