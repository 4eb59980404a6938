"""luanet-lua: a drop-in for the standalone ``lua`` interpreter, on luanet.

    luanet-lua [options] [script [args]]

The options, ``arg``, ``LUA_INIT``, ``LUA_PATH``/``LUA_CPATH``, error
messages and exit codes are those of lua.c (Lua 5.4's), the package paths
those of the system's ``lua5.x`` (luanet.lua_env); the script runs
unsandboxed with ``net`` and ``luanet`` preloaded and C modules loadable. So
tools that run on a ``lua`` interpreter run on luanet:
``busted --lua=luanet-lua`` re-executes busted under it, ``luarocks test --
--lua=luanet-lua`` too.

One difference to lua, by design: when the script's top level returns, the
process keeps serving while anything it opened is listening, connected or
timing (as ``luanet run`` does), then closes what it opened, letting written
bytes flush, and exits. Ctrl-C or SIGTERM while serving closes the same way
(exit 0); in the script's own code, ``luanet.run_for/run_until`` raise
``interrupted`` (where the host supports it) and a script that does not get
back to luanet within 3 seconds is ended with exit 130.

The Lua version is ``LUANET_LUA`` ("5.1" .. "5.5", "luajit"; default 5.4):
one per process, since C modules bind to one Lua (see lua_env).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, List, Optional, Sequence, Tuple

from . import lua_env

DEFAULT_LUA = "5.4"
# Seconds the script's own code has to get back to luanet after Ctrl-C, and
# what is written may take to flush when the process ends.
INTERRUPT_GRACE = 3.0
CLOSE_GRACE = 10.0

USAGE = """\
usage: {prog} [options] [script [args]]
Available options are:
  -e stat   execute string 'stat'
  -i        enter interactive mode after executing 'script'
  -l mod    require library 'mod' into global 'mod'
  -l g=mod  require library 'mod' into global 'g'
  -v        show version information
  -E        ignore environment variables
  -W        turn warnings on
  --        stop handling options
  -         stop handling options and execute stdin
Lua version: LUANET_LUA={versions} (default {default})
"""

# The interpreter's Lua half: lua.c's docall/report/handle_script/doREPL, so
# that error messages, tracebacks and stdin handling are Lua's own. Output
# goes through io.stdout (C stdio), as lua's print does: print and io.write
# then keep their order in a pipe.
DRIVER = r"""
return function(progname, version)
local M = {}
local stdout, stderr = io.stdout, io.stderr
local loadstr = loadstring or load
local unpack = table.unpack or unpack
local select, type, tostring, getmetatable = select, type, tostring, debug.getmetatable
local traceback = debug.traceback

local tostr = tostring
if version == "5.4" or version == "5.5" then
  print = function(...)   -- luaL_tolstring: the global tostring is not consulted
    for i = 1, select("#", ...) do
      if i > 1 then stdout:write("\t") end
      stdout:write(tostr((select(i, ...))))
    end
    stdout:write("\n")
  end
else
  print = function(...)   -- 5.1-5.3 look the global tostring up on each call
    local tostring = _G.tostring
    for i = 1, select("#", ...) do
      if i > 1 then stdout:write("\t") end
      local s = tostring((select(i, ...)))
      if type(s) ~= "string" then error("'tostring' must return a string to 'print'", 2) end
      stdout:write(s)
    end
    stdout:write("\n")
  end
end

local function message(msg, plain)
  if progname and not plain then stderr:write(progname, ": ") end
  stderr:write(msg, "\n")
  stderr:flush()
end

