"""The busted-compatible spec runner: lua/busted.lua, luanet/spec.py and the
pytest plugin, driven with small spec files written into tmp_path."""

from __future__ import annotations

import io
import textwrap

import pytest

from luanet.bridge import LUA_MODULES
from luanet.spec import SpecFile, SpecLoadError, main, run_specs

pytest_plugins = ["pytester"]

ALL_VERSIONS = list(LUA_MODULES)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    # Spec paths then show as short relative names, as they do in a project.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUANET_SPEC_LUA", raising=False)


def lua(source: str) -> str:
    return textwrap.dedent(source).lstrip("\n")


def write(tmp_path, name: str, source: str):
    path = tmp_path / name
    path.write_text(lua(source))
    return path


def line_of(path, marker: str) -> int:
    """1-based line of the first line of the file containing marker."""
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def run_all(path, lua_version="5.4", **kwargs):
    """{test name: (status, message)} of every test in the file, in order."""
    with SpecFile(path, lua_version, **kwargs) as spec:
        results = {test.name: spec.run(test) for test in spec.tests}
        assert spec.finish() is None
    return {name: (r.status, r.message) for name, r in results.items()}


def run_cli(*paths, lua="5.4"):
    out = io.StringIO()
    code = run_specs(list(paths), lua, out=out)
    return code, out.getvalue()


MIXED = """
describe("calc", function()
  it("adds", function()
    assert.are.equal(4, 2 + 2)
  end)
  it("fails", function()
    assert.are.equal(2, 1) -- FAILS HERE
  end)
  it("errors", function()
    local t = nil
    return t.field -- ERRORS HERE
  end)
  pending("later")
end)
"""


# ---------------------------------------------------------------- statuses and messages

def test_statuses_and_messages(tmp_path):
    path = write(tmp_path, "calc_spec.lua", MIXED)
    results = run_all(path)
    assert list(results) == ["calc adds", "calc fails", "calc errors", "calc later"]
    assert [status for status, _ in results.values()] == ["success", "failure", "error", "pending"]
    assert results["calc adds"][1] == ""
    fail_line = line_of(path, "FAILS HERE")
    assert results["calc fails"][1] == (
        f"calc_spec.lua:{fail_line}: Expected objects to be equal.\n"
        "Passed in:\n(number) 1\nExpected:\n(number) 2")
    assert results["calc errors"][1].startswith(
        f"calc_spec.lua:{line_of(path, 'ERRORS HERE')}: attempt to index")


def test_tests_list_names_lines_and_pending(tmp_path):
    path = write(tmp_path, "calc_spec.lua", MIXED)
    with SpecFile(path) as spec:
        tests = spec.tests
    assert [(t.id, t.name, t.pending) for t in tests] == [
        (1, "calc adds", False), (2, "calc fails", False),
        (3, "calc errors", False), (4, "calc later", True)]
    assert tests[1].line == line_of(path, 'it("fails"')
    assert tests[3].line == line_of(path, 'pending("later")')


def test_run_specs_summary_details_and_exit_code(tmp_path):
    (tmp_path / "spec").mkdir()
    write(tmp_path, "spec/calc_spec.lua", MIXED)
    write(tmp_path, "spec/ok_spec.lua", 'it("works", function() assert.is_true(true) end)')
    write(tmp_path, "spec/helper.lua", 'error("must not be run")')
    code, out = run_cli()  # default: spec/
    assert code == 1
    assert "2 successes / 1 failure / 1 error / 1 pending : " in out
    assert out.splitlines()[0] == "+-*.+"
    assert "Failure -> spec/calc_spec.lua @ 5\ncalc fails\nspec/calc_spec.lua:6: Expected objects" in out
    assert "Error -> spec/calc_spec.lua @ 8\ncalc errors\nspec/calc_spec.lua:10: attempt to index" in out
    assert "must not be run" not in out


def test_run_specs_all_passing_returns_zero(tmp_path):
    path = write(tmp_path, "ok_spec.lua", """
        describe("a", function()
          it("one", function() assert.truthy(1) end)
          it("two", function() assert.falsy(nil) end)
        end)
    """)
    code, out = run_cli(path)
    assert code == 0
    assert "2 successes / 0 failures / 0 errors / 0 pending : " in out


