"""The environment of the system's standalone ``lua``, for trusted Lua code.

Used by ``luanet-lua`` (the drop-in for ``lua``) and by the spec runner, whose
spec files get busted's environment: ``package.path``/``package.cpath`` as the
system's ``lua5.x`` has them (the standard folders plus Debian's), read from
``LUA_PATH``/``LUA_CPATH`` as ``lua`` reads them, ``LUA_INIT``, and C modules
(lfs, lpeg, luasocket ...) that load.

C modules and the Lua C API
---------------------------
A C module (``/usr/lib/<multiarch>/lua/5.4/lfs.so``) is not linked against a
Lua library: it expects the interpreter that loads it to export the Lua C API
(``lua_gettop`` ...). lupa links Lua into its extension module, whose symbols
Python loads as local to it, so a C module would not find them
("undefined symbol: lua_gettop"). :func:`import_lupa_module` loads lupa's
module with ``RTLD_GLOBAL``, which exports them.

One Lua version per process that loads C modules: the global symbol scope
holds one ``lua_gettop``, that of the first lupa module loaded globally. A
5.1 module bound to 5.4's functions would corrupt memory, so :func:`apply`
leaves ``package.cpath`` empty (C modules are then "not found", no crash)
when the global Lua C API is another version's. ``luanet-lua`` reads its
one version from ``LUANET_LUA``; a spec run over several versions with C
modules runs each version in its own process.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import platform
import sys
import sysconfig
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Tuple

log = logging.getLogger("luanet")

# Kept equal to bridge.LUA_MODULES (not imported from there: importing the
# bridge must not be a condition for loading lupa the right way).
LUPA_MODULES = {
    "5.1": "lupa.lua51", "5.2": "lupa.lua52", "5.3": "lupa.lua53",
    "5.4": "lupa.lua54", "5.5": "lupa.lua55", "luajit": "lupa.luajit21",
}


def _check_version(version: str) -> None:
    if version not in LUPA_MODULES:
        raise ValueError(f"unknown Lua version {version!r}; choose one of {', '.join(LUPA_MODULES)}")


def import_lupa_module(version: str) -> ModuleType:
    """lupa's module for ``version`` ("5.1" .. "5.5", "luajit"), loaded so
    that C modules find the Lua C API in it (its symbols made global, as
    ``sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW)`` around the import
    would).

    Call it before the first LuaHost of that version, or after: the bridge
    imports the module through importlib, which hands out the one loaded
    here, and a module imported before is promoted to global symbols with
    ``dlopen(RTLD_NOLOAD | RTLD_GLOBAL)``.

    Two Lua versions must not share a process that loads C modules (see the
    module's docstring): the first version loaded this way owns the global
    Lua C API, and :func:`c_modules_usable` says whether it is ``version``'s.
    Worse, a lupa module loaded *after* one with global symbols would bind
    its own calls to that other Lua and crash; so every other lupa module is
    imported first, with local symbols, and stays usable without C modules.
    """
    _check_version(version)
    name = LUPA_MODULES[version]
    if not hasattr(sys, "setdlopenflags"):  # Windows: C modules link lua5x.dll themselves
        return importlib.import_module(name)
    _import_all_locally()
    module = sys.modules.get(name)
    if module is None:  # this lupa has no such version: let the import say so
        module = importlib.import_module(name)
    _promote_to_global(module)
    return module


def _import_all_locally() -> None:
    import pkgutil
    lupa = importlib.import_module("lupa")
    for info in pkgutil.iter_modules(lupa.__path__):
        if info.name.startswith("lua"):
            try:
                importlib.import_module("lupa." + info.name)
            except ImportError:  # pragma: no cover - a broken build of one version
                pass


def _promote_to_global(module: ModuleType) -> None:
    path = getattr(module, "__file__", None)
    noload = getattr(os, "RTLD_NOLOAD", None)
    if not path or noload is None:  # pragma: no cover - not glibc/macOS
        return
    import ctypes
    try:
        ctypes.CDLL(path, mode=noload | os.RTLD_GLOBAL | os.RTLD_NOW)
    except OSError:  # pragma: no cover - dlopen refuses: C modules will say what is missing
        pass


def c_modules_usable(version: str) -> bool:
    """True when C modules loaded now would bind to ``version``'s Lua: the
    process's global ``lua_gettop`` is the one in lupa's module for it."""
    _check_version(version)
    module = sys.modules.get(LUPA_MODULES[version])
    if module is None or not hasattr(sys, "setdlopenflags"):
        return module is not None
    import ctypes
    try:
        own = ctypes.CDLL(module.__file__, mode=getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_NOW)
        scope = ctypes.CDLL(None)
        return ctypes.cast(own.lua_gettop, ctypes.c_void_p).value == \
            ctypes.cast(scope.lua_gettop, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------- paths

def _multiarch() -> str:
    arch = sysconfig.get_config_var("MULTIARCH")
    if arch:
        return str(arch)
    machine = platform.machine() or "x86_64"
    return f"{machine}-linux-gnu" if sys.platform.startswith("linux") else machine


def _luajit_share() -> Optional[str]:
    """LuaJIT's own folder of jit.* modules (Debian: /usr/share/luajit-2.1.0-beta3,
    newer: /usr/share/luajit-2.1); None where there is none."""
    for root in ("/usr/share", "/usr/local/share"):
        found = sorted(glob.glob(f"{root}/luajit-2.1*"))
        if found:
            return found[-1]
    return None


def _builtin_paths(version: str) -> Tuple[str, str]:
    """The compiled-in defaults of Debian's lua5.x / luajit (upstream's
    /usr/local folders, then the distribution's), in their order."""
    v = "5.1" if version == "luajit" else version
    local_share, local_lib = f"/usr/local/share/lua/{v}/", f"/usr/local/lib/lua/{v}/"
    share, lib = f"/usr/share/lua/{v}/", f"/usr/lib/lua/{v}/"
    arch_lib = f"/usr/lib/{_multiarch()}/lua/{v}/"
    if version == "luajit":
        jit = _luajit_share()
        path = ["./?.lua"] + ([jit + "/?.lua"] if jit else []) + [
            local_share + "?.lua", local_share + "?/init.lua", share + "?.lua", share + "?/init.lua"]
        cpath = ["./?.so", local_lib + "?.so", arch_lib + "?.so", local_lib + "loadall.so"]
        return ";".join(path), ";".join(cpath)
    lua_dirs = [local_share + "?.lua", local_share + "?/init.lua", local_lib + "?.lua",
                local_lib + "?/init.lua", share + "?.lua", share + "?/init.lua"]
    c_dirs = [local_lib + "?.so", arch_lib + "?.so", lib + "?.so", local_lib + "loadall.so"]
    if version == "5.1":
        return ";".join(["./?.lua"] + lua_dirs), ";".join(["./?.so"] + c_dirs)
    current = ["./?.lua"] if version == "5.2" else ["./?.lua", "./?/init.lua"]
    return ";".join(lua_dirs + current), ";".join(c_dirs + ["./?.so"])


