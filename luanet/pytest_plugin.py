"""pytest plugin collecting busted spec files (``*_spec.lua``; see luanet.spec).

Every ``it`` of a spec file is one pytest item, named by its describe path
(``spec/server_spec.lua::TcpServer listen picks a port``) and carrying the
spec file and line; ``pending`` tests are skipped. Collection lists the tests
as ``busted --list`` does (describe bodies run, tests do not); the first item
of a file then runs the file's selected tests in busted's order and every item
reports its own result.

Each Lua version runs in a worker process of its own (two Lua versions must
not share a process once C modules are loaded with global symbols), started
in the rootdir, where ``require`` finds the code under test as under busted.

Options, first one set wins: command line, then environment, then ini, then
the rootdir's ``.busted`` (default task):
- ``--lua-version 5.4,luajit`` / ``LUANET_SPEC_LUA`` / ``luanet_spec_versions``
  (default 5.4; with several, item names start with ``[version]``);
- ini twins of ``luanet spec``'s options: ``luanet_spec_lpath``,
  ``luanet_spec_cpath``, ``luanet_spec_pattern``, ``luanet_spec_tags``,
  ``luanet_spec_exclude_tags``, ``luanet_spec_filter``,
  ``luanet_spec_filter_out``, ``luanet_spec_helper``, ``luanet_spec_shuffle``,
  ``luanet_spec_sort``, ``luanet_spec_seed``, ``luanet_spec_timeout``,
  ``luanet_spec_exclude_pattern``, ``luanet_spec_run`` (a task of ``.busted``)
  (seconds per test, default 30), ``luanet_spec_sandbox`` (true: the
  plugin-host sandbox), ``luanet_spec_verbose``.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from .spec import (
    DEFAULT_LUA,
    DEFAULT_PATTERN,
    DEFAULT_TIMEOUT,
    SpecLoadError,
    SpecOptions,
    SpecResult,
    Worker,
    _as_list,
    _matches_any,
    _split_list,
    read_busted_file,
)

_LIST_INIS = ("lpath", "cpath", "pattern", "exclude_pattern", "tags", "exclude_tags", "filter",
              "filter_out")
_BOOL_INIS = ("sandbox", "shuffle", "sort", "verbose")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("luanet", "luanet busted spec files")
    group.addoption("--lua-version", dest="luanet_lua_version", default=None, metavar="VERSIONS",
                    help="Lua version(s) to run spec files under, comma separated "
                         "(5.1, 5.2, 5.3, 5.4, 5.5, luajit). Default: $LUANET_SPEC_LUA, "
                         "else the luanet_spec_versions ini option, else 5.4.")
    group.addoption("--luanet-sandbox", dest="luanet_sandbox", action="store_true", default=None,
                    help="run spec files in the plugin-host sandbox (luanet_spec_sandbox)")
    parser.addini("luanet_spec_versions", type="args", default=[DEFAULT_LUA],
                  help="Lua versions to run spec files under (default: 5.4)")
    for name in _LIST_INIS:
        parser.addini(f"luanet_spec_{name}", type="args", default=[],
                      help=f"luanet spec --{name.replace('_', '-')} (space or comma separated)")
    for name in _BOOL_INIS:
        parser.addini(f"luanet_spec_{name}", type="bool", default=None,
                      help=f"luanet spec --{name}")
    parser.addini("luanet_spec_helper", default=None, help="luanet spec --helper")
    parser.addini("luanet_spec_run", default=None, help="luanet spec --run: a task of .busted")
    parser.addini("luanet_spec_seed", default=None, help="luanet spec --seed")
    parser.addini("luanet_spec_timeout", default=None,
                  help=f"seconds a test may run (default {DEFAULT_TIMEOUT:g}; 0: no limit)")


def spec_versions(config: pytest.Config) -> List[str]:
    value = config.getoption("luanet_lua_version") or os.environ.get("LUANET_SPEC_LUA")
    versions = value.replace(",", " ").split() if value else config.getini("luanet_spec_versions")
    return list(dict.fromkeys(versions)) or [DEFAULT_LUA]


def spec_options(config: pytest.Config) -> SpecOptions:
    cached: Optional[SpecOptions] = getattr(config, "_luanet_spec_options", None)
    if cached is not None:
        return cached
    try:
        busted = read_busted_file(config.rootpath) or {}
    except SpecLoadError:
        busted = {}
    task: Dict[str, Any] = dict(busted.get("_all") or {})
    task.update(busted.get("default") or {})
    run = config.getini("luanet_spec_run")
    if run:
        task.update(busted.get(run) or {})

    def ini(name: str) -> Any:
        try:
            value = config.getini(f"luanet_spec_{name}")
        except ValueError:
            return None
        return value if value not in ([], "") else None

    def listed(name: str) -> List[str]:
        value = ini(name)
        if value is not None:
            return _split_list(value) if name in ("tags", "exclude_tags") else list(value)
        from_task = _as_list(task.get(name.replace("_", "-")))
        return _split_list(from_task) if name in ("tags", "exclude_tags") else from_task

    def flag(name: str) -> bool:
        value = ini(name)
        if value is None:
            value = task.get(name)
        return bool(value)

    seed = ini("seed") or task.get("seed")
    timeout = ini("timeout") or task.get("timeout")
    options = SpecOptions(
        lpath=listed("lpath"), cpath=listed("cpath"), pattern=listed("pattern"),
        exclude_pattern=listed("exclude_pattern"),
        tags=listed("tags"), exclude_tags=listed("exclude_tags"), filter=listed("filter"),
        filter_out=listed("filter_out"), helper=ini("helper") or task.get("helper"),
        shuffle=flag("shuffle"), sort=flag("sort"), verbose=flag("verbose"),
        sandbox=flag("sandbox") or bool(config.getoption("luanet_sandbox")),
        seed=int(seed) if seed is not None else None,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
    )
    if options.shuffle and options.seed is None:
        options.seed = random.SystemRandom().randrange(1, 2 ** 31)
    if options.helper:
        options.helper = str(Path(config.rootpath, options.helper))
    config._luanet_spec_options = options  # type: ignore[attr-defined]
    return options


def _workers(config: pytest.Config) -> Dict[str, Worker]:
    workers = getattr(config, "_luanet_spec_workers", None)
    if workers is None:
        workers = config._luanet_spec_workers = {}  # type: ignore[attr-defined]
    return workers


def _worker(config: pytest.Config, version: str) -> Worker:
    workers = _workers(config)
    if version not in workers:
        workers[version] = Worker(version, cwd=str(config.rootpath))
    return workers[version]


def pytest_unconfigure(config: pytest.Config) -> None:
    for worker in _workers(config).values():
        worker.close()
    _workers(config).clear()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Optional[LuaSpecFile]:
    if file_path.suffix != ".lua":
        return None
    options = spec_options(parent.config)
    patterns = options.pattern or [DEFAULT_PATTERN]
    if _matches_any(file_path.name, patterns) and not _matches_any(file_path.name,
                                                                   options.exclude_pattern):
        return LuaSpecFile.from_parent(parent, path=file_path)
    return None


class SpecFailed(Exception):
    """A spec test failed or errored; carries the Lua runner's result."""

    def __init__(self, result: SpecResult):
        super().__init__(result.message)
        self.result = result