local old_report = version == "5.1" or version == "luajit"   -- lua.c of 5.1
local function msghandler(msg)
  local kind = type(msg)
  if kind ~= "string" and kind ~= "number" and version == "luajit" and msg ~= nil then
    local mt = getmetatable(msg)        -- luajit.c: __tostring, then a traceback
    local s = mt and mt.__tostring and mt.__tostring(msg)
    if type(s) == "string" or type(s) == "number" then msg, kind = s, type(s) end
  end
  if kind ~= "string" and kind ~= "number" then
    if old_report or (version == "5.2" and msg == nil) then
      return msg                        -- 5.1: kept as it is; nil: no message at all
    end
    local mt = getmetatable(msg)
    local ts = mt and mt.__tostring
    if ts then
      local s = ts(msg)
      if version == "5.2" or type(s) == "string" then return s end
    end
    if version == "5.2" then return "(no error message)" end
    msg = "(error object is a " .. kind .. " value)"
  end
  -- lua's traceback ends at the main chunk; ours would go on into this driver
  local lines = {}
  for line in (traceback(tostring(msg), 2) .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i = #lines, 1, -1 do
    if lines[i]:find("in function 'xpcall'", 1, true) then
      local cut = i
      if cut > 1 and lines[cut - 1]:find("tail call", 1, true) then cut = cut - 1 end
      for j = #lines, cut, -1 do lines[j] = nil end
      lines[#lines + 1] = old_report and "\t[C]: ?" or "\t[C]: in ?"
      break
    end
  end
  return table.concat(lines, "\n")
end

local function pack(...) return { n = select("#", ...), ... } end

local function docall(f, ...)
  local args, n = { ... }, select("#", ...)
  return pack(xpcall(function() return f(unpack(args, 1, n)) end, msghandler))
end

local function report(r, plain)
  local msg = r[2]
  if not r[1] and msg ~= nil then
    local kind = type(msg)
    message((kind == "string" or kind == "number") and tostring(msg)
            or "(error object is not a string)", plain)
  end
  return r[1]
end

function M.setargs(script, ...)        -- arg[i - script] = argv[i], lua.c's createargtable
  local t = {}
  for i = 1, select("#", ...) do t[i - 1 - script] = (select(i, ...)) end
  _G.arg = t
end

function M.version(line, to_stderr)
  local out = to_stderr and stderr or stdout
  out:write(line, "\n")
  out:flush()
end

function M.dostring(source, name)
  local f, err = loadstr(source, name)
  if not f then return report({ false, err }) end
  return report(docall(f))
end

function M.dofile(name)                -- name nil: stdin
  local f, err = loadfile(name)
  if not f then return report({ false, err }) end
  return report(docall(f))
end

function M.dolibrary(globname, modname)
  local r = docall(require, modname)
  if r[1] and globname then _G[globname] = r[2] end
  return report(r)
end

function M.warnings_on()
  if warn then warn("@on") end
end

function M.script(fname)               -- fname nil: stdin
  local arg = _G.arg
  if type(arg) ~= "table" then return report({ false, "'arg' is not a table" }) end
  local f, err = loadfile(fname)
  if not f then return report({ false, err }) end
  local n = #arg
  local args = {}
  for i = 1, n do args[i] = arg[i] end
  return report(docall(f, unpack(args, 1, n)))
end

local function incomplete(err)
  return type(err) == "string" and err:find("<eof>'?$") ~= nil
end

local function prompt(first)
  local p = first and _PROMPT or _PROMPT2
  stdout:write(p ~= nil and tostring(p) or (first and "> " or ">> "))
  stdout:flush()
end

function M.repl()
  while true do
    prompt(true)
    local line = io.stdin:read("*l")
    if line == nil then break end
    if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
    local f, err = loadstr("return " .. line, "=stdin")
    if not f then
      local buffer = line
      while true do
        f, err = loadstr(buffer, "=stdin")
        if f or not incomplete(err) then break end
        prompt(false)
        local more = io.stdin:read("*l")
        if more == nil then break end
        buffer = buffer .. "\n" .. more
      end
    end
    if f then
      local r = docall(f)
      if r[1] and r.n > 1 then
        local ok, perr = pcall(print, unpack(r, 2, r.n))
        if not ok then message("error calling 'print' (" .. tostring(perr) .. ")", true) end
      else
        report(r, true)
      end
    else
      message(tostring(err), true)
    end
  end
  stdout:write("\n")
  stdout:flush()
end

return M
end
"""


class Options:
    """What lua.c's collectargs finds in argv."""

    def __init__(self) -> None:
        self.script = 0          # index in argv of the script; 0: none
        self.has_e = self.has_i = self.has_v = self.has_E = False
        self.runargs: List[Tuple[str, ...]] = []   # ("e", text) / ("l", name) / ("W",), in order
        self.bad: Optional[str] = None   # the offending option


def parse_args(argv: Sequence[str]) -> Options:
    """lua.c's collectargs: options up to the first non-option (the script),
    ``--`` (the next word is the script) or ``-`` (the script is stdin)."""
    opts = Options()
    i = 1
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            opts.script = i
            return opts
        if word == "--":
            opts.script = i + 1 if i + 1 < len(argv) else 0
            return opts
        if word == "-":
            opts.script = i
            return opts
        flag, extra = word[1], word[2:]
        if flag in "EWiv":
            if extra:
                opts.bad = word
                return opts
            if flag == "E":
                opts.has_E = True
            elif flag == "W":
                opts.runargs.append(("W",))
            else:
                opts.has_v = True
                opts.has_i = opts.has_i or flag == "i"
        elif flag in "el":
            if not extra:
                i += 1
                if i >= len(argv) or argv[i].startswith("-"):
                    opts.bad = word
                    return opts
                extra = argv[i]
            opts.has_e = opts.has_e or flag == "e"
            opts.runargs.append((flag, extra))
        else:
            opts.bad = word
            return opts
        i += 1
    return opts


def _fs(text: str) -> bytes:
    return os.fsencode(text)


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers, where Lua's io writes."""
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - no libc to ask
        pass


def version_line(version: str) -> str:
    from importlib import metadata

    from . import __version__
    try:
        lupa_version = metadata.version("lupa")
    except metadata.PackageNotFoundError:  # pragma: no cover - lupa from a source tree
        lupa_version = "?"
    if version == "luajit":
        base = "LuaJIT 2.1 -- Copyright (C) 2005-2023 Mike Pall. https://luajit.org/"
    else:
        base = f"Lua {version}  Copyright (C) 1994-2024 Lua.org, PUC-Rio"
    return f"{base} [luanet {__version__}, lupa {lupa_version}]"


class Interrupts:
    """Ctrl-C and SIGTERM without blocking them (a blocked signal would stay
    blocked in the programs os.execute starts): Python's C-level handler
    writes the signal to a pipe even while Lua code runs, and a thread reads
    it. The first signal asks luanet to stop (the serving loop sees
    ``requested``; ``host.interrupt()`` makes luanet.run_for/run_until
    raise); if the main thread has not taken it within INTERRUPT_GRACE
    seconds, or on a second signal, the process ends with 128 + signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, host: Any, progname: str):
        self.host = host
        self.progname = progname
        self.requested = threading.Event()
        self.taken = threading.Event()
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for sig in self.SIGNALS:
            signal.signal(sig, lambda *_: None)
        threading.Thread(target=self._watch, name="luanet-lua-signals", daemon=True).start()

    def _watch(self) -> None:
        first = 0
        while True:
            data = os.read(self._read, 64)
            for sig in data:
                if sig not in self.SIGNALS:
                    continue
                if first:
                    self._die(first)
                first = sig
                self.requested.set()
                interrupt = getattr(self.host, "interrupt", None)
                if interrupt is not None:
                    try:
                        interrupt()
                    except Exception:
                        pass
                threading.Thread(target=self._deadline, args=(sig,), daemon=True).start()

    def _deadline(self, sig: int) -> None:
        if not self.taken.wait(INTERRUPT_GRACE):
            sys.stderr.write(f"{self.progname}: interrupted, but the script's Lua code has not "
                             f"returned to luanet for {INTERRUPT_GRACE:g} s: exiting\n")
            self._die(sig)

    @staticmethod
    def _die(sig: int) -> None:
        _flush_c_stdio()
        try:
            sys.stderr.flush()
        finally:
            os._exit(128 + sig)


def _close(host: Any) -> None:
    try:
        host.close(grace=CLOSE_GRACE)
    except TypeError:  # a host without the grace argument
        host.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    progname = os.path.basename(argv[0]) if argv and argv[0] else "luanet-lua"
    version = os.environ.get("LUANET_LUA") or DEFAULT_LUA
    if version not in lua_env.LUPA_MODULES:
        sys.stderr.write(f"{progname}: LUANET_LUA={version!r} is not a Lua version luanet "
                         f"runs; choose one of {', '.join(lua_env.LUPA_MODULES)}\n")
        return 1
    opts = parse_args(argv)
    if opts.bad is not None:
        what = (f"'{opts.bad}' needs argument" if opts.bad[1:2] in ("e", "l")
                else f"unrecognized option '{opts.bad}'")
        sys.stderr.write(f"{progname}: {what}\n" + USAGE.format(
            prog=progname, versions="|".join(lua_env.LUPA_MODULES), default=DEFAULT_LUA))
        return 1
    env = None if opts.has_E else os.environ

    lua_env.import_lupa_module(version)  # before the host: C modules need global symbols
    from .host import LuaError, LuaHost

    def on_error(message: str) -> None:
        sys.stderr.write(f"{progname}: {message}\n")
        sys.stderr.flush()

    host = LuaHost(lua=version, sandbox=False, on_error=on_error)
    interrupts = Interrupts(host, progname) if threading.current_thread() is \
        threading.main_thread() and hasattr(signal, "set_wakeup_fd") else None

    def lua_exit(code: Any = None, close: Any = None) -> None:
        """os.exit: flush what was written (stdio; the network too when called
        outside a handler), then end the process at once, as lua does."""
        status = 0 if code is None or code is True else 1 if code is False else int(code)
        if interrupts is not None:
            interrupts.taken.set()
        if not host.loop.is_running():
            try:
                _close(host)
            except Exception:
                pass
        _flush_c_stdio()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status & 0xFF)

    try:
        lua_env.apply(host, version, env)
        lua_env.install_compat(host, version)  # what the system's lua5.x has and lupa's lacks
        lua_env.install_popen(host, version)
        host.globals["os"][b"exit"] = lua_exit
        driver = host.execute(DRIVER, name="=luanet-lua")(_fs(progname), version.encode())
    except LuaError as exc:  # pragma: no cover - the driver is ours
        sys.stderr.write(f"{progname}: {exc.message}\n")
        _close(host)
        return 1
    d = {name: driver[name.encode()] for name in
         ("setargs", "version", "dostring", "dofile", "dolibrary", "warnings_on", "script", "repl")}

    ok = True
    try:
        if opts.has_v:
            d["version"](version_line(version).encode(), version == "5.1")
        d["setargs"](opts.script, *[_fs(a) for a in argv])
        init = lua_env.init_code(version, env)
        if init is not None:
            name, text = init
            ok = d["dofile"](_fs(name[1:])) if name.startswith("@") else \
                d["dostring"](text.encode("utf-8", "surrogateescape"), name.encode())
        for action in opts.runargs if ok else ():
            if action[0] == "e":
                ok = d["dostring"](_fs(action[1]), b"=(command line)")
            elif action[0] == "l":
                glob, _, mod = action[1].partition("=")
                if not mod:
                    glob, mod = action[1], action[1]
                ok = d["dolibrary"](None if version in ("5.1", "luajit") else _fs(glob), _fs(mod))
            else:
                d["warnings_on"]()
            if not ok:
                break
        if ok and opts.script:
            script = argv[opts.script]
            stdin = script == "-" and argv[opts.script - 1] != "--"
            ok = d["script"](None if stdin else _fs(script))
        if ok and opts.has_i:
            d["repl"]()
        elif ok and not opts.script and not (opts.has_e or opts.has_v):
            if os.isatty(0):
                d["version"](version_line(version).encode(), version == "5.1")
                d["repl"]()
            else:
                ok = d["dofile"](None)
        # luanet's part: serve what the script opened until it is all closed
        if ok:
            requested = interrupts.requested if interrupts is not None else threading.Event()
            while host.active and not requested.is_set():
                host.run_until(lambda: requested.is_set() or not host.active, 3600.0)
    except LuaError as exc:  # an error escaping the driver (luanet.run_* from Python)
        sys.stderr.write(f"{progname}: {exc.message}\n")
        ok = False
    finally:
        if interrupts is not None:
            interrupts.taken.set()
        _flush_c_stdio()
        _close(host)
        _flush_c_stdio()
    return 0 if ok else 1


def entry() -> None:
    """The console script: exit with main()'s status."""
    code = main()
    _flush_c_stdio()
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    entry()