def _env_names(version: str, base: str) -> Tuple[str, ...]:
    """Environment variables lua reads for ``base`` (LUA_PATH, LUA_CPATH,
    LUA_INIT), first found wins: 5.2 and later try LUA_PATH_5_x first."""
    if version in ("5.1", "luajit"):
        return (base,)
    return (f"{base}_{version.replace('.', '_')}", base)


def _getenv(version: str, base: str, env: Mapping[str, str]) -> Optional[str]:
    for name in _env_names(version, base):
        value = env.get(name)
        if value is not None:
            return value
    return None


def _expand(version: str, value: str, default: str) -> str:
    """``;;`` in a LUA_PATH means the default path, as each lua reads it."""
    if version in ("5.4", "5.5"):
        # 5.4: the first ";;" only, with no empty entry left at either end
        at = value.find(";;")
        if at < 0:
            return value
        prefix, suffix = value[:at], value[at + 2:]
        return (prefix + ";" if prefix else "") + default + (";" + suffix if suffix else "")
    # 5.1-5.3, LuaJIT: every ";;" becomes ";default;"
    return value.replace(";;", ";\1;").replace("\1", default)


def default_paths(version: str, env: Optional[Mapping[str, str]] = os.environ,
                  ) -> Tuple[str, str]:
    """``(package.path, package.cpath)`` exactly as the system's standalone
    ``lua<version>`` (or ``luajit``) sets them: the compiled-in defaults, or
    ``LUA_PATH``/``LUA_CPATH`` (5.2+: their ``_5_x`` forms first) with ``;;``
    standing for the default. ``env=None`` ignores the environment (``lua -E``)."""
    _check_version(version)
    path, cpath = _builtin_paths(version)
    if env is None:
        return path, cpath
    results = []
    for base, default in (("LUA_PATH", path), ("LUA_CPATH", cpath)):
        value = _getenv(version, base, env)
        results.append(default if value is None else _expand(version, value, default))
    return results[0], results[1]