class LuaSpecFile(pytest.File):
    """A spec file. Collection lists its tests in each version's worker; the
    first item of a version runs the selected tests, the others read their
    results."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._results: Dict[str, Dict[Tuple[str, int], SpecResult]] = {}
        self._errors: Dict[str, List[SpecResult]] = {}
        self._listed_errors: Set[Tuple[str, str, int]] = set()

    def collect(self) -> Iterator[pytest.Item]:
        versions = spec_versions(self.config)
        base = spec_options(self.config)
        for version in versions:
            options = SpecOptions.from_json(base.to_json())
            options.list = True
            results = _worker(self.config, version).run_file(self.path, options)
            errors = [r for r in results if r.kind == "error"]
            tests = [r for r in results if r.kind == "list"]
            if errors and not tests:
                raise self.CollectError(f"{self.path} [Lua {version}]:\n" + "\n\n".join(
                    f"{r.name}\n{r.message}" for r in errors))
            prefix = f"[{version}] " if len(versions) > 1 else ""
            for error in errors:
                # A describe body that fails: busted reports it and runs the rest.
                self._listed_errors.add((version, error.name, error.line))
                yield LuaSpecError.from_parent(self, name=f"{prefix}{error.name} (error)",
                                               error=error)
            # pytest needs unique names; two `it`s may share one.
            seen = Counter(t.name for t in tests)
            occurrence: Counter[str] = Counter()
            for test in tests:
                name = prefix + test.name
                if seen[test.name] > 1:
                    name += f" (line {test.line})"
                occurrence[test.key] += 1
                yield LuaSpecItem.from_parent(self, name=name, test=test, version=version,
                                              occurrence=occurrence[test.key])

    def results_for(self, version: str) -> Dict[Tuple[str, int], SpecResult]:
        if version not in self._results:
            selected = [item for item in self.session.items
                        if isinstance(item, LuaSpecItem) and item.parent is self
                        and item.version == version]
            options = SpecOptions.from_json(spec_options(self.config).to_json())
            options.select = sorted({item.test.key for item in selected})
            results = _worker(self.config, version).run_file(self.path, options)
            by_key: Dict[Tuple[str, int], SpecResult] = {}
            count: Counter[str] = Counter()
            errors: List[SpecResult] = []
            for result in results:
                if result.kind == "test":
                    count[result.key] += 1
                    by_key[(result.key, count[result.key])] = result
                elif result.kind == "error":
                    errors.append(result)
            self._results[version] = by_key
            self._errors[version] = errors
        return self._results[version]

    def errors_for(self, version: str) -> List[SpecResult]:
        return self._errors.get(version, [])

    def teardown(self) -> None:
        # Errors outside tests (a teardown, a describe body) fail the file.
        errors, self._errors = self._errors, {}
        self._results = {}
        text = "\n\n".join(f"[Lua {version}] {e.file}:{e.line}: {e.name}\n{e.message}"
                            for version, found in errors.items() for e in found
                            if (version, e.name, e.line) not in self._listed_errors)
        if text:
            pytest.fail(text, pytrace=False)


class LuaSpecError(pytest.Item):
    """An error outside any test found while listing a file (a describe body
    that raises): one failing item, the file's other tests still run."""

    def __init__(self, *, error: SpecResult, **kwargs: Any):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise SpecFailed(self.error)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, SpecFailed):
            return f"error: {excinfo.value.result.message}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> Tuple[Any, int, str]:
        return self.path, max(self.error.line - 1, 0), self.name


