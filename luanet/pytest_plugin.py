"""pytest plugin collecting *_spec.lua files (see luanet.spec).

Every ``it`` of a spec file is one pytest item, named by its describe path
(``spec/server_spec.lua::TcpServer listen picks a port``); ``pending`` tests
are skipped. Each spec file gets one LuaHost per Lua version, opened by its
first item and closed (after the remaining teardowns) when pytest tears the
file down.

Lua versions, first one set wins: ``--lua-version 5.4,luajit``, the
LUANET_SPEC_LUA environment variable, the ini option
``luanet_spec_versions = 5.4 5.1 luajit``; default 5.4. With more than one
version, item names start with the version: ``[luajit] TcpServer ...``.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Dict, Iterator, List, Optional

import pytest

from .spec import DEFAULT_LUA, SPEC_SUFFIX, SpecFile, SpecLoadError, SpecResult, SpecTest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("luanet", "luanet *_spec.lua files")
    group.addoption("--lua-version", dest="luanet_lua_version", default=None, metavar="VERSIONS",
                    help="Lua version(s) to run *_spec.lua files under, comma separated "
                         "(5.1, 5.2, 5.3, 5.4, 5.5, luajit). Default: $LUANET_SPEC_LUA, "
                         "else the luanet_spec_versions ini option, else 5.4.")
    parser.addini("luanet_spec_versions", type="args", default=[DEFAULT_LUA],
                  help="Lua versions to run *_spec.lua files under (default: 5.4)")


def spec_versions(config: pytest.Config) -> List[str]:
    value = config.getoption("luanet_lua_version") or os.environ.get("LUANET_SPEC_LUA")
    versions = value.replace(",", " ").split() if value else config.getini("luanet_spec_versions")
    return list(dict.fromkeys(versions)) or [DEFAULT_LUA]


def pytest_collect_file(file_path, parent):
    if file_path.name.endswith(SPEC_SUFFIX):
        return LuaSpecFile.from_parent(parent, path=file_path)
    return None


class SpecFailed(Exception):
    """A spec test failed or errored; carries the Lua runner's result."""

    def __init__(self, result: SpecResult):
        super().__init__(result.message)
        self.result = result


class LuaSpecFile(pytest.File):
    """A *_spec.lua file. Collection loads it in a throwaway host to list its
    tests; the items run in hosts this node opens lazily, one per version, and
    closes at its teardown."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._specs: Dict[str, SpecFile] = {}

    def collect(self) -> Iterator["LuaSpecItem"]:
        versions = spec_versions(self.config)
        for version in versions:
            try:
                with SpecFile(self.path, version) as spec:
                    tests = spec.tests
            except (SpecLoadError, ValueError) as exc:
                raise self.CollectError(f"{self.path} [Lua {version}]: {exc}") from None
            prefix = f"[{version}] " if len(versions) > 1 else ""
            # pytest needs unique names; two `it`s may share one.
            seen = Counter(test.name for test in tests)
            for test in tests:
                name = prefix + test.name
                if seen[test.name] > 1:
                    name += f" (line {test.line})"
                yield LuaSpecItem.from_parent(self, name=name, test=test, version=version)

    def spec_for(self, version: str) -> SpecFile:
        spec = self._specs.get(version)
        if spec is None:
            spec = self._specs[version] = SpecFile(self.path, version)
        return spec

    def teardown(self) -> None:
        failures = []
        specs, self._specs = self._specs, {}
        for version, spec in specs.items():
            try:
                failed = spec.finish()
                if failed:
                    failures.append(f"[Lua {version}] {failed}")
            finally:
                spec.close()
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)


class LuaSpecItem(pytest.Item):
    def __init__(self, *, test: SpecTest, version: str, **kwargs):
        super().__init__(**kwargs)
        self.test = test
        self.version = version

    @property
    def spec_file(self) -> LuaSpecFile:
        return self.parent  # type: ignore[return-value]

    def setup(self) -> None:
        try:
            self._spec = self.spec_file.spec_for(self.version)
        except SpecLoadError as exc:
            pytest.fail(str(exc), pytrace=False)
        # Same file, loaded again: the tests should be the same ones.
        current = next((t for t in self._spec.tests if t.id == self.test.id), None)
        if current is None or current.name != self.test.name:
            pytest.fail(f"{self._spec.name}: the tests differ from those collected "
                        f"(does the file generate tests nondeterministically?)", pytrace=False)

    def runtest(self) -> None:
        result = self._spec.run(self.test)
        if result.status == "pending":
            pytest.skip(result.message or "pending")
        if result.status != "success":
            raise SpecFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecFailed):
            result = excinfo.value.result
            return f"{result.status}: {result.message}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, self.test.line - 1, f"[Lua {self.version}] {self.test.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # A pending test is skipped at its `it` line, not inside this plugin.
    if isinstance(item, LuaSpecItem) and report.skipped and isinstance(report.longrepr, tuple):
        _, _, reason = report.longrepr
        report.longrepr = (str(item.path), item.test.line, reason)