def init_code(version: str, env: Optional[Mapping[str, str]] = os.environ,
              ) -> Optional[Tuple[str, str]]:
    """What lua runs before anything else: ``(chunk_name, text)`` from
    ``LUA_INIT_5_x``/``LUA_INIT``, or ``("@file", "")`` for the ``@file`` form
    (the caller loads the file); None when unset or ``env`` is None."""
    _check_version(version)
    if env is None:
        return None
    for name in _env_names(version, "LUA_INIT"):
        value = env.get(name)
        if value is not None:
            if value.startswith("@"):
                return value, ""
            return "=" + name, value
    return None


def _to_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def apply(target: Any, version: str, env: Optional[Mapping[str, str]] = os.environ) -> None:
    """Set ``package.path``/``package.cpath`` of an unsandboxed LuaHost (or a
    lupa LuaRuntime) to :func:`default_paths`. ``package.cpath`` stays empty
    when C modules would bind to another Lua version (see the module's
    docstring), so ``require`` of a C module says "not found" instead of
    crashing the process."""
    path, cpath = default_paths(version, env)
    if not c_modules_usable(version):
        log.warning("C modules disabled for Lua %s: the Lua C API of this process "
                    "belongs to another Lua (one version per process loads C modules)", version)
        cpath = ""
    lua_globals = target.globals
    if callable(lua_globals):  # a lupa LuaRuntime
        lua_globals = lua_globals()
    package = lua_globals[b"package"]
    package[b"path"] = _to_bytes(path)
    package[b"cpath"] = _to_bytes(cpath)


# ---------------------------------------------------------------- compatibility
# Debian builds lua5.2 with LUA_COMPAT_ALL, lua5.3 with LUA_COMPAT_5_2 and
# lua5.4 with LUA_COMPAT_5_3; lupa builds its Luas without them. Code that
# runs on the system's lua (busted suites among it) uses these, so trusted
# hosts get them back: written here in Lua, each only where it is missing.

_COMPAT_MATH = r"""
local math = math
local exp, floor, abs, huge = math.exp, math.floor, math.abs, math.huge
math.pow = math.pow or function(x, y) return x ^ y end
math.atan2 = math.atan2 or function(y, x) return math.atan(y, x) end
math.log10 = math.log10 or function(x) return math.log(x, 10) end
math.cosh = math.cosh or function(x) return (exp(x) + exp(-x)) / 2 end
math.sinh = math.sinh or function(x)
  if abs(x) < 1e-5 then return x + x * x * x / 6 end
  return (exp(x) - exp(-x)) / 2
end
math.tanh = math.tanh or function(x)
  if x > 20 then return 1.0 elseif x < -20 then return -1.0 end
  if abs(x) < 1e-5 then return x - x * x * x / 3 end
  local e = exp(2 * x)
  return (e - 1) / (e + 1)
end
math.ldexp = math.ldexp or function(m, e)
  e = math.tointeger(e) or error("bad argument #2 to 'ldexp' (number has no integer representation)", 2)
  m = m + 0.0
  while e > 1000 do m, e = m * 2.0 ^ 1000, e - 1000 end
  while e < -1000 do m, e = m * 2.0 ^ -1000, e + 1000 end
  return m * 2.0 ^ e
end
math.frexp = math.frexp or function(x)
  x = x + 0.0
  if x == 0 or x ~= x or x == huge or x == -huge then return x, 0 end
  local e = floor(math.log(abs(x), 2)) + 1
  local m = math.ldexp(x, -e)
  while abs(m) >= 1 do m, e = m / 2, e + 1 end
  while abs(m) < 0.5 do m, e = m * 2, e - 1 end
  return m, math.tointeger(e) or e
end
"""