def test_load_errors(tmp_path):
    broken = write(tmp_path, "broken_spec.lua", 'describe("x", function()\n  it("y" function() end)\nend)\n')
    with pytest.raises(SpecLoadError, match=r"broken_spec.lua:2:"):
        SpecFile(broken)
    code, out = run_cli(broken)
    assert code == 1 and "0 successes / 0 failures / 1 error / 0 pending" in out
    code, out = run_cli(tmp_path / "missing_spec.lua")
    assert code == 1 and "no such file" in out


def test_error_in_describe_body_is_reported_and_other_tests_still_run(tmp_path):
    path = write(tmp_path, "body_spec.lua", """
        describe("broken", function()
          it("registered first", function() end)
          error("bad body")
        end)
        it("outside", function() end)
    """)
    results = run_all(path)
    assert results["broken"][0] == "error" and "body_spec.lua:3: bad body" in results["broken"][1]
    assert results["broken registered first"][0] == "success"
    assert results["outside"][0] == "success"


def test_plain_assert_is_luas_assert_and_a_failure(tmp_path):
    path = write(tmp_path, "plain_spec.lua", """
        it("keeps Lua's assert", function()
          local a, b = assert(1, "unused")
          assert.are.equal(1, a)
          assert.are.equal("unused", b)
          local ok, err = pcall(function() assert(false, "caught") end)
          assert.are.equal("plain_spec.lua:5: caught", err)
        end)
        it("fails", function()
          assert(1 == 2, "one is not two") -- PLAIN
        end)
    """)
    results = run_all(path)
    assert results["keeps Lua's assert"] == ("success", "")
    assert results["fails"] == ("failure", f"plain_spec.lua:{line_of(path, 'PLAIN')}: one is not two")


def test_errors_carry_a_traceback_when_debug_is_available(tmp_path):
    path = write(tmp_path, "tb_spec.lua", """
        local function helper() error("deep") end
        it("errors", function() helper() end)
    """)
    status, message = run_all(path, sandbox=False)["errors"]
    assert status == "error"
    assert message.startswith("tb_spec.lua:1: deep\nstack traceback:\n")
    assert "tb_spec.lua:2:" in message
    assert "busted.lua" not in message and "xpcall" not in message


# ---------------------------------------------------------------- blocks and hooks

def test_hooks_run_in_busted_order(tmp_path):
    path = write(tmp_path, "order_spec.lua", """
        LOG = {}
        local function log(s) return function() LOG[#LOG + 1] = s end end
        describe("outer", function()
          setup(log("setup outer"))
          teardown(log("teardown outer"))
          before_each(log("before outer"))
          after_each(log("after outer"))
          it("first", log("it first"))
          describe("inner", function()
            lazy_setup(log("setup inner"))
            lazy_teardown(log("teardown inner"))
            before_each(log("before inner"))
            after_each(log("after inner"))
            it("second", log("it second"))
            it("third", function() finally(log("finally third")); error("boom") end)
          end)
        end)
    """)
    with SpecFile(path) as spec:
        statuses = [spec.run(t).status for t in spec.tests]
        assert spec.finish() is None
        log = list(spec.host.eval("LOG").values())
    assert statuses == ["success", "success", "error"]
    assert [entry.decode() for entry in log] == [
        "setup outer", "before outer", "it first", "after outer",
        "setup inner", "before outer", "before inner", "it second", "after inner", "after outer",
        "before outer", "before inner", "finally third", "after inner", "after outer",
        "teardown inner", "teardown outer"]


def test_teardown_waits_for_finish_when_the_last_test_is_not_run(tmp_path):
    path = write(tmp_path, "partial_spec.lua", """
        TORN = 0
        describe("block", function()
          teardown(function() TORN = TORN + 1 end)
          it("one", function() end)
          it("two", function() end)
        end)
    """)
    with SpecFile(path) as spec:
        assert spec.run(spec.tests[0]).status == "success"
        assert spec.host.eval("TORN") == 0
        assert spec.finish() is None
        assert spec.host.eval("TORN") == 1


