"""Busted-style spec files (``*_spec.lua``), run on a LuaHost.

The Lua half (``lua/busted.lua``) registers a file's describe/it tree when the
file is loaded and then runs one test at a time by id. This module gives that a
Python face used by both front ends:

- ``SpecFile``: one spec file in its own fresh LuaHost: its tests, run one,
  finish (teardowns still due), close. The pytest plugin runs one item per test.
- ``run_specs`` / ``main``: the ``luanet spec`` command, with busted's summary
  line (``N successes / N failures / N errors / N pending : T seconds``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, TextIO, Union

log = logging.getLogger("luanet")

DEFAULT_LUA = "5.4"
SPEC_SUFFIX = "_spec.lua"
STATUSES = ("success", "failure", "error", "pending")


class SpecLoadError(Exception):
    """The spec file itself could not be run (syntax error, error at top level)."""


@dataclass(frozen=True)
class SpecTest:
    id: int          # busted.lua's id: the test's position in the file
    name: str        # full name: the describe path and the it, space separated
    line: int        # line of the `it` (or `pending`) call
    pending: bool


@dataclass(frozen=True)
class SpecResult:
    test: SpecTest
    status: str      # one of STATUSES
    message: str     # "" on success; failures name the spec's file:line
    duration: float


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def display_path(path: Union[str, os.PathLike]) -> str:
    """The path as messages show it: relative to the working directory when
    below it (short and clickable), else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_busted(host: Any) -> Any:
    """busted.lua's module table, run in the host's (possibly sandboxed) environment."""
    load_module = getattr(host, "load_module", None)
    if load_module is not None:
        return load_module("busted")
    from .bridge import lua_source
    return host.execute(lua_source("busted.lua"), name="@luanet/busted.lua")


class SpecFile:
    """One spec file loaded into a fresh LuaHost of its own.

    ``tests`` lists what the file registered; ``run(test)`` runs one of them
    (with its setup/before_each/after_each/teardown); ``finish()`` runs the
    teardowns still due; ``close()`` closes the host. Usable as a context
    manager (finish is then up to the caller: its errors belong to a report).
    """

    def __init__(self, path: Union[str, os.PathLike], lua: str = DEFAULT_LUA, *,
                 sandbox: bool = True):
        from .host import LuaError, LuaHost

        self.path = Path(path)
        self.name = display_path(self.path)
        self.lua = lua
        self._handler_errors: List[str] = []
        self._host = LuaHost(lua=lua, sandbox=sandbox, on_error=self._on_handler_error)
        try:
            self._busted = _load_busted(self._host)
            self._busted.install(self._host.globals.table)
            self._busted.reset()
            try:
                self._host.execute(self.path.read_bytes(), name="@" + self.name)
            except LuaError as exc:
                detail = f"\n{exc.traceback}" if exc.traceback else ""
                raise SpecLoadError(f"{exc.message}{detail}") from None
            listed = self._busted.tests()
            self.tests = [self._test(listed[i]) for i in range(1, len(listed) + 1)]
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _test(entry: Any) -> SpecTest:
        return SpecTest(id=int(entry.id), name=_text(entry.full_name), line=int(entry.line),
                        pending=bool(entry.pending))

    @property
    def host(self) -> Any:
        """The LuaHost the file runs in (None once closed)."""
        return self._host

    def _on_handler_error(self, message: str) -> None:
        # Errors in handlers (an assertion failing in a callback, typically)
        # are logged as the host would; a test that then fails shows them too,
        # since they are usually the reason.
        self._handler_errors.append(message)
        log.error("luanet: error in a Lua handler: %s", message)

    def run(self, test: Union[SpecTest, int]) -> SpecResult:
        if isinstance(test, int):
            by_id = {t.id: t for t in self.tests}
            if test not in by_id:
                raise KeyError(f"{self.name} has no test with id {test}")
            test = by_id[test]
        self._handler_errors.clear()
        start = time.perf_counter()
        try:
            status, message = self._busted.run(test.id)
            status, message = _text(status), _text(message)
        except Exception as exc:  # the runner itself broke, or a Python error inside Lua
            status, message = "error", f"{type(exc).__name__}: {_text(exc.args[0] if exc.args else exc)}"
        duration = time.perf_counter() - start
        if status in ("failure", "error") and self._handler_errors:
            message += "\n\nErrors raised in handlers during this test:\n" + "\n".join(
                self._handler_errors)
        self._handler_errors.clear()
        return SpecResult(test, status, message, duration)

    def finish(self) -> Optional[str]:
        """Run the teardowns still due; None, or the message of what failed."""
        if self._host is None:
            return None
        return _text(self._busted.finish()) or None

    def close(self) -> None:
        host, self._host = getattr(self, "_host", None), None
        self._busted = None
        if host is not None:
            host.close()

    def __enter__(self) -> "SpecFile":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def find_spec_files(paths: Iterable[Union[str, os.PathLike]]) -> List[Path]:
    """Files as given; directories searched (recursively) for *_spec.lua."""
    found: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*" + SPEC_SUFFIX) if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return found


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def summary_line(counts: dict, seconds: float) -> str:
    """busted's summary: `2 successes / 1 failure / 0 errors / 0 pending : 0.012 seconds`."""
    return " / ".join([
        _plural(counts["success"], "success", "successes"),
        _plural(counts["failure"], "failure", "failures"),
        _plural(counts["error"], "error", "errors"),
        f"{counts['pending']} pending",
    ]) + f" : {seconds:.3f} seconds"