_COMPAT_52 = r"""
loadstring = loadstring or load
unpack = unpack or table.unpack
math.log10 = math.log10 or function(x) return math.log(x, 10) end
table.maxn = table.maxn or function(t)
  local max = 0
  for k in pairs(t) do
    if type(k) == "number" and k > max then max = k end
  end
  return max
end
package.loaders = package.loaders or package.searchers
package.seeall = package.seeall or function(module)
  local mt = getmetatable(module)
  if mt == nil then mt = {}; setmetatable(module, mt) end
  mt.__index = _G
end
module = module or function(modname, ...)
  local loaded = package.loaded
  local mod = loaded[modname]
  if type(mod) ~= "table" then
    mod = _G
    for part in modname:gmatch("[^.]+") do
      local t = rawget(mod, part)
      if t == nil then t = {}; rawset(mod, part, t)
      elseif type(t) ~= "table" then error("name conflict for module '" .. modname .. "'", 2) end
      mod = t
    end
    loaded[modname] = mod
  end
  if mod._NAME == nil then
    mod._M, mod._NAME = mod, modname
    mod._PACKAGE = modname:match("^(.*%.)[^.]*$") or ""
  end
  local info = debug.getinfo(2, "f")
  if info == nil or debug.getinfo(2, "S").what == "C" then
    error("'module' not called from a Lua function", 2)
  end
  debug.setupvalue(info.func, 1, mod)   -- the caller's _ENV
  for i = 1, select("#", ...) do (select(i, ...))(mod) end
end
"""

_COMPAT_53 = r"""
local raw_ipairs = ipairs
ipairs = function(t)                    -- LUA_COMPAT_IPAIRS: __ipairs
  local mt = debug.getmetatable(t)
  local handler = mt and rawget(mt, "__ipairs")
  if handler ~= nil then
    local f, s, i = handler(t)
    return f, s, i
  end
  return raw_ipairs(t)
end
if bit32 == nil then
  local ALL = 0xFFFFFFFF
  local function u(x, i, name)
    local n = math.tointeger(x)
    if n == nil then
      if type(x) ~= "number" and tonumber(x) == nil then
        error(("bad argument #%d to 'bit32.%s' (number expected, got %s)"):format(i, name,
              x == nil and "no value" or type(x)), 3)
      end
      n = math.tointeger(tonumber(x))
      if n == nil then
        error(("bad argument #%d to 'bit32.%s' (number has no integer representation)"):format(i, name), 3)
      end
    end
    return n & ALL
  end
  local function int(x, i, name)
    local n = math.tointeger(x) or math.tointeger(tonumber(x) or nil)
    if n == nil then error(("bad argument #%d to 'bit32.%s' (number expected)"):format(i, name), 3) end
    return n
  end
  local function shift(r, i)
    if i < 0 then
      if i <= -32 then return 0 end
      return r >> -i
    end
    if i >= 32 then return 0 end
    return (r << i) & ALL
  end
  local function fold(name, init, op)
    return function(...)
      local r = init
      for i = 1, select("#", ...) do r = op(r, u((select(i, ...)), i, name)) end
      return r
    end
  end
  local band = fold("band", ALL, function(a, b) return a & b end)
  local function fieldargs(f, w, name)
    if f < 0 then error("bad argument #2 to 'bit32." .. name .. "' (field cannot be negative)", 3) end
    if w < 1 then error("bad argument #3 to 'bit32." .. name .. "' (width must be positive)", 3) end
    if f + w > 32 then error("trying to access non-existent bits", 3) end
    return ((1 << w) - 1) & ALL
  end
  bit32 = {
    band = band,
    bor = fold("bor", 0, function(a, b) return a | b end),
    bxor = fold("bxor", 0, function(a, b) return a ~ b end),
    btest = function(...) return band(...) ~= 0 end,
    bnot = function(x) return (~u(x, 1, "bnot")) & ALL end,
    lshift = function(x, d) return shift(u(x, 1, "lshift"), int(d, 2, "lshift")) end,
    rshift = function(x, d) return shift(u(x, 1, "rshift"), -int(d, 2, "rshift")) end,
    arshift = function(x, d)
      local r, i = u(x, 1, "arshift"), int(d, 2, "arshift")
      if i < 0 or r & 0x80000000 == 0 then return shift(r, -i) end
      if i >= 32 then return ALL end
      return ((r >> i) | ~(ALL >> i)) & ALL
    end,
    lrotate = function(x, d)
      local r, i = u(x, 1, "lrotate"), int(d, 2, "lrotate") & 31
      return ((r << i) | (r >> (32 - i))) & ALL
    end,
    rrotate = function(x, d)
      local r, i = u(x, 1, "rrotate"), (-int(d, 2, "rrotate")) & 31
      return ((r << i) | (r >> (32 - i))) & ALL
    end,
    extract = function(n, f, w)
      local r = u(n, 1, "extract")
      f, w = int(f, 2, "extract"), w == nil and 1 or int(w, 3, "extract")
      return (r >> f) & fieldargs(f, w, "extract")
    end,
    replace = function(n, v, f, w)
      local r, value = u(n, 1, "replace"), u(v, 2, "replace")
      f, w = int(f, 3, "replace"), w == nil and 1 or int(w, 4, "replace")
      local m = fieldargs(f, w, "replace")
      return ((r & ~(m << f)) | ((value & m) << f)) & ALL
    end,
  }
  package.loaded.bit32 = bit32
end
"""

