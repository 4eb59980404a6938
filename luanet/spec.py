"""Busted-style spec files (``*_spec.lua``), run the way busted 2.x runs them.

The Lua half is ``lua/luanet_busted/`` (entry ``lua/luanet_busted.lua``):
luassert, say and busted's runner, reimplemented. This module gives it a
Python face used by both front ends:

- :class:`SpecOptions`: what ``luanet spec`` takes (and the pytest plugin's ini
  options), merged with the project's ``.busted`` file.
- :func:`run_file`: one spec file in a fresh LuaHost of its own, in busted's
  order; returns its :class:`SpecResult` list (``on_result`` sees each as it
  ends).
- :class:`Worker`: a child process (``python -m luanet.spec --worker``) that
  runs files for one Lua version. Two Lua versions never share a process
  once C modules are loaded with global symbols, so a run over several
  versions gives each its own worker.
- :func:`main`: the ``luanet spec`` command, with busted's outputs and exit
  codes.

Spec files are the project's trusted code: by default they run unsandboxed
with the system lua's ``package.path``/``cpath`` (luanet.lua_env), busted's
default lpath (``./src/?.lua;./src/?/?.lua;./src/?/init.lua``) and ``--lpath``
in front. ``--sandbox`` runs them in the plugin-host sandbox instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NoReturn, Optional, Sequence, TextIO, Tuple, Union

log = logging.getLogger("luanet")

DEFAULT_LUA = "5.4"
DEFAULT_TIMEOUT = 30.0
DEFAULT_PATTERN = "_spec"
SPEC_SUFFIX = "_spec.lua"
BUSTED_LPATH = "./src/?.lua;./src/?/?.lua;./src/?/init.lua"
STATUSES = ("success", "failure", "error", "pending")
OUTPUTS = ("utfTerminal", "plainTerminal", "TAP", "json", "junit", "gtest")

# The runner's modules, in lua/luanet_busted/.
RUNNER_MODULES = ("util", "say", "namespaces", "state", "assert", "assertions", "match",
                  "format", "spy", "runner")


class SpecLoadError(Exception):
    """The spec file itself could not be run (syntax error, error at top level)."""


@dataclass
class SpecOptions:
    """Options of a spec run (``luanet spec --help`` describes each)."""
    lpath: List[str] = field(default_factory=list)
    cpath: List[str] = field(default_factory=list)
    pattern: List[str] = field(default_factory=list)
    exclude_pattern: List[str] = field(default_factory=list)
    tags: List[str] = field(default_factory=list)
    exclude_tags: List[str] = field(default_factory=list)
    filter: List[str] = field(default_factory=list)
    filter_out: List[str] = field(default_factory=list)
    helper: Optional[str] = None
    list: bool = False
    shuffle: bool = False
    sort: bool = False
    seed: Optional[int] = None
    timeout: float = DEFAULT_TIMEOUT
    sandbox: bool = False
    verbose: bool = False
    select: Optional[List[str]] = None  # "line\tfull name" keys to run; None: all

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> SpecOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SpecResult:
    """One reported element: a test ("test": success/failure/error/pending),
    an error outside any test ("error": a describe body, a hook, the file),
    or a listed test ("list")."""
    kind: str
    status: str
    name: str        # full name: describe path and the it, space separated
    file: str
    line: int
    message: str
    trace: str = ""
    duration: float = 0.0
    version: str = DEFAULT_LUA

    @property
    def key(self) -> str:
        """What identifies a test across a listing and a run."""
        return f"{self.line}\t{self.name}"

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def display_path(path: Union[str, os.PathLike[str]]) -> str:
    """The path as messages show it: relative to the working directory when
    below it (short and clickable), else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- paths

def lua_path_for(options: SpecOptions, root: Optional[Path] = None) -> str:
    """The templates ``require`` searches first: ``--lpath`` entries, then
    busted's default lpath, then ``./?.lua;./?/init.lua`` (all relative to
    the project root, the working directory)."""
    parts: List[str] = []
    for entry in [BUSTED_LPATH, *options.lpath, "./?.lua;./?/init.lua"]:
        for template in entry.split(";"):
            template = template.strip()
            if template and template not in parts:
                parts.append(template)
    if root is not None:
        parts = [str(root / t[2:]) if t.startswith("./") else t for t in parts]
    return ";".join(parts)


