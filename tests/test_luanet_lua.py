"""luanet-lua (a drop-in for the standalone lua) and luanet/lua_env.py (the
system lua's package paths, LUA_INIT, C modules).

Everything that loads lupa with global symbols or starts luanet-lua runs in a
child process with a timeout: loading C modules changes the whole process
(one Lua version per process), and a hang must not hang the suite. The
system's own lua5.x / luajit and Debian's lua-* packages are the oracle where
they are installed; where not, the test is skipped and says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from luanet import lua_env

TIMEOUT = 60  # safety net for each child process

SYSTEM_LUA = {"5.1": "lua5.1", "5.2": "lua5.2", "5.3": "lua5.3", "5.4": "lua5.4",
              "luajit": "luajit"}


def run_python(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=TIMEOUT, **kw)


def find_c_module(version: str, name: str):
    """The file package.cpath (by lua_env's defaults) finds for ``name``, or None."""
    _, cpath = lua_env.default_paths(version, env=None)
    for template in cpath.split(";"):
        candidate = template.replace("?", name.replace(".", "/"))
        if os.path.isfile(candidate):
            return candidate
    return None


def need_c_modules(version: str, *names: str) -> None:
    missing = [n for n in names if find_c_module(version, n) is None]
    if missing:
        pytest.skip(f"C modules {', '.join(missing)} for Lua {version} not installed "
                    f"(Debian: apt-get install lua-filesystem lua-socket)")


# --------------------------------------------------------------------------
# lua_env.default_paths against the system's lua

ENV_CASES = [
    {},
    {"LUA_PATH": "a;;b;;c", "LUA_CPATH": ";;x"},
    {"LUA_PATH": "x/?.lua;;", "LUA_CPATH": "y/?.so"},
    {"LUA_PATH_5_4": "v;;", "LUA_PATH": "p", "LUA_PATH_5_2": "q;;", "LUA_PATH_5_3": ";;r",
     "LUA_CPATH_5_4": "c54"},
]


@pytest.mark.parametrize("version", list(SYSTEM_LUA))
def test_default_paths_match_the_system_lua(version):
    exe = shutil.which(SYSTEM_LUA[version])
    if exe is None:
        pytest.skip(f"{SYSTEM_LUA[version]} is not installed: nothing to compare with")
    for env in ENV_CASES:
        out = subprocess.run([exe, "-e", "print(package.path) print(package.cpath)"],
                             env={"PATH": os.environ.get("PATH", ""), **env},
                             capture_output=True, text=True, timeout=TIMEOUT)
        assert out.stdout.splitlines() == list(lua_env.default_paths(version, env)), env


def test_double_semicolon_rules_per_version():
    default_54, _ = lua_env.default_paths("5.4", env=None)
    # 5.4: only the first ";;", and no empty entry at the ends
    assert lua_env.default_paths("5.4", {"LUA_PATH": ";;x;;"})[0] == default_54 + ";x;;"
    default_51, _ = lua_env.default_paths("5.1", env=None)
    # 5.1-5.3: every ";;" becomes ";default;"
    assert lua_env.default_paths("5.1", {"LUA_PATH": ";;x;;"})[0] == \
        f";{default_51};x;{default_51};"
    # 5.1 and LuaJIT know no versioned variable; 5.2+ prefer it
    assert lua_env.default_paths("5.1", {"LUA_PATH_5_1": "v", "LUA_PATH": "p"})[0] == "p"
    assert lua_env.default_paths("5.3", {"LUA_PATH_5_3": "v", "LUA_PATH": "p"})[0] == "v"
    # env=None is lua -E: the defaults whatever the environment says
    assert lua_env.default_paths("5.3", None)[0] == lua_env.default_paths("5.3", {})[0]


def test_default_paths_have_the_standard_and_debian_folders():
    path, cpath = lua_env.default_paths("5.4", env=None)
    assert path.split(";")[:2] == ["/usr/local/share/lua/5.4/?.lua",
                                   "/usr/local/share/lua/5.4/?/init.lua"]
    assert "/usr/share/lua/5.4/?.lua" in path.split(";")
    assert any(t.startswith("/usr/lib/") and t.endswith("/lua/5.4/?.so") and t.count("/") == 6
               for t in cpath.split(";")), cpath
    with pytest.raises(ValueError, match="unknown Lua version"):
        lua_env.default_paths("6.0")


def test_init_code_reads_lua_init_as_lua_does():
    env = {"LUA_INIT_5_4": "x = 54", "LUA_INIT": "x = 0", "LUA_INIT_5_1": "x = 51"}
    assert lua_env.init_code("5.4", env) == ("=LUA_INIT_5_4", "x = 54")
    assert lua_env.init_code("5.1", env) == ("=LUA_INIT", "x = 0")
    assert lua_env.init_code("luajit", env) == ("=LUA_INIT", "x = 0")
    assert lua_env.init_code("5.3", {"LUA_INIT": "@init.lua"}) == ("@init.lua", "")
    assert lua_env.init_code("5.3", {}) is None
    assert lua_env.init_code("5.3", None) is None


# --------------------------------------------------------------------------
# C modules in a LuaHost (child processes: global symbols change the process)

@pytest.mark.parametrize("version", ["5.4", "5.1", "luajit"])
@pytest.mark.parametrize("order", ["lua_env first", "host first"])
def test_c_modules_load_in_an_unsandboxed_host(version, order):
    need_c_modules(version, "lfs", "socket.core")
    proc = run_python(f"""
        from luanet import LuaHost, lua_env
        if {order == "lua_env first"}:
            lua_env.import_lupa_module({version!r})
        host = LuaHost(lua={version!r}, sandbox=False)
        lua_env.import_lupa_module({version!r})  # after the host: promoted to global symbols
        lua_env.apply(host, {version!r})
        print(host.eval('require("lfs").currentdir()').decode())
        print(host.eval('require("socket")._VERSION').decode())
        host.close()
    """, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "/"
    assert "LuaSocket" in proc.stdout


def test_a_second_version_gets_no_c_modules_and_does_not_crash():
    need_c_modules("5.4", "lfs")
    need_c_modules("5.1", "lfs")
    proc = run_python("""
        from luanet import LuaHost, lua_env
        lua_env.import_lupa_module("5.4")
        lua_env.import_lupa_module("5.1")
        assert lua_env.c_modules_usable("5.4") and not lua_env.c_modules_usable("5.1")
        h51 = LuaHost(lua="5.1", sandbox=False)
        lua_env.apply(h51, "5.1")
        ok, err = h51.eval('pcall(require, "lfs")')
        assert not ok and b"not found" in err, err
        h51.execute("local t = {} for i = 1, 2000 do t[i] = tostring(i) .. 'x' end")
        h54 = LuaHost(lua="5.4", sandbox=False)
        lua_env.apply(h54, "5.4")
        print(h54.eval('type(require("lfs").attributes)').decode())
        for v in ("5.2", "5.3", "luajit"):  # other versions keep working (without C modules)
            h = LuaHost(lua=v)
            h.execute("local t = {} for i = 1, 2000 do t[i] = tostring(i) .. 'x' end")
            h.close()
        h51.close(); h54.close()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "function"
    assert "C modules disabled for Lua 5.1" in proc.stderr


# --------------------------------------------------------------------------
# luanet-lua, as a real process

def _luanet_lua_command():
    script = os.path.join(os.path.dirname(sys.executable), "luanet-lua")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "luanet.standalone"]  # not installed as a script (yet)


LUANET_LUA = _luanet_lua_command()
PROG = os.path.basename(LUANET_LUA[-1])  # the name in its messages, as lua uses argv[0]


def luanet_lua(*args, stdin="", env=None, lua=None, cwd=None, timeout=TIMEOUT):
    full_env = dict(os.environ)
    full_env.pop("LUA_INIT", None)
    full_env.pop("LUA_INIT_5_4", None)
    if lua is not None:
        full_env["LUANET_LUA"] = lua
    full_env.update(env or {})
    return subprocess.run(LUANET_LUA + list(args), input=stdin, capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def lua_script(tmp_path, text, name="script.lua"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_e_runs_code_and_v_prints_the_version():
    proc = luanet_lua("-e", "print(1 + 1, _VERSION)")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "2\tLua 5.4\n", "")
    proc = luanet_lua("-v")
    assert proc.returncode == 0 and proc.stdout.startswith("Lua 5.4  Copyright"), proc
    proc = luanet_lua("-v", lua="5.1")  # lua5.1 prints its version on stderr
    assert proc.returncode == 0 and proc.stderr.startswith("Lua 5.1  Copyright"), proc
    proc = luanet_lua("-e", "print(_VERSION, type(jit))", lua="luajit")
    assert proc.stdout == "Lua 5.1\ttable\n", proc


def test_bad_options_exit_1_with_lua_s_usage():
    proc = luanet_lua("-e")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{PROG}: '-e' needs argument\nusage: {PROG} [options]"), proc.stderr
    proc = luanet_lua("-x")
    assert proc.returncode == 1 and f"{PROG}: unrecognized option '-x'" in proc.stderr
    proc = luanet_lua("-e", "print(1)", lua="6.0")
    assert proc.returncode == 1 and "LUANET_LUA='6.0'" in proc.stderr and proc.stdout == ""


ARG_DUMP = """
local out = {}
for i = -3, #arg do out[#out + 1] = tostring(i) .. "=" .. tostring(arg[i]) end
print(table.concat(out, " "))
print("...", select("#", ...), ...)
"""


def test_arg_is_set_as_lua_sets_it(tmp_path):
    script = lua_script(tmp_path, ARG_DUMP)
    proc = luanet_lua("-e", "x = 1", str(script), "a", "b c")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"-3={LUANET_LUA[-1]} -2=-e -1=x = 1 0={script} 1=a 2=b c"
    assert lines[1] == "...\t2\ta\tb c"
    system = shutil.which("lua5.4")
    if system:  # the same table as the real lua, but for the interpreter's name
        real = subprocess.run([system, "-e", "x = 1", str(script), "a", "b c"], capture_output=True,
                              text=True, timeout=TIMEOUT)
        assert real.stdout.replace(system, LUANET_LUA[-1]) == proc.stdout
    # without a script: arg[0] is the interpreter, the options are positive
    proc = luanet_lua("-e", "print(arg[0] == arg[0], arg[1], arg[2], arg[-1])")
    assert proc.stdout == "true\t-e\tprint(arg[0] == arg[0], arg[1], arg[2], arg[-1])\tnil\n"


def test_lua_init_and_E(tmp_path):
    assert luanet_lua("-e", "print(x)", env={"LUA_INIT": "x = 5"}).stdout == "5\n"
    both = {"LUA_INIT": "x = 5", "LUA_INIT_5_4": "x = 54"}
    assert luanet_lua("-e", "print(x)", env=both).stdout == "54\n"
    assert luanet_lua("-e", "print(x)", env=both, lua="5.1").stdout == "5\n"
    init = lua_script(tmp_path, "x = 'from file'", "init.lua")
    assert luanet_lua("-e", "print(x)", env={"LUA_INIT": f"@{init}"}).stdout == "from file\n"
    assert luanet_lua("-E", "-e", "print(x)", env=both).stdout == "nil\n"
    proc = luanet_lua("-e", "print(x)", env={"LUA_INIT": "error('in init')"})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"{PROG}: LUA_INIT:1: in init"), proc.stderr


def test_lua_path_and_default_paths(tmp_path):
    (tmp_path / "mymod.lua").write_text("return { answer = 42 }")
    code = "print(require('mymod').answer)"
    assert luanet_lua("-e", code, env={"LUA_PATH": f"{tmp_path}/?.lua"}).stdout == "42\n"
    assert luanet_lua("-e", code, cwd=str(tmp_path)).stdout == "42\n"  # ./?.lua by default
    expected_path, expected_cpath = lua_env.default_paths("5.1", {})
    proc = luanet_lua("-E", "-e", "print(package.path) print(package.cpath)", lua="5.1",
                      env={"LUA_PATH": "nowhere/?.lua"})
    assert proc.stdout == f"{expected_path}\n{expected_cpath}\n"


def test_stdin_as_the_script():
    proc = luanet_lua("-", "a", "b", stdin="print('stdin', ...)")
    assert proc.stdout == "stdin\ta\tb\n", proc.stderr
    proc = luanet_lua(stdin="print('piped')")  # no script, stdin not a terminal: run it
    assert proc.stdout == "piped\n"
    proc = luanet_lua("--", "-", stdin="print('not run')")  # after --, "-" is a file name
    assert proc.returncode == 1 and proc.stdout == "" and "cannot open -" in proc.stderr


def test_interactive_mode_reads_statements_and_expressions():
    proc = luanet_lua("-i", stdin="x = 20 + 1\nx\n=x * 2\nfor i = 1, 2 do\nprint('loop', i)\nend\n"
                                  "error('oops')\nprint('after')\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "21\n" in out and "42\n" in out and "loop\t1\n" in out and "loop\t2\n" in out
    assert "after\n" in out and "oops" in proc.stderr


def test_errors_and_exit_codes_as_lua(tmp_path):
    lua_script(tmp_path, "local function f() error('deep') end\nf()\n")
    proc = luanet_lua("script.lua", cwd=str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"{PROG}: script.lua:1: deep\nstack traceback:\n\t[C]: in function "
                           "'error'\n\tscript.lua:1: in local 'f'\n\tscript.lua:2: in main chunk\n"
                           "\t[C]: in ?\n")
    for version, exe in SYSTEM_LUA.items():  # the same as each real lua, where installed
        system = shutil.which(exe)
        if system is None or version == "luajit":  # (luajit ends with a C address)
            continue
        for args in (["script.lua"], ["-e", "error()"], ["-e", "error({})"], ["-e", "error(7)"]):
            real = subprocess.run([exe] + args, capture_output=True, text=True,
                                  timeout=TIMEOUT, cwd=str(tmp_path))
            ours = luanet_lua(*args, lua=version, cwd=str(tmp_path))
            assert (ours.returncode, ours.stderr) == \
                (real.returncode, real.stderr.replace(exe + ":", PROG + ":")), (version, args)
    proc = luanet_lua("-e", "error({})")
    assert proc.stderr.startswith(f"{PROG}: (error object is a table value)\n")
    proc = luanet_lua("-e", "error(setmetatable({}, {__tostring = function() return 'TS' end}))")
    assert proc.stderr == f"{PROG}: TS\n"
    proc = luanet_lua("-e", "x = = 1")
    assert proc.returncode == 1 and proc.stderr.startswith(f"{PROG}: (command line):1:")
    proc = luanet_lua(str(tmp_path / "missing.lua"))
    assert proc.returncode == 1 and "cannot open" in proc.stderr and "missing.lua" in proc.stderr
    assert luanet_lua("-e", "print(1)", "-e", "error('second')").stdout == "1\n"


@pytest.mark.parametrize("code, status", [("os.exit(3)", 3), ("os.exit(true)", 0),
                                          ("os.exit(false)", 1), ("os.exit()", 0)])
def test_os_exit_flushes_and_sets_the_status(code, status):
    proc = luanet_lua("-e", f"io.write('partial') print(' line') io.write('tail') {code}")
    assert (proc.returncode, proc.stdout) == (status, "partial line\ntail")


def test_print_and_io_write_keep_their_order():
    proc = luanet_lua("-e", "io.write('a') print('b') io.write('c\\n') print(nil, 1, true)")
    assert proc.stdout == "ab\nc\nnil\t1\ttrue\n"


SERVER = """
local server = net.TcpServer.new()
assert(server:listen(0))
print("port " .. server.port)
io.stdout:flush()
server.new_connection_handler = function(s)
  local sock = s:next_pending_connection()
  sock.ready_read_handler = function(c)
    c:write_string("echo:" .. c:read_all_string())
    c:disconnect()
    server:close()
  end
end
"""


def test_a_script_that_listens_serves_a_client_then_exits(tmp_path):
    import socket
    script = lua_script(tmp_path, SERVER)
    proc = subprocess.Popen(LUANET_LUA + [str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the script's top level has returned: serving now
        assert line.startswith("port "), (line, proc.stderr.read() if proc.poll() is not None else "")
        with socket.create_connection(("127.0.0.1", int(line.split()[1])), timeout=TIMEOUT) as c:
            c.sendall(b"hello")
            received = b""
            while True:
                chunk = c.recv(100)
                if not chunk:
                    break
                received += chunk
        assert received == b"echo:hello"
        assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("version", ["5.4", "5.1", "luajit"])
def test_c_modules_load_in_luanet_lua(version):
    need_c_modules(version, "lfs", "socket.core")
    proc = luanet_lua("-l", "lfs", "-e", "print(lfs.currentdir(), require('socket')._VERSION)",
                      lua=version, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("/\tLuaSocket")


COMPAT_PROBE = """
local out = {}
local function p(...)
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  out[#out + 1] = table.concat(t, " ")
end
if math.pow then
  p(math.pow(2, 10), math.atan2(1, 2), math.log10(1000),
    string.format("%.12g %.12g %.12g", math.cosh(1.5), math.sinh(-0.7), math.tanh(0.3)),
    math.frexp(1234.5), select(2, math.frexp(-0.001)), math.ldexp(0.75, 12), math.ldexp(0.5, -1073))
end
if bit32 then
  p(bit32.band(0xFF0F, 0xF0F0, 0x1234), bit32.bor(1, 2, 4), bit32.bxor(5, 3), bit32.bnot(0),
    bit32.btest(1, 2), bit32.lshift(1, 31), bit32.lshift(1, 32), bit32.rshift(1, -3),
    bit32.arshift(0x80000000, 4), bit32.arshift(-1, 40), bit32.lrotate(0x80000001, 1),
    bit32.rrotate(0x80000001, 1), bit32.extract(0xABCD, 4, 8), bit32.replace(0, 0xF, 28, 4),
    bit32.band(2^32 + 5))
  p(pcall(bit32.extract, 1, 30, 4))
end
if table.maxn then
  p(table.maxn({1, 2, [10] = 1}), loadstring("return 1")(), unpack({1, 2}),
    package.loaders == package.searchers)
  package.preload["my.mod"] = function()
    module("my.mod", package.seeall)
    function hello() return type(print) end
  end
  local m = require("my.mod")
  p(m.hello(), m._NAME, m._PACKAGE, my.mod == m)
end
local t = setmetatable({}, {__ipairs = function(t)
  return function(_, i) if i < 3 then return i + 1, "v" end end, t, 0 end})
local n = 0
for _ in ipairs(t) do n = n + 1 end
p("ipairs", n)
local f = assert(io.popen("printf 'one\\ntwo\\n42 7.5\\nrest'"))
p(io.type(f), f:read("*l"), f:read("*l"), f:read("*n", "*n"), f:read("*a"), f:read("*a"))
p(f:close())
p(io.popen("exit 3"):close())
p(io.type(f), tostring(f), pcall(f.read, f))
local w = io.popen("cat", "w")
w:write("to cat ", 1, "\\n")
p(w:close())
print(table.concat(out, "\\n"))
"""


@pytest.mark.parametrize("version", ["5.4", "5.3", "5.2", "5.1", "luajit"])
def test_compat_functions_and_popen_match_the_system_lua(tmp_path, version):
    """What Debian's lua5.x has through its compatibility options (bit32,
    math.pow, module, __ipairs ...) and io.popen, which lupa's Lua lacks."""
    script = lua_script(tmp_path, COMPAT_PROBE)
    ours = luanet_lua(str(script), lua=version)
    assert ours.returncode == 0, ours.stderr
    if version == "5.4":  # without an oracle too
        lines = ours.stdout.splitlines()
        assert lines[0] == "to cat 1"  # cat writes at once, the probe prints at its end
        assert lines[1].startswith("1024.0 0.46364760900081 3.0 2.35240961524")
        assert "\nfile one two 42 \nrest \n" in ours.stdout  # (the 2nd number: cut off by p)
        assert "true exit 0\nnil exit 3\nclosed file file (closed) false" in ours.stdout
    exe = shutil.which(SYSTEM_LUA[version])
    if exe is None:
        pytest.skip(f"{SYSTEM_LUA[version]} is not installed: nothing to compare with")
    real = subprocess.run([exe, str(script)], capture_output=True, text=True, timeout=TIMEOUT)
    assert ours.stdout == real.stdout


# --------------------------------------------------------------------------
# busted --lua=luanet-lua (Debian's lua-busted)

PLAIN_SPEC = """
describe("plain", function()
  it("adds", function() assert.are.equal(4, 2 + 2) end)
  it("compares tables", function() assert.are.same({ 1 }, { 2 }) end)
  pending("later")
  it("errors", function() error("oops") end)
  describe("nested", function()
    local n
    before_each(function() n = 1 end)
    it("spies", function()
      local s = spy.new(function() end)
      s(n)
      assert.spy(s).was.called_with(1)
    end)
  end)
end)
"""

NET_SPEC = """
describe("net under busted", function()
  it("echoes over 127.0.0.1", function()
    local net = require("net")
    local server = net.TcpServer.new()
    assert.is_true(server:listen(0))
    server.new_connection_handler = function(s)
      local c = s:next_pending_connection()
      c.ready_read_handler = function(c) c:write_string(c:read_all_string()) end
    end
    local client, got = net.TcpSocket.new(), ""
    client.ready_read_handler = function(c) got = got .. c:read_all_string() end
    client.connected_handler = function(c) c:write_string("ping") end
    client:connect("127.0.0.1", server.port)
    assert.is_true(luanet.run_until(function() return got == "ping" end, 10))
    client:abort()
    server:close()
  end)
end)
"""


def _busted(spec_dir, *args, lua=None):
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(LUANET_LUA[0]) + os.pathsep + env.get("PATH", "")
    if lua is not None:
        env["LUANET_LUA"] = lua
    return subprocess.run(["busted", "-o", "TAP", *args], cwd=str(spec_dir), capture_output=True,
                          text=True, env=env, timeout=TIMEOUT * 2)


def _tap_results(output):
    return [line for line in output.splitlines() if line.startswith(("ok ", "not ok "))]


@pytest.mark.parametrize("version", ["5.4", "5.1"])
def test_busted_runs_under_luanet_lua(tmp_path, version):
    if shutil.which("busted") is None:
        pytest.skip("busted is not installed (Debian: apt-get install lua-busted)")
    if LUANET_LUA[0] == sys.executable:
        pytest.skip("luanet-lua is not installed as a console script (pip install -e .)")
    busted_dir = f"/usr/share/lua/{version}/busted"
    if not os.path.isdir(busted_dir):
        pytest.skip(f"busted has no modules for Lua {version} here ({busted_dir})")
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "plain_spec.lua").write_text(PLAIN_SPEC)
    (spec / "net_spec.lua").write_text(NET_SPEC)
    ours = _busted(tmp_path, "--lua=luanet-lua", lua=version)
    assert _tap_results(ours.stdout) == [
        "ok 1 - net under busted echoes over 127.0.0.1",
        "ok 2 - plain adds",
        "not ok 3 - plain compares tables",
        "ok 4 - # SKIP plain later",
        "not ok 5 - plain errors",
        "ok 6 - plain nested spies",
    ], ours.stdout + ours.stderr
    assert ours.returncode == 1, ours.stderr  # busted exits 1 when anything failed
    system = shutil.which(SYSTEM_LUA[version])
    if system:  # the plain spec gives real busted on real lua the same results
        (spec / "net_spec.lua").unlink()
        real = _busted(tmp_path, f"--lua={system}")
        ours = _busted(tmp_path, "--lua=luanet-lua", lua=version)
        assert _tap_results(real.stdout) == _tap_results(ours.stdout)
        assert real.returncode == ours.returncode