def test_failing_setup_errors_every_test_of_its_block_only(tmp_path):
    path = write(tmp_path, "setup_spec.lua", """
        SETUPS = 0
        describe("bad", function()
          setup(function() SETUPS = SETUPS + 1; error("no database") end)
          it("a", function() end)
          it("b", function() end)
        end)
        it("elsewhere", function() end)
    """)
    with SpecFile(path) as spec:
        results = [spec.run(t) for t in spec.tests]
        assert spec.host.eval("SETUPS") == 1
    assert [r.status for r in results] == ["error", "error", "success"]
    assert "setup of describe 'bad'" in results[0].message and "no database" in results[1].message


def test_finally_runs_after_a_failure_and_its_errors_are_reported(tmp_path):
    path = write(tmp_path, "finally_spec.lua", """
        CLEANED = false
        it("fails", function()
          finally(function() CLEANED = true end)
          assert.is_true(false)
        end)
        it("finally errors", function()
          finally(function() error("cleanup broke") end)
        end)
    """)
    with SpecFile(path) as spec:
        failed, broken = (spec.run(t) for t in spec.tests)
        assert spec.host.eval("CLEANED") is True
    assert failed.status == "failure"
    assert broken.status == "error" and "cleanup broke" in broken.message


def test_teardown_errors_are_reported(tmp_path):
    path = write(tmp_path, "teardown_spec.lua", """
        describe("block", function()
          teardown(function() error("teardown broke") end)
          it("only", function() end)
        end)
    """)
    with SpecFile(path) as spec:
        result = spec.run(spec.tests[0])
    assert result.status == "error"
    assert "teardown of describe 'block'" in result.message and "teardown broke" in result.message


def test_pending_forms(tmp_path):
    path = write(tmp_path, "pending_spec.lua", """
        pending("not written yet")
        it("no body")
        it("decides at run time", function() pending("needs IPv6") end)
    """)
    results = run_all(path)
    assert [status for status, _ in results.values()] == ["pending"] * 3
    assert results["decides at run time"][1] == "needs IPv6"


def test_registering_inside_a_test_is_an_error(tmp_path):
    path = write(tmp_path, "nested_spec.lua", """
        it("nests", function() it("inner", function() end) end)
    """)
    status, message = run_all(path)["nests"]
    assert status == "error" and "it() cannot be used inside a running test" in message


# ---------------------------------------------------------------- assertions

def test_assertion_forms_that_pass(tmp_path):
    path = write(tmp_path, "forms_spec.lua", """
        it("all pass", function()
          assert.are.equal(1, 1); assert.equals("a", "a"); assert.is.equal(true, true)
          assert.are_not.equal(1, 2); assert.is_not.equal(1, 2); assert.are.Not.equal(1, 2)
          assert.is_true(true); assert.is_false(false); assert.is_not_true(1)
          assert.truthy(0); assert.falsy(nil); assert.is_not.truthy(false)
          assert.is_nil(nil); assert.is_not_nil(false)
          assert.is_number(1); assert.is_string("s"); assert.is_table({})
          assert.is_function(print); assert.is_boolean(false); assert.is_not_number("1")
          assert.same({ 1, { a = "x" } }, { 1, { a = "x" } }); assert.are_not.same({ 1 }, { 2 })
          assert.same(0/0, 0/0)
          assert.has_error(function() error("boom") end)
          assert.has_error(function() error("boom") end, "boom")
          assert.has_error(function() error({ code = 1 }) end, { code = 1 })
          assert.has_errors(function() error("x") end)
          assert.has_no_error(function() end); assert.has_no.errors(function() end)
          assert.error_matches(function() error("port 80 in use") end, "port %d+ in use")
          assert.matches("^TcpServer%(", "TcpServer(listening)"); assert.does_not.match("x", "abc")
          assert.near(1, 1.05, 0.1); assert.is_not.near(1, 2, 0.5)
          local v = assert.is_not_nil(42)
          assert.are.equal(42, v)
        end)
    """)
    assert run_all(path)["all pass"] == ("success", "")


