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
from typing import Any, Mapping, Optional, Tuple

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
    import lupa
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
        log.warning("luanet: C modules disabled for Lua %s: the Lua C API of this process "
                    "belongs to another Lua (one version per process loads C modules)", version)
        cpath = ""
    lua_globals = target.globals
    if callable(lua_globals):  # a lupa LuaRuntime
        lua_globals = lua_globals()
    package = lua_globals[b"package"]
    package[b"path"] = _to_bytes(path)
    package[b"cpath"] = _to_bytes(cpath)