_COMPAT = {"5.2": [_COMPAT_52], "5.3": [_COMPAT_53, _COMPAT_MATH], "5.4": [_COMPAT_MATH],
           "5.5": [_COMPAT_MATH]}


def install_compat(target: Any, version: str) -> None:
    """Give an unsandboxed LuaHost what Debian's ``lua5.x`` has through its
    compatibility options and lupa's Lua lacks: 5.2's ``loadstring``,
    ``unpack``, ``module``, ``table.maxn``, ``math.log10``,
    ``package.loaders``/``seeall``; 5.3's ``bit32`` and ``__ipairs``; 5.3 and
    5.4's ``math.pow``, ``atan2``, ``cosh``, ``sinh``, ``tanh``, ``frexp``,
    ``ldexp``, ``log10``. Nothing on 5.1 and LuaJIT (none missing there)."""
    _check_version(version)
    for chunk in _COMPAT.get(version, ()):
        target.execute(chunk)


# ---------------------------------------------------------------- io.popen
# lupa builds Lua without io.popen ("'popen' not supported"). Trusted hosts
# get one: the process runs under /bin/sh as popen(3) runs it; Lua sees a
# file object with read/lines/write/flush/close/setvbuf/seek, and io.type
# knows it. close returns what each Lua's close of a popen file returns.

_POPEN = r"""
return function(spawn, op, version)
  local select, type, tostring, tonumber, error = select, type, tostring, tonumber, error
  local unpack = table.unpack or unpack
  local methods, mt = {}, { __name = "FILE*" }
  mt.__index = methods
  local old_close = version == "5.1" or version == "luajit"
  local star_only = version == "5.1" or version == "5.2"   -- read("*l"), not read("l")
  local popen_name = (version == "5.1" or version == "5.2") and "popen" or "io.popen"

  local function check(f, name)
    if getmetatable(f) ~= mt then
      error("bad argument #1 to '" .. name .. "' (FILE* expected, got " .. type(f) .. ")", 3)
    end
    if f.closed then error("attempt to use a closed file", 3) end
  end

  local function read1(f, fmt, i)
    if type(fmt) == "number" then return op(f.handle, "count", fmt) end
    local c = type(fmt) == "string" and fmt:gsub("^%*", ""):sub(1, 1) or ""
    if star_only and (fmt:sub(1, 1) ~= "*" or (version == "5.1" and c == "L")) then
      error("bad argument #" .. i .. " to 'read' (invalid " ..
            (version == "5.1" and "format" or "option") .. ")", 3)
    end
    if c == "l" or c == "L" then return op(f.handle, "line", c == "L")
    elseif c == "a" then return op(f.handle, "all")
    elseif c == "n" then
      local s = op(f.handle, "number")
      return s and tonumber(s)
    end
    error("bad argument #" .. i .. " to 'read' (invalid format)", 3)
  end

  function methods.read(f, ...)
    check(f, "read")
    local n = select("#", ...)
    if n == 0 then return (read1(f, "*l", 1)) end
    local out = {}
    for i = 1, n do
      out[i] = read1(f, (select(i, ...)), i)
      if out[i] == nil then return unpack(out, 1, i) end
    end
    return unpack(out, 1, n)
  end

  function methods.lines(f, ...)
    check(f, "lines")
    local formats, n = { ... }, select("#", ...)
    return function()
      if f.closed then error("file is already closed", 2) end
      if n == 0 then return (read1(f, "*l", 1)) end
      return f:read(unpack(formats, 1, n))
    end
  end

  function methods.write(f, ...)
    check(f, "write")
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if type(v) ~= "string" and type(v) ~= "number" then
        error("bad argument #" .. i .. " to 'write' (string expected, got " .. type(v) .. ")", 2)
      end
      local ok, err = op(f.handle, "write", tostring(v))
      if not ok then return nil, err end
    end
    return f
  end

  function methods.flush(f)
    check(f, "flush")
    op(f.handle, "flush")
    return f
  end

  function methods.setvbuf(f) check(f, "setvbuf") return true end
  function methods.seek(f) check(f, "seek") return nil, "Illegal seek", 29 end

  function methods.close(f)
    check(f, "close")
    f.closed = true
    local how, code = op(f.handle, "close")
    if old_close then return true end
    if how == "exit" and code == 0 then return true, how, code end
    return nil, how, code
  end

  local function collect(f)
    if not f.closed then f.closed = true; pcall(op, f.handle, "close") end
  end
  mt.__gc, mt.__close = collect, collect
  mt.__tostring = function(f)
    return f.closed and "file (closed)" or ("file (popen " .. f.handle .. ")")
  end

  io.popen = function(prog, mode)
    if type(prog) ~= "string" and type(prog) ~= "number" then
      error("bad argument #1 to '" .. popen_name .. "' (string expected, got " .. type(prog) .. ")", 2)
    end
    mode = mode == nil and "r" or mode
    if mode ~= "r" and mode ~= "w" then
      if version == "luajit" or version == "5.2" then  -- passed on to popen(3), which refuses
        return nil, tostring(prog) .. ": Invalid argument", 22
      end
      error("bad argument #2 to '" .. popen_name .. "' (invalid mode)", 2)
    end
    io.stdout:flush()
    local handle, err, code = spawn(tostring(prog), mode)
    if not handle then return nil, err, code end
    return setmetatable({ handle = handle }, mt)
  end

  local io_type = io.type
  io.type = function(f)
    if getmetatable(f) == mt then return f.closed and "closed file" or "file" end
    return io_type(f)
  end
end
"""