# busted's plain-terminal progress marks.
_MARKS = {"success": "+", "failure": "-", "error": "*", "pending": "."}


def run_specs(paths: Optional[Sequence[Union[str, os.PathLike]]] = None,
              lua: Union[str, Sequence[str]] = DEFAULT_LUA, out: Optional[TextIO] = None, *,
              sandbox: bool = True) -> int:
    """Run every test of the spec files under `paths` (default: spec/), under
    one Lua version or several; print progress, busted's summary line, then
    each failure and error. Returns the exit code: 0 when all passed."""
    out = out if out is not None else sys.stdout
    versions = [lua] if isinstance(lua, str) else list(lua)
    try:
        files = find_spec_files(paths or ["spec"])
    except FileNotFoundError as exc:
        print(f"luanet spec: {exc}", file=out)
        return 1
    counts = dict.fromkeys(STATUSES, 0)
    problems: List[tuple] = []  # (kind, where, name, message)
    start = time.perf_counter()

    def report(status: str, where: str, name: str, message: str) -> None:
        counts[status] += 1
        out.write(_MARKS[status])
        out.flush()
        if status in ("failure", "error"):
            problems.append((status, where, name, message))

    for version in versions:
        prefix = f"[{version}] " if len(versions) > 1 else ""
        for path in files:
            try:
                spec = SpecFile(path, version, sandbox=sandbox)
            except SpecLoadError as exc:
                report("error", display_path(path), prefix + display_path(path), str(exc))
                continue
            with spec:
                for test in spec.tests:
                    result = spec.run(test)
                    report(result.status, f"{spec.name} @ {test.line}", prefix + test.name,
                           result.message)
                failed_teardown = spec.finish()
                if failed_teardown:
                    report("error", spec.name, prefix + "teardown", failed_teardown)

    out.write("\n" + summary_line(counts, time.perf_counter() - start) + "\n")
    for status, where, name, message in problems:
        out.write(f"\n{status.capitalize()} -> {where}\n{name}\n{message}\n")
    out.flush()
    return 0 if not problems else 1


def _versions(value: str) -> List[str]:
    return [v for v in value.replace(",", " ").split() if v]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`luanet spec [PATH...] [--lua VERSION[,VERSION...]] [--no-sandbox]`."""
    from .bridge import LUA_MODULES

    parser = argparse.ArgumentParser(
        prog="luanet spec", description="Run busted-style *_spec.lua files (default: spec/).")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="spec files or directories to search for *_spec.lua")
    parser.add_argument("--lua", default=os.environ.get("LUANET_SPEC_LUA") or DEFAULT_LUA,
                        help="Lua version(s), comma separated: " + ", ".join(LUA_MODULES)
                        + " (default: $LUANET_SPEC_LUA or 5.4)")
    parser.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                        help="give specs the whole standard library (io, os, debug)")
    args = parser.parse_args(argv)
    versions = _versions(args.lua)
    unknown = [v for v in versions if v not in LUA_MODULES]
    if unknown or not versions:
        parser.error(f"unknown Lua version {', '.join(unknown) or repr(args.lua)}; "
                     f"choose from {', '.join(LUA_MODULES)}")
    return run_specs(args.paths, versions, sandbox=args.sandbox)


if __name__ == "__main__":
    sys.exit(main())