@pytest.mark.parametrize("assertion, expected", [
    ("assert.is_not.equal(1, 1)", "Expected objects to not be equal.\nPassed in:\n(number) 1\nDid not expect:\n(number) 1"),
    ("assert.is_true(1)", "Expected value to be true.\nPassed in:\n(number) 1"),
    ("assert.is_nil('x\\n')", "Expected value to be nil.\nPassed in:\n(string) 'x\\n'"),
    ("assert.is_not_nil(nil)", "Expected value not to be nil.\nPassed in:\n(nil)"),
    ("assert.falsy(0)", "Expected value to be falsy.\nPassed in:\n(number) 0"),
    ("assert.is_string(1)", "Expected value to be of type string.\nPassed in:\n(number) 1"),
    ("assert.equals(1, 2, 'custom text')", "custom text\nExpected objects to be equal."),
    ("assert.has_error(function() end)", "Expected an error, but no error was raised."),
    ("assert.has_error(function() error('a') end, 'b')", "Expected a different error.\nCaught:\n(string) 'spec.lua:2: a'\nExpected:\n(string) 'b'"),
    ("assert.has_no.errors(function() error('oops', 0) end)", "Expected no error, but caught:\n(string) 'oops'"),
    ("assert.error_matches(function() error('abc') end, '^x')", "Expected an error matching the pattern.\nCaught:\n(string) 'spec.lua:2: abc'\nPattern:\n(string) '^x'"),
    ("assert.matches('^b', 'abc')", "Expected strings to match.\nPassed in:\n(string) 'abc'\nExpected:\n(string) '^b'"),
    ("assert.near(1, 1.5, 0.1)", "Expected values to be near.\nPassed in:\n(number) 1.5\nExpected:\n(number) 1 +/- 0.1"),
])
def test_failing_assertions_say_what_and_where(tmp_path, assertion, expected):
    path = write(tmp_path, "spec.lua", f"""
        it("fails", function() local x = 1
          {assertion}
        end)
    """)
    status, message = run_all(path)["fails"]
    assert status == "failure"
    assert message.startswith(f"spec.lua:2: {expected}")


def test_same_shows_where_tables_differ(tmp_path):
    path = write(tmp_path, "same_spec.lua", """
        it("differs", function()
          assert.same({ 1, { name = "x", id = 3 } }, { 1, { name = "y", id = 3 } })
        end)
    """)
    status, message = run_all(path)["differs"]
    assert status == "failure"
    assert message == lua("""
        same_spec.lua:2: Expected objects to be the same.
        Passed in:
        (table) {
          [1] = 1
         *[2] = {
            id = 3
           *name = 'y' } }
        Expected:
        (table) {
          [1] = 1
         *[2] = {
            id = 3
           *name = 'x' } }
        First difference at [2].name:
          passed in: (string) 'y'
          expected: (string) 'x'""")


def test_same_with_a_missing_key_and_a_cycle(tmp_path):
    path = write(tmp_path, "cycle_spec.lua", """
        it("missing", function()
          local a, b = { k = 1 }, { k = 1, extra = true }
          a.self, b.self = a, b
          assert.same(a, b)
        end)
    """)
    status, message = run_all(path)["missing"]
    assert status == "failure"
    assert "*extra = true" in message and "{ <cycle> }" in message
    assert "First difference at extra:\n  passed in: (boolean) true\n  expected: (nil)" in message


def test_same_on_big_tables_shows_the_keys_around_the_difference(tmp_path):
    path = write(tmp_path, "big_spec.lua", """
        it("big", function()
          local a, b = {}, {}
          for i = 1, 100 do a[i], b[i] = i, i end
          b[77] = 0
          assert.same(a, b)
        end)
    """)
    _, message = run_all(path)["big"]
    passed_in = message.split("Expected:")[0]
    assert "... (73 keys before)\n  [74] = 74" in passed_in
    assert " *[77] = 0\n" in passed_in and "[80] = 80\n  ... (20 more keys) }" in passed_in
    assert "[5] = 5" not in message