class _Pipes:
    """The processes io.popen started, by handle number (Lua holds numbers,
    never Python objects)."""

    def __init__(self) -> None:
        self._procs: Dict[int, Tuple[Any, Any]] = {}
        self._next = 0

    def spawn(self, command: bytes, mode: bytes) -> Any:
        import subprocess
        reading = mode == b"r"
        try:
            proc = subprocess.Popen(command, shell=True,
                                    stdout=subprocess.PIPE if reading else None,
                                    stdin=None if reading else subprocess.PIPE)
        except OSError as exc:
            return None, _to_bytes(f"{command.decode('utf-8', 'replace')}: {exc.strerror}"), exc.errno
        self._next += 1
        self._procs[self._next] = (proc, proc.stdout if reading else proc.stdin)
        return self._next

    def op(self, handle: int, name: bytes, arg: Any = None) -> Any:
        proc, stream = self._procs[handle]
        if name == b"line":
            data = stream.readline()
            if not data:
                return None
            return data if arg or not data.endswith(b"\n") else data[:-1]
        if name == b"all":
            return stream.read()
        if name == b"count":
            n = int(arg)
            if n <= 0:
                return b"" if stream.peek(1) else None
            return stream.read(n) or None
        if name == b"number":
            return self._number(stream)
        if name == b"write":
            try:
                stream.write(arg)
                return True
            except OSError as exc:
                return None, _to_bytes(exc.strerror or str(exc))
        if name == b"flush":
            stream.flush()
            return True
        if name == b"close":
            del self._procs[handle]
            try:
                stream.close()
            except OSError:
                pass
            code = proc.wait()
            return (b"signal", -code) if code < 0 else (b"exit", code)
        raise ValueError(f"unknown popen operation {name!r}")

    @staticmethod
    def _number(stream: Any) -> Optional[bytes]:
        while stream.peek(1)[:1] in (b" ", b"\t", b"\n", b"\r", b"\f", b"\v"):
            stream.read(1)
        text = b""
        while len(text) < 200:
            c = stream.peek(1)[:1]
            if not c or c not in b"0123456789abcdefABCDEFxX.+-pP":
                break
            text += stream.read(1)
        return text or None


def install_popen(host: Any, version: str) -> None:
    """Give an unsandboxed LuaHost ``io.popen`` (see the comment above)."""
    _check_version(version)
    pipes = _Pipes()
    setup = host.execute(_POPEN, name="=luanet popen")
    setup(pipes.spawn, pipes.op, version.encode())