class LuaSpecItem(pytest.Item):
    def __init__(self, *, test: SpecResult, version: str, occurrence: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        self.test = test
        self.version = version
        self.occurrence = occurrence

    @property
    def spec_file(self) -> LuaSpecFile:
        return self.parent  # type: ignore[return-value]

    def runtest(self) -> None:
        results = self.spec_file.results_for(self.version)
        result = results.get((self.test.key, self.occurrence))
        if result is None:
            errors = self.spec_file.errors_for(self.version)
            detail = "\n\n".join(f"{e.file}:{e.line}: {e.name}\n{e.message}" for e in errors)
            raise SpecFailed(SpecResult("test", "error", self.test.name, self.test.file,
                                        self.test.line,
                                        "the test did not run" + (f":\n{detail}" if detail else
                                                                  " (its file's tests changed?)"),
                                        version=self.version))
        if result.status == "pending":
            pytest.skip(result.message or "pending")
        if result.status != "success":
            raise SpecFailed(result)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, SpecFailed):
            result = excinfo.value.result
            text = f"{result.status}: {result.message}"
            if result.trace and self.config.getoption("verbose", 0) > 0:
                text += "\n" + result.trace
            return text
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> Tuple[Any, int, str]:
        return self.path, self.test.line - 1, f"[Lua {self.version}] {self.test.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    # A pending test is skipped at its `it` line, not inside this plugin.
    if isinstance(item, LuaSpecItem) and report.skipped and isinstance(report.longrepr, tuple):
        _, _, reason = report.longrepr
        report.longrepr = (str(item.path), item.test.line, reason)
