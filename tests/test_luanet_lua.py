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