def _lua_pattern_to_regex(pattern: str) -> str:
    """A Lua pattern (as busted's --pattern takes) as a Python regex: the
    common subset (classes %a %d %l %s %u %w %x %p, sets, anchors, * + - ?)."""
    classes = {"a": "[A-Za-z]", "d": "[0-9]", "l": "[a-z]", "s": r"\s", "u": "[A-Z]",
               "w": "[A-Za-z0-9]", "x": "[A-Fa-f0-9]", "p": r"[^\w\s]", "c": r"[\x00-\x1f]"}
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%" and i + 1 < len(pattern):
            n = pattern[i + 1]
            out.append(classes.get(n, classes.get(n.lower(), "").replace("[", "[^", 1)
                                   if n.isupper() and n.lower() in classes else re.escape(n)))
            i += 2
            continue
        if c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                j = len(pattern) - 1
            body = pattern[i + 1:j].replace("%", "\\")
            out.append("[" + body + "]")
            i = j + 1
            continue
        if c == "-":
            out.append("*?")
        elif c in "^$*+?.":
            out.append(c)
        elif c in "()":
            out.append(c)
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _matches_any(name: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        try:
            if re.search(_lua_pattern_to_regex(pattern), name):
                return True
        except re.error:
            if pattern in name:
                return True
    return False


def find_spec_files(paths: Iterable[Union[str, os.PathLike[str]]],
                    patterns: Sequence[str] = (DEFAULT_PATTERN,),
                    exclude: Sequence[str] = ()) -> List[Path]:
    """Files as given; directories searched recursively (hidden ones skipped)
    for ``.lua`` files whose name matches a pattern (Lua patterns, busted's
    default ``_spec``), sorted as busted sorts them."""
    found: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            listed = []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if not name.endswith(".lua") or name.startswith("."):
                        continue
                    stem = name
                    if _matches_any(stem, patterns) and not _matches_any(stem, exclude):
                        listed.append(Path(dirpath) / name)
            found.extend(sorted(listed, key=str))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return found


# ---------------------------------------------------------------- .busted

def read_busted_file(root: Union[str, os.PathLike[str]] = ".") -> Optional[Dict[str, Any]]:
    """The tasks of a ``.busted`` file at root ({task: {option: value}}), or None."""
    path = Path(root) / ".busted"
    if not path.is_file():
        return None
    from .host import LuaError, LuaHost
    with LuaHost(lua=DEFAULT_LUA, sandbox=True) as host:
        try:
            value = host.execute(path.read_bytes(), name="@" + display_path(path))
        except LuaError as exc:
            raise SpecLoadError(f"{display_path(path)}: {exc.message}") from None
        return _from_lua(value) if value is not None else {}


def _from_lua(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        items = list(value.items())
    except AttributeError:
        return str(value)
    keys = [k for k, _ in items]
    if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [_from_lua(v) for _, v in sorted(items)]
    return {_from_lua(k): _from_lua(v) for k, v in items}


def _as_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _split_list(values: Sequence[str]) -> List[str]:
    out: List[str] = []
    for value in values:
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


# ---------------------------------------------------------------- one file

def _new_host(version: str, options: SpecOptions, on_error: Callable[[str], None]) -> Any:
    from . import lua_env
    from .host import LuaHost

    lua_path = lua_path_for(options)
    if not options.sandbox:
        lua_env.import_lupa_module(version)
        host = LuaHost(lua=version, sandbox=False, on_error=on_error)
        lua_env.apply(host, version)
        # What the system's lua5.x has and lupa's Lua lacks (math.pow,
        # bit32, io.popen ...), as luanet-lua has it.
        for name in ("install_compat", "install_popen"):
            install = getattr(lua_env, name, None)
            if install is not None:
                install(host, version)
        package = host.globals.table[b"package"]
        package[b"path"] = (lua_path + ";").encode() + package[b"path"]
        if options.cpath:
            package[b"cpath"] = (";".join(options.cpath) + ";").encode() + package[b"cpath"]
        return host
    # Lua source installed for the system's lua (Debian's /usr/share/lua/5.x)
    # loads in a sandbox too, as text like the project's own modules.
    system_path = lua_env.default_paths(version)[0]
    lua_path = ";".join(dict.fromkeys(t for t in (lua_path + ";" + system_path).split(";")
                                      if t and t.endswith(".lua")))
    extra: Dict[str, Any] = {}
    if version == "luajit" and options.timeout:
        # A sandbox hides `jit`, and LuaJIT runs no hooks in compiled code: a
        # handler time limit makes the host turn the compiler off, so the
        # runner's per-test timeout hook reaches loops too.
        extra["handler_time_limit"] = float(options.timeout)
    return LuaHost(lua=version, sandbox=True, on_error=on_error, lua_path=lua_path, **extra)


def _interpreter(version: str) -> str:
    """What `arg[-1]` names, as under busted the interpreter running it:
    luanet-lua (the drop-in lua, told the version by LUANET_LUA) when
    installed, else the system's lua of that version."""
    import shutil
    here = Path(sys.executable).parent / "luanet-lua"
    found = str(here) if here.exists() else shutil.which("luanet-lua")
    if found:
        os.environ.setdefault("LUANET_LUA", version)
        return found
    system = "luajit" if version == "luajit" else "lua" + version
    return shutil.which(system) or "lua"


def _set_arg(host: Any, version: str) -> None:
    """The global `arg` busted's specs see: arg[-1] the interpreter, arg[0]
    the runner."""
    arg = host.eval(b"{}")
    arg[-1] = _interpreter(version).encode()
    arg[0] = b"luanet spec"
    host.globals.table[b"arg"] = arg


def _load_runner(host: Any) -> Any:
    from .bridge import lua_source
    entry = host.load_module("luanet_busted")
    define = entry[b"define"]
    for name in RUNNER_MODULES:
        define(name.encode(), lua_source(f"luanet_busted/{name}.lua"))
    return entry[b"require_module"](b"runner")


_OPTION_NAMES = ("tags", "exclude_tags", "filter", "filter_out", "shuffle", "sort", "seed",
                 "timeout", "list")


def run_file(path: Union[str, os.PathLike[str]], version: str = DEFAULT_LUA,
             options: Optional[SpecOptions] = None,
             on_result: Optional[Callable[[SpecResult], None]] = None) -> List[SpecResult]:
    """Runs one spec file in a fresh LuaHost (busted's order, hooks,
    filters); returns every result. Errors raised in handlers, timers or
    callbacks while a test runs make that test an error."""
    from .host import LuaError

    options = options or SpecOptions()
    path = Path(path)
    name = display_path(path)
    results: List[SpecResult] = []
    handler_errors: List[str] = []

    def on_error(message: str) -> None:
        handler_errors.append(message)

    def emit(result: SpecResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    def report(kind: Any, status: Any, test_name: Any, file: Any, line: Any, message: Any,
               trace: Any, seconds: Any, expected: Any = None) -> None:
        kind, status, message = _text(kind), _text(status), _text(message)
        if kind == "test" and handler_errors and expected:
            wanted = [e for e in _text(expected).split("\0") if e]
            handler_errors[:] = [e for e in handler_errors if not any(w in e for w in wanted)]
        if kind == "test" and handler_errors:
            text = "\n".join(handler_errors)
            handler_errors.clear()
            extra = "Errors raised in handlers during this test:\n" + text
            message = f"{message}\n\n{extra}" if message else extra
            if status in ("success", "pending"):
                status = "error"
        emit(SpecResult(kind, status, _text(test_name), _text(file), int(line or 0), message,
                        _text(trace), float(seconds or 0.0), version))

    try:
        host = _new_host(version, options, on_error)
    except Exception as exc:
        emit(SpecResult("error", "error", name, name, 0, f"cannot start Lua {version}: {exc}",
                        version=version))
        return results
    try:
        try:
            runner = _load_runner(host)
        except Exception as exc:  # the runner itself broke
            emit(SpecResult("error", "error", name, name, 0,
                            f"luanet's spec runner failed to load: {_text(exc.args[0] if exc.args else exc)}",
                            version=version))
            return results
        configure = runner[b"configure"]
        for option in _OPTION_NAMES:
            value = getattr(options, option)
            if isinstance(value, list):
                for item in value:
                    configure(option.encode(), str(item).encode())
            elif value is not None:
                configure(option.encode(), value)
        for key in options.select or []:
            configure(b"select", key.encode())
        if options.select is not None and not options.select:
            configure(b"select", b"")
        runner[b"install"](not options.sandbox)
        _set_arg(host, version)
        if options.helper:
            helper = Path(options.helper)
            try:
                runner[b"run_helper"](helper.read_bytes(), display_path(helper).encode())
            except (LuaError, OSError, Exception) as exc:
                emit(SpecResult("error", "error", display_path(helper), display_path(helper), 0,
                                f"helper failed: {_text(getattr(exc, 'message', exc))}",
                                version=version))
                return results
        try:
            source = path.read_bytes()
        except OSError as exc:
            emit(SpecResult("error", "error", name, name, 0, str(exc), version=version))
            return results
        try:
            runner[b"run_file"](source, name.encode(), report)
        except Exception as exc:  # the runner itself broke
            emit(SpecResult("error", "error", name, name, 0,
                            f"{type(exc).__name__}: {_text(exc.args[0] if exc.args else exc)}",
                            version=version))
        if handler_errors:
            emit(SpecResult("error", "error", name + " (after its tests)", name, 0,
                            "Errors raised in handlers:\n" + "\n".join(handler_errors),
                            version=version))
    finally:
        try:
            # What a spec left unsent is not waited for (nothing reads it).
            host.close(grace=0)
        except Exception:
            log.exception("luanet spec: closing the host of %s", name)
    return results


# ---------------------------------------------------------------- workers

class Worker:
    """A child process running spec files for one Lua version
    (``python -m luanet.spec --worker``): one JSON line per command, one per
    result, ``{"done": true}`` after each file."""

    def __init__(self, version: str, cwd: Optional[str] = None):
        self.version = version
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._cwd = cwd
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "luanet.spec", "--worker", version],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd, env=env,
            text=True, encoding="utf-8", errors="replace", bufsize=1)

    def run_file(self, path: Union[str, os.PathLike[str]], options: SpecOptions,
                 on_result: Optional[Callable[[SpecResult], None]] = None) -> List[SpecResult]:
        """Runs one file in the worker. Each result must arrive within the
        per-test timeout plus a minute, else the worker is killed (a safety
        net for what the in-Lua timeout cannot stop) and restarted."""
        proc = self._proc
        assert proc.stdin is not None
        results: List[SpecResult] = []
        name = display_path(path)

        def lost(why: str) -> List[SpecResult]:
            results.append(SpecResult("error", "error", name, name, 0,
                                      f"the Lua {self.version} worker process {why}",
                                      version=self.version))
            if on_result:
                on_result(results[-1])
            self._restart()
            return results

        try:
            proc.stdin.write(json.dumps({"path": str(Path(path).absolute()),
                                         "options": options.to_json()}) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return lost(f"ended (exit code {proc.poll()})")
        limit = (options.timeout or 0) + 60 if options.timeout else None
        while True:
            line = self._readline(limit)
            if line is None:
                proc.kill()
                return lost(f"stopped answering for {limit:g} s and was killed")
            if not line:
                proc.wait()
                return lost(f"ended (exit code {proc.returncode})")
            data = json.loads(line)
            if data.get("done"):
                return results
            result = SpecResult(**data)
            results.append(result)
            if on_result:
                on_result(result)

    def _readline(self, limit: Optional[float]) -> Optional[str]:
        """One line of the worker's answer ("" at its end), None on timeout."""
        import select
        fd = self._proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = None if limit is None else time.monotonic() + limit
        while b"\n" not in self._buffer:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                rest, self._buffer = self._buffer, b""
                return rest.decode("utf-8", "replace")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _restart(self) -> None:
        self.close()
        self.__init__(self.version, self._cwd)  # type: ignore[misc]

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _worker_main(version: str) -> int:
    out = sys.stdout
    # Lua's print goes to this process's stdout: keep the protocol on a copy.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        options = SpecOptions.from_json(request.get("options", {}))

        def send(result: SpecResult) -> None:
            proto.write(json.dumps(result.to_json()) + "\n")

        run_file(request["path"], version, options, on_result=send)
        proto.write(json.dumps({"done": True}) + "\n")
        proto.flush()
    del out
    return 0


# ---------------------------------------------------------------- outputs

_MARKS = {"success": "+", "failure": "-", "error": "*", "pending": "."}
_UTF_MARKS = {"success": "\u25cf", "failure": "\u25fc", "error": "\u2731", "pending": "\u25cc"}


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def summary_line(counts: Dict[str, int], seconds: float) -> str:
    """busted's summary: `2 successes / 1 failure / 0 errors / 0 pending : 0.012 seconds`."""
    return " / ".join([
        _plural(counts["success"], "success", "successes"),
        _plural(counts["failure"], "failure", "failures"),
        _plural(counts["error"], "error", "errors"),
        f"{counts['pending']} pending",
    ]) + f" : {seconds:.6f} seconds"


class Output:
    """busted's output handlers: progress as results arrive, a report at the end."""

    def __init__(self, kind: str, out: TextIO, verbose: bool = False, prefix_versions: bool = False):
        self.kind, self.out, self.verbose = kind, out, verbose
        self.prefix_versions = prefix_versions
        self.results: List[SpecResult] = []
        self.start = time.perf_counter()

    def _name(self, r: SpecResult) -> str:
        return (f"[{r.version}] " if self.prefix_versions else "") + r.name

    def add(self, r: SpecResult) -> None:
        if r.kind == "list":
            self.out.write(f"{r.file}:{r.line}: {self._name(r)}\n")
            self.out.flush()
            return
        self.results.append(r)
        if self.kind == "TAP" and r.kind == "test":
            self._tap(r)
        elif self.kind in ("utfTerminal", "plainTerminal"):
            marks = _UTF_MARKS if self.kind == "utfTerminal" else _MARKS
            self.out.write(marks[r.status])
            self.out.flush()
        elif self.kind == "gtest":
            out = self.out
            if not hasattr(self, "_gtest_file"):
                out.write("[==========] Running tests from scanned files.\n"
                          "[----------] Global test environment setup.\n")
                self._gtest_file = ""
            if r.file != self._gtest_file:
                self._gtest_file = r.file
                out.write(f"[----------] Running tests from {r.file}\n")
            where = f"{r.file} @ {r.line}: {self._name(r)}"
            tag = {"success": "[       OK ]", "failure": "[  FAILED  ]", "error": "[  ERROR   ]",
                   "pending": "[ PENDING  ]"}[r.status]
            if r.kind == "test":
                out.write(f"[ RUN      ] {where}\n")
            if r.status in ("failure", "error") and r.message:
                out.write(r.message + "\n")
            out.write(f"{tag} {where} ({r.duration * 1000:.2f} ms)\n")
            out.flush()

    def counts(self) -> Dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r.status] += 1
        return counts

    def finish(self) -> None:
        seconds = time.perf_counter() - self.start
        getattr(self, "_finish_" + self.kind.lower(), self._finish_terminal)(seconds)
        self.out.flush()

    def _finish_terminal(self, seconds: float) -> None:
        out = self.out
        out.write("\n" + summary_line(self.counts(), seconds) + "\n")
        for status, title in (("pending", "Pending"), ("failure", "Failure"), ("error", "Error")):
            for r in self.results:
                if r.status != status:
                    continue
                arrow = "\u2192" if self.kind == "utfTerminal" else "->"
                out.write(f"\n{title} {arrow} {r.file} @ {r.line}\n{self._name(r)}\n")
                if r.message:
                    out.write(r.message + "\n")
                if self.verbose and r.trace:
                    out.write("\n" + r.trace + "\n")

    _finish_utfterminal = _finish_plainterminal = _finish_terminal

    def _finish_gtest(self, seconds: float) -> None:
        out, counts = self.out, self.counts()
        files = len({r.file for r in self.results})
        out.write("\n[----------] Global test environment teardown.\n")
        out.write(f"[==========] {len(self.results)} tests from {files} test files ran. "
                  f"({seconds * 1000:.2f} ms total)\n")
        out.write(f"[  PASSED  ] {counts['success']} tests.\n")
        for status, tag, word in (("pending", "[ PENDING  ]", "pending tests"),
                                  ("failure", "[  FAILED  ]", "tests"),
                                  ("error", "[  ERROR   ]", "errors")):
            listed = [r for r in self.results if r.status == status]
            if listed:
                out.write(f"{tag} {len(listed)} {word}, listed below:\n")
                for r in listed:
                    out.write(f"{tag} {r.file} @ {r.line}: {self._name(r)}\n")
        if counts["failure"]:
            out.write(f"\n {counts['failure']} FAILED TESTS\n")
        if counts["error"]:
            out.write(f" {counts['error']} ERRORS\n")

    def _tap(self, r: SpecResult) -> None:
        """One test as busted's TAP handler prints it, as it ends."""
        out = self.out
        self._tap_count = getattr(self, "_tap_count", 0) + 1
        n = self._tap_count
        if r.status == "success":
            out.write(f"ok {n} - {self._name(r)}\n")
        elif r.status == "pending":
            out.write(f"ok {n} - # SKIP {r.message or self._name(r)}\n")
        else:
            out.write(f"not ok {n} - {self._name(r)}\n# {r.file} @ {r.line}\n")
            out.write("# Failure message: " + r.message.replace("\n", "\n# ") + "\n")
            if self.verbose and r.trace:
                out.write("# " + r.trace.replace("\n", "\n# ") + "\n")
        out.flush()

    def _finish_tap(self, seconds: float) -> None:
        self.out.write(f"1..{getattr(self, '_tap_count', 0)}\n")

    def _finish_json(self, seconds: float) -> None:
        def entry(r: SpecResult) -> Dict[str, Any]:
            return {"name": self._name(r), "trace": {"short_src": r.file, "currentline": r.line,
                                                    "traceback": r.trace},
                    "message": r.message, "duration": r.duration, "element": {
                        "name": r.name, "trace": {"short_src": r.file, "currentline": r.line}}}
        key = {"success": "successes", "failure": "failures", "error": "errors",
               "pending": "pendings"}
        doc: Dict[str, Any] = {v: [] for v in key.values()}
        for r in self.results:
            doc[key[r.status]].append(entry(r))
        doc["duration"] = seconds
        json.dump(doc, self.out)
        self.out.write("\n")

    def _finish_junit(self, seconds: float) -> None:
        from xml.sax.saxutils import escape, quoteattr
        counts = self.counts()
        out = self.out
        out.write('<?xml version="1.0" encoding="UTF-8" ?>\n')
        out.write(f'<testsuites tests="{len(self.results)}" failures="{counts["failure"]}" '
                  f'errors="{counts["error"]}" skipped="{counts["pending"]}" time="{seconds:.6f}">\n')
        out.write(f'  <testsuite name="luanet spec" tests="{len(self.results)}" '
                  f'failures="{counts["failure"]}" errors="{counts["error"]}" '
                  f'skipped="{counts["pending"]}" time="{seconds:.6f}">\n')
        for r in self.results:
            out.write(f'    <testcase classname={quoteattr(r.file)} name={quoteattr(self._name(r))} '
                      f'time="{r.duration:.6f}">')
            first_line = quoteattr(r.message.splitlines()[0] if r.message else "")
            detail = escape(r.message + "\n" + r.trace)
            if r.status in ("failure", "error"):
                out.write(f'<{r.status} type="{r.status}" message={first_line}>{detail}</{r.status}>')
            elif r.status == "pending":
                out.write("<skipped/>")
            out.write("</testcase>\n")
        out.write("  </testsuite>\n</testsuites>\n")


def exit_code(results: Sequence[SpecResult]) -> int:
    """busted's: the number of failures and errors (at most 255)."""
    bad = sum(1 for r in results if r.status in ("failure", "error"))
    return min(bad, 255)


# ---------------------------------------------------------------- running

def _versions(value: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(value, str):
        value = [value]
    out: List[str] = []
    for item in value:
        for v in str(item).replace(",", " ").split():
            if v not in out:
                out.append(v)
    return out


def run_specs(paths: Optional[Sequence[Union[str, os.PathLike[str]]]] = None,
              lua: Union[str, Sequence[str]] = DEFAULT_LUA, out: Optional[TextIO] = None,
              options: Optional[SpecOptions] = None, output: str = "plainTerminal", *,
              sandbox: Optional[bool] = None, patterns: Sequence[str] = ()) -> int:
    """Runs every spec file under `paths` (default: spec/) under one Lua
    version or several (each in its own process when there are several and
    specs may load C modules), prints busted's output, returns busted's exit
    code."""
    out = out if out is not None else sys.stdout
    options = options or SpecOptions()
    if sandbox is not None:
        options.sandbox = sandbox
    versions = _versions(lua)
    try:
        files = find_spec_files(paths or ["spec"], options.pattern or [DEFAULT_PATTERN],
                                options.exclude_pattern)
    except FileNotFoundError as exc:
        print(f"luanet spec: {exc}", file=out)
        return 1
    if options.shuffle:
        seed = options.seed if options.seed is not None else int(time.time())
        options.seed = seed
        random.Random(seed).shuffle(files)
    report = Output(output, out, options.verbose, prefix_versions=len(versions) > 1)
    own_process = len(versions) > 1 and not options.sandbox
    for version in versions:
        worker = Worker(version) if own_process else None
        try:
            for path in files:
                if worker is not None:
                    worker.run_file(path, options, report.add)
                else:
                    run_file(path, version, options, report.add)
        finally:
            if worker is not None:
                worker.close()
    if options.list:
        return 0
    report.finish()
    return exit_code(report.results)


HELP_EPILOG = """\
Spec files are busted 2.x files: describe/it/pending, hooks, luassert's
assert/spy/stub/mock/match; `require "busted"`, "luassert", "say" give the
runner's own. By default specs are trusted: the whole standard library, the
system lua's package.path/cpath and C modules, and `require` finds the code
under test from the project root (./src/?.lua;./src/?/?.lua;./src/?/init.lua;
./?.lua;./?/init.lua, plus --lpath). A .busted file in the working directory
is read (its default task, or the one --run names). Exit code: the number of
failures and errors (0 when all passed), as busted's.
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as busted's do."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .bridge import LUA_MODULES
    p = _Parser(
        prog="luanet spec", description="Run busted 2.x spec files (default: spec/, files matching _spec).",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="ROOT",
                   help="spec files or folders to search (default: spec, or .busted's ROOT)")
    p.add_argument("--lua", default=None,
                   help="Lua version(s), comma separated: " + ", ".join(LUA_MODULES)
                   + " (default: $LUANET_SPEC_LUA or 5.4); several run each in its own process")
    p.add_argument("-m", "--lpath", action="append", default=[], metavar="PATH",
                   help="templates put in front of the module search path (repeatable)")
    p.add_argument("--cpath", action="append", default=[], metavar="PATH",
                   help="templates put in front of the C module search path (repeatable)")
    p.add_argument("-p", "--pattern", action="append", default=[], metavar="PATTERN",
                   help="only run spec files whose name matches this Lua pattern (default: _spec)")
    p.add_argument("--exclude-pattern", action="append", default=[], metavar="PATTERN",
                   help="do not run spec files whose name matches this Lua pattern")
    p.add_argument("-t", "--tags", action="append", default=[], metavar="TAGS",
                   help="only run tests with these #tags (comma separated)")
    p.add_argument("--exclude-tags", action="append", default=[], metavar="TAGS",
                   help="do not run tests with these #tags (takes precedence over --tags)")
    p.add_argument("--filter", action="append", default=[], metavar="PATTERN",
                   help="only run tests whose full name matches this Lua pattern")
    p.add_argument("--filter-out", action="append", default=[], metavar="PATTERN",
                   help="do not run tests whose full name matches this Lua pattern")
    p.add_argument("--helper", default=None, metavar="PATH", help="a Lua file run before each spec file")
    p.add_argument("-l", "--list", action="store_true", default=None,
                   help="list the tests (file:line: name) instead of running them")
    p.add_argument("--shuffle", action="store_true", default=None,
                   help="randomize file and test order (see --seed)")
    p.add_argument("--sort", action="store_true", default=None, help="sort tests by name")
    p.add_argument("--seed", type=int, default=None, help="random seed for --shuffle and randomize()")
    p.add_argument("-o", "--output", default=None, choices=OUTPUTS,
                   help="output: utfTerminal (default on a terminal), plainTerminal (default "
                        "otherwise), TAP, json, junit, gtest")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help=f"fail a test that runs longer (default {DEFAULT_TIMEOUT:g}; 0: no limit)")
    p.add_argument("--sandbox", action="store_true", default=None,
                   help="run specs in the plugin-host sandbox (require loads Lua source only)")
    p.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="the default: specs get the whole standard library")
    p.add_argument("-r", "--run", default=None, metavar="TASK", help="task of the .busted file to use")
    p.add_argument("-v", "--verbose", action="store_true", default=None, help="show tracebacks")
    p.add_argument("--version", action="version",
                   version="luanet spec (busted 2.1.1 and luassert 1.8.0 compatible)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def options_from(args: argparse.Namespace,
                 config: Optional[Dict[str, Any]]) -> Tuple[SpecOptions, List[str], str]:
    """(SpecOptions, roots, output) from parsed arguments over a .busted task."""
    task: Dict[str, Any] = {}
    if config:
        task = dict(config.get("_all") or {})
        task.update(config.get("default") or {})
        if args.run:
            if args.run not in config:
                raise SpecLoadError(f".busted has no task {args.run!r}")
            task.update(config[args.run] or {})
    elif args.run:
        raise SpecLoadError("--run needs a .busted file")

    def pick(name: str, default: Any = None) -> Any:
        value = getattr(args, name.replace("-", "_"), None)
        if value not in (None, []):
            return value
        return task.get(name, default)

    options = SpecOptions(
        lpath=_as_list(task.get("lpath")) + list(args.lpath),
        cpath=_as_list(task.get("cpath")) + list(args.cpath),
        pattern=_as_list(pick("pattern")),
        exclude_pattern=_as_list(pick("exclude-pattern")),
        tags=_split_list(_as_list(pick("tags"))),
        exclude_tags=_split_list(_as_list(pick("exclude-tags"))),
        filter=_as_list(pick("filter")),
        filter_out=_as_list(pick("filter-out")),
        helper=pick("helper"),
        list=bool(pick("list", False)),
        shuffle=bool(pick("shuffle", False)),
        sort=bool(pick("sort", False)),
        seed=int(pick("seed")) if pick("seed") is not None else None,
        timeout=float(pick("timeout", DEFAULT_TIMEOUT)),
        sandbox=bool(pick("sandbox", False)),
        verbose=bool(pick("verbose", False)),
    )
    roots = list(args.paths) or _as_list(task.get("ROOT")) or ["spec"]
    # busted's default: utfTerminal on a terminal, plainTerminal otherwise.
    default_output = "utfTerminal" if sys.stdout.isatty() else "plainTerminal"
    output = pick("output", default_output)
    if output not in OUTPUTS:
        output = default_output
    return options, roots, output


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`luanet spec [ROOT...] [options]` (see --help)."""
    from .bridge import LUA_MODULES

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return _worker_main(args.worker)
    versions = _versions(args.lua or os.environ.get("LUANET_SPEC_LUA") or DEFAULT_LUA)
    unknown = [v for v in versions if v not in LUA_MODULES]
    if unknown or not versions:
        parser.error(f"unknown Lua version {', '.join(unknown) or repr(args.lua)}; "
                     f"choose from {', '.join(LUA_MODULES)}")
    try:
        options, roots, output = options_from(args, read_busted_file("."))
    except SpecLoadError as exc:
        print(f"luanet spec: {exc}", file=sys.stderr)
        return 1
    try:
        return run_specs(roots, versions, options=options, output=output)
    except BrokenPipeError:  # the output was piped into `head` or similar
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