def test_bytes_are_shown_unambiguously(tmp_path):
    path = write(tmp_path, "bytes_spec.lua", r"""
        it("binary", function() assert.are.equal("a\0\255'", "b") end)
    """)
    _, message = run_all(path)["binary"]
    assert "Expected:\n(string) 'a\\0\\255\\''" in message


def test_misused_assertions_are_errors_at_the_spec_line(tmp_path):
    path = write(tmp_path, "misuse_spec.lua", """
        it("one argument", function()
          assert.are.equal(1)
        end)
        it("unknown word", function()
          assert.is.frobnicated(1)
        end)
    """)
    results = run_all(path)
    assert results["one argument"][0] == "error"
    assert results["one argument"][1].startswith(
        "misuse_spec.lua:2: luassert: 'equals' needs at least 2 arguments, got 1")
    assert results["unknown word"][0] == "error"
    assert results["unknown word"][1].startswith(
        "misuse_spec.lua:5: luassert: unknown modifier or assertion 'frobnicated'")


# ---------------------------------------------------------------- spies and stubs

def test_spies(tmp_path):
    path = write(tmp_path, "spy_spec.lua", """
        it("records calls", function()
          local s = spy.new(function(a, b) return a + b end)
          assert.are.equal(3, s(1, 2))
          s(5, 5)
          assert.spy(s).was.called(2)
          assert.spy(s).was_called(2)
          assert.spy(s).was.called_with(1, 2)
          assert.spy(s).was_called_with(5, match._)
          assert.spy(s).was_not.called_with(1)
          assert.spy(s).returned_with(10)
          assert.is_true(s:called_with(5, 5))
          s:clear()
          assert.spy(s).was_not_called()
          assert.spy(s).was.not_called()
        end)
        it("spies on a method and reverts", function()
          local obj = { n = 0 }
          function obj:bump(k) self.n = self.n + k; return self.n end
          local original = obj.bump
          local s = spy.on(obj, "bump")
          assert.are.equal(3, obj:bump(3))
          assert.spy(obj.bump).was.called_with(obj, 3)
          assert.spy(s).was.called_with(match.is_ref(obj), match.is_number())
          s:revert()
          assert.are.equal(original, obj.bump)
        end)
        it("stubs", function()
          local t = { f = function() return "real" end }
          local s = stub(t, "f", "fake", 2)
          local a, b = t.f()
          assert.are.equal("fake", a); assert.are.equal(2, b)
          assert.stub(s).was.called(1)
          s:revert()
          assert.are.equal("real", t.f())
        end)
        it("reports call counts", function()
          local s = spy.new()
          s()
          assert.spy(s).was.called(3) -- COUNT
        end)
        it("reports arguments", function()
          local s = spy.new()
          s("got")
          assert.spy(s).was.called_with("wanted") -- ARGS
        end)
    """)
    results = run_all(path)
    for name in ("records calls", "spies on a method and reverts", "stubs"):
        assert results[name] == ("success", ""), name
    assert results["reports call counts"] == ("failure", (
        f"spy_spec.lua:{line_of(path, '-- COUNT')}: "
        "Expected to be called 3 time(s), but was called 1 time(s)"))
    assert results["reports arguments"] == ("failure", (
        f"spy_spec.lua:{line_of(path, '-- ARGS')}: Function was never called with matching arguments.\n"
        "Called with (last call if any):\n(string) 'got'\nExpected:\n(string) 'wanted'"))


# ---------------------------------------------------------------- with the network

def test_handler_errors_are_shown_with_the_test_that_fails(tmp_path):
    path = write(tmp_path, "handler_spec.lua", """
        it("waits for a handler that fails", function()
          local server = net.TcpServer.new()
          assert.is_true(server:listen(0))
          local accepted = false
          server.new_connection_handler = function(s)
            assert.are.equal(1, 2) -- IN HANDLER
            accepted = true
          end
          local client = net.TcpSocket.new()
          client:connect("127.0.0.1", server.port)
          assert.is_true(luanet.run_until(function() return accepted end, 0.5))
        end)
    """)
    status, message = run_all(path)["waits for a handler that fails"]
    assert status == "failure"
    assert "Expected value to be true" in message
    assert "Errors raised in handlers during this test:" in message
    assert f"handler_spec.lua:{line_of(path, 'IN HANDLER')}: Expected objects to be equal." in message


# ---------------------------------------------------------------- every Lua version

@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "with-debug"])
@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_lua_version(tmp_path, version, sandbox):
    # Sandboxed, busted.lua finds positions without the debug library.
    path = write(tmp_path, "calc_spec.lua", MIXED)
    results = run_all(path, version, sandbox=sandbox)
    assert [status for status, _ in results.values()] == ["success", "failure", "error", "pending"]
    assert results["calc fails"][1].startswith(f"calc_spec.lua:{line_of(path, 'FAILS HERE')}: ")
    assert results["calc errors"][1].startswith(f"calc_spec.lua:{line_of(path, 'ERRORS HERE')}: ")


def test_cli_main_runs_several_versions(tmp_path, capsys):
    write(tmp_path, "one_spec.lua", 'it("works", function() assert.is_string(_VERSION) end)')
    assert main(["one_spec.lua", "--lua", "5.1,luajit"]) == 0
    out = capsys.readouterr().out
    assert "2 successes / 0 failures / 0 errors / 0 pending" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--lua", "6.0"])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------- through pytest

def test_pytest_collects_one_item_per_it(pytester):
    pytester.makefile(".lua", calc_spec=lua(MIXED))
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "-rs")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "calc_spec.lua::calc adds PASSED*",
        "calc_spec.lua::calc fails FAILED*",
        "calc_spec.lua::calc errors FAILED*",
        "calc_spec.lua::calc later SKIPPED*",
    ])
    # The Lua message at the spec's line, not a traceback of the plugin.
    result.stdout.fnmatch_lines([
        "*_ [[]Lua 5.4] calc fails _*",
        "failure: calc_spec.lua:6: Expected objects to be equal.",
        "Passed in:",
        "(number) 1",
        "Expected:",
        "(number) 2",
        "*_ [[]Lua 5.4] calc errors _*",
        "error: calc_spec.lua:10: attempt to index*",
        "SKIPPED [[]1] calc_spec.lua:12: pending",
    ])
    assert "pytest_plugin.py" not in result.stdout.str()


def test_pytest_runs_each_version_from_the_ini_option(pytester):
    pytester.makeini("[pytest]\nluanet_spec_versions = 5.1 luajit\n")
    pytester.makefile(".lua", v_spec='it("version", function() assert.is_string(_VERSION) end)')
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["v_spec.lua::[[]5.1] version PASSED*",
                                 "v_spec.lua::[[]luajit] version PASSED*"])


def test_pytest_version_option_and_environment(pytester, monkeypatch):
    pytester.makefile(".lua", v_spec='it("is 5.3", function() assert.are.equal("Lua 5.3", _VERSION) end)')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    pytester.runpytest("-p", "no:cacheprovider", "--lua-version", "5.3").assert_outcomes(passed=1)
    monkeypatch.setenv("LUANET_SPEC_LUA", "5.3")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_pytest_selects_single_items_and_reports_teardown_errors(pytester):
    pytester.makefile(".lua", td_spec=lua("""
        describe("block", function()
          teardown(function() error("teardown broke") end)
          it("first", function() end)
          it("second", function() end)
        end)
    """))
    # Only the first test runs: the teardown is due when the file is torn down.
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "first")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*teardown of describe 'block'*", "*teardown broke*"])


def test_pytest_reports_a_broken_spec_file_as_a_collection_error(pytester):
    pytester.makefile(".lua", broken_spec="it('x', function() end\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*broken_spec.lua*[[]Lua 5.4]*broken_spec.lua:*"])


def test_pytest_names_tests_that_share_a_name_by_line(pytester):
    pytester.makefile(".lua", dup_spec=lua("""
        describe("d", function()
          it("same", function() end)
          it("same", function() error("second") end)
        end)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["dup_spec.lua::d same (line 2) PASSED*",
                                 "dup_spec.lua::d same (line 3) FAILED*"])
