"""The busted-compatible spec runner: lua/luanet_busted/, luanet/spec.py and
the pytest plugin, driven with small spec files written into tmp_path (the
working directory, as a project root is for busted)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from luanet.bridge import LUA_MODULES
from luanet.spec import SpecOptions, main, run_file, run_specs

pytest_plugins = ["pytester"]

ALL_VERSIONS = list(LUA_MODULES)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    # Spec paths then show as short relative names, as they do in a project.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LUANET_SPEC_LUA", raising=False)


def lua(source: str) -> str:
    return textwrap.dedent(source).lstrip("\n")


def write(tmp_path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lua(source))
    return path


def line_of(path, marker: str) -> int:
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def results(path, version="5.4", **options):
    """{name: (status, message)} of the tests of one file, in run order."""
    found = run_file(path, version, SpecOptions(**options))
    return {r.name: (r.status, r.message) for r in found if r.kind == "test"}


def errors(path, version="5.4", **options):
    return [r for r in run_file(path, version, SpecOptions(**options)) if r.kind == "error"]


def cli(*args):
    out = io.StringIO()
    old = sys.stdout
    sys.stdout = out
    try:
        code = main(list(args))
    finally:
        sys.stdout = old
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

def test_statuses_and_luassert_messages(tmp_path):
    path = write(tmp_path, "calc_spec.lua", MIXED)
    got = results(path)
    assert list(got) == ["calc adds", "calc fails", "calc errors", "calc later"]
    assert got["calc adds"] == ("success", "")
    status, message = got["calc fails"]
    assert status == "failure"
    assert message == (f"calc_spec.lua:{line_of(path, 'FAILS HERE')}: Expected objects to be equal.\n"
                       "Passed in:\n(number) 1\nExpected:\n(number) 2")
    status, message = got["calc errors"]
    assert status == "error"
    assert message.startswith(f"calc_spec.lua:{line_of(path, 'ERRORS HERE')}: attempt to index")
    assert got["calc later"][0] == "pending"


def test_failure_messages_in_luassert_words(tmp_path):
    path = write(tmp_path, "words_spec.lua", """
    describe("words", function()
      it("same", function() assert.are.same({ a = 1, b = { c = 2 } }, { a = 1, b = { c = 3 } }) end)
      it("error", function() assert.has_error(function() error("boom") end, "bam") end)
      it("called_with", function()
        local s = spy.new(function() end)
        s(1, "x")
        assert.spy(s).was.called_with(1, "y")
      end)
      it("custom message", function() assert.is_true(false, "my words") end)
      it("message modifier", function() assert.message("said").is_true(false) end)
      it("truthy", function() assert.is_truthy(nil) end)
    end)
    """)
    got = results(path)
    same = got["words same"][1]
    assert "Expected objects to be the same.\nPassed in:\n(table: 0x" in same
    assert "\n *[b] = {\n   *[c] = 3 } }" in same and "\n   *[c] = 2 } }" in same
    assert got["words error"][1].endswith(
        "Expected a different error.\nCaught:\n(string) 'boom'\nExpected:\n(string) 'bam'")
    assert got["words called_with"][1].endswith(
        "Function was never called with matching arguments.\nCalled with (last call if any):\n"
        "(values list) ((number) 1, (string) 'x')\nExpected:\n(values list) ((number) 1, (string) 'y')")
    assert got["words custom message"][1].endswith(
        "my words\nExpected objects to be the same.\nPassed in:\n(boolean) false\nExpected:\n(boolean) true")
    assert "said\nExpected objects to be the same." in got["words message modifier"][1]
    assert got["words truthy"][1].endswith("Expected to be truthy, but value was:\n(nil)")
    assert all(status == "failure" for status, _ in got.values())


def test_plain_assert_is_luas_and_a_failure(tmp_path):
    path = write(tmp_path, "plain_spec.lua", """
    it("returns its arguments", function()
      local a, b = assert(1, "two")
      assert.are.equal(1, a); assert.are.equal("two", b)
    end)
    it("fails with its message", function() assert(false, "nope") end) -- HERE
    """)
    got = results(path)
    assert got["returns its arguments"] == ("success", "")
    assert got["fails with its message"] == ("failure", f"plain_spec.lua:{line_of(path, 'HERE')}: nope")


# ---------------------------------------------------------------- busted's order and hooks

def test_describe_bodies_run_in_busteds_order(tmp_path):
    path = write(tmp_path, "order_spec.lua", """
    local log = {}
    describe("one", function()
      log[#log + 1] = "body one"
      it("a", function() log[#log + 1] = "it one" end)
    end)
    describe("two", function()
      log[#log + 1] = "body two"
      it("b", function()
        assert.are.same({ "body one", "it one", "body two" }, log)
      end)
    end)
    """)
    assert set(s for s, _ in results(path).values()) == {"success"}


def test_hooks_run_in_busteds_order(tmp_path):
    path = write(tmp_path, "hooks_spec.lua", """
    local log = {}
    describe("outer", function()
      setup(function() log[#log + 1] = "setup" end)
      lazy_setup(function() log[#log + 1] = "lazy_setup" end)
      before_each(function() log[#log + 1] = "before_each" end)
      after_each(function() log[#log + 1] = "after_each" end)
      teardown(function() log[#log + 1] = "teardown" end)
      it("first", function()
        finally(function() log[#log + 1] = "finally" end)
        log[#log + 1] = "first"
      end)
      describe("never runs a test", function()
        lazy_setup(function() log[#log + 1] = "lazy_setup of an empty block" end)
        strict_setup(function() log[#log + 1] = "strict_setup" end)
      end)
    end)
    describe("check", function()
      it("saw", function()
        assert.are.same({ "setup", "lazy_setup", "before_each", "first", "finally", "after_each",
                          "strict_setup", "teardown" }, log)
      end)
    end)
    """)
    got = results(path)
    assert got["check saw"] == ("success", ""), got["check saw"][1]


def test_a_failing_before_each_reports_an_error_and_skips_the_test(tmp_path):
    path = write(tmp_path, "before_spec.lua", """
    describe("block", function()
      before_each(function() error("no luck") end)
      it("never runs", function() end)
    end)
    it("outside runs", function() end)
    """)
    found = run_file(path, "5.4", SpecOptions())
    assert [(r.kind, r.status) for r in found] == [("error", "error"), ("test", "success")]
    assert "no luck" in found[0].message


def test_an_error_in_a_describe_body_spares_the_other_blocks(tmp_path):
    path = write(tmp_path, "body_spec.lua", """
    describe("broken", function()
      it("a", function() end)
      error("body breaks")
    end)
    describe("fine", function() it("b", function() end) end)
    """)
    found = run_file(path, "5.4", SpecOptions())
    assert [(r.kind, r.name) for r in found] == [("error", "broken"), ("test", "fine b")]
    assert "body breaks" in found[0].message


def test_registering_inside_a_test_is_an_error(tmp_path):
    path = write(tmp_path, "nested_spec.lua", """
    it("nests", function()
      assert.has_error(function() describe("x", function() end) end,
                       "'describe' not supported inside current context block")
      assert.has_error(function() it("x", function() end) end,
                       "'it' not supported inside current context block")
    end)
    """)
    assert results(path)["nests"] == ("success", "")


def test_randomize_shuffles_with_a_seed(tmp_path):
    body = "\n".join(f'  it("t{i}", function() end)' for i in range(30))
    source = 'describe("r", function()\n  randomize(7)\n' + body + "\nend)\n"
    path = write(tmp_path, "random_spec.lua", source)
    names = list(results(path))
    assert sorted(names) == sorted(f"r t{i}" for i in range(30))
    assert names != [f"r t{i}" for i in range(30)]
    assert names == list(results(path))  # same seed, same order


# ---------------------------------------------------------------- environment

def test_globals_of_a_block_are_seen_by_its_children_only(tmp_path):
    path = write(tmp_path, "env_spec.lua", """
    describe("a", function()
      shared = 1
      before_each(function() hooked = 2 end)
      it("sees its block's globals", function()
        assert.are.equal(1, shared); assert.are.equal(2, hooked)
        in_test = 3
      end)
      it("not another test's", function() assert.is_nil(in_test) end)
    end)
    describe("b", function()
      it("not a sibling's", function() assert.is_nil(shared) end)
    end)
    """)
    assert set(s for s, _ in results(path).values()) == {"success"}, results(path)


def test_insulate_restores_globals_and_package_loaded_and_expose_keeps_them(tmp_path):
    write(tmp_path, "src/counter.lua", "counter_loaded = (counter_loaded or 0) + 1\nreturn {}\n")
    path = write(tmp_path, "insulate_spec.lua", """
    insulate("insulated", function()
      require "counter"
      _G.from_insulate = true
      it("loaded", function() assert.is_not_nil(package.loaded.counter) end)
    end)
    describe("after insulate", function()
      it("is gone", function()
        assert.is_nil(package.loaded.counter); assert.is_nil(_G.from_insulate)
      end)
    end)
    insulate("outer", function()
      expose("exposed", function()
        _G.from_expose = true
        it("set", function() end)
      end)
      it("kept past the insulate around it", function() assert.is_true(_G.from_expose) end)
    end)
    """)
    got = results(path)
    assert set(s for s, _ in got.values()) == {"success"}, got


def test_require_gives_the_runners_own_modules(tmp_path):
    path = write(tmp_path, "require_spec.lua", """
    local describe = describe
    it("busted and luassert", function()
      assert.are.equal(assert, require "luassert")
      assert.are.equal(spy, require "luassert.spy")
      assert.are.equal(stub, require "luassert.stub")
      assert.are.equal(mock, require "luassert.mock")
      assert.are.equal(match, require "luassert.match")
      assert.are.equal(describe, require("busted").describe)
      assert.is_function(require("luassert.util").deepcompare)
      assert.is_function(require("say").set)
      assert.is_function(require("busted.runner"))
    end)
    """)
    assert results(path)["busted and luassert"] == ("success", "")
    assert results(path, sandbox=True)["busted and luassert"] == ("success", "")


def test_require_finds_code_under_test_from_the_project_root(tmp_path):
    write(tmp_path, "src/lib.lua", "return { name = 'src' }\n")
    write(tmp_path, "src/pkg/init.lua", "return { name = 'pkg' }\n")
    write(tmp_path, "top.lua", "return { name = 'top' }\n")
    write(tmp_path, "extra/more.lua", "return { name = 'more' }\n")
    path = write(tmp_path, "spec/req_spec.lua", """
    it("finds", function()
      assert.are.equal("src", require("lib").name)
      assert.are.equal("pkg", require("pkg").name)
      assert.are.equal("top", require("top").name)
      assert.are.equal("more", require("more").name)
    end)
    """)
    for sandbox in (False, True):
        got = results(path, sandbox=sandbox, lpath=["./extra/?.lua"])
        assert got["finds"] == ("success", ""), (sandbox, got)


def test_specs_are_trusted_by_default_and_sandboxed_on_request(tmp_path):
    (tmp_path / "fixture.txt").write_text("data")
    path = write(tmp_path, "trust_spec.lua", """
    it("reads a fixture", function()
      local f = assert(io.open("fixture.txt"))
      assert.are.equal("data", f:read("*a")); f:close()
      assert.is_table(debug); assert.is_function(os.getenv)
    end)
    it("is sandboxed", function() assert.is_nil(io); assert.is_nil(debug) end)
    """)
    got = results(path)
    assert got["reads a fixture"] == ("success", "")
    assert got["is sandboxed"][0] == "failure"
    got = results(path, sandbox=True)
    assert got["reads a fixture"][0] == "error"
    assert got["is sandboxed"] == ("success", "")


@pytest.mark.parametrize("version", ["5.4", "5.1"])
def test_io_popen_reads_and_writes_through_a_shell(tmp_path, version):
    path = write(tmp_path, "popen_spec.lua", """
    it("reads", function()
      local p = assert(io.popen("echo out; echo err 1>&2; exit 3"))
      assert.are.equal("out\\n", p:read("*a"))
      local ok, what, code = p:close()
      if _VERSION ~= "Lua 5.1" then assert.are.same({ nil, "exit", 3 }, { ok, what, code }) end
      local lines = {}
      for line in io.popen("printf 'a\\nb\\n'"):lines() do lines[#lines + 1] = line end
      assert.are.same({ "a", "b" }, lines)
    end)
    it("writes", function()
      local p = assert(io.popen("cat > written.txt", "w"))
      p:write("data")
      p:close()
      assert.are.equal("data", io.open("written.txt"):read("*a"))
    end)
    """)
    got = results(path, version)
    assert got == {"reads": ("success", ""), "writes": ("success", "")}, got


@pytest.mark.parametrize("version", ["5.1", "luajit", "5.4"])
def test_what_busted_adds_to_older_luas_is_there(tmp_path, version):
    write(tmp_path, "src/found.lua", "return 1\n")
    path = write(tmp_path, "compat_spec.lua", """
    it("has penlight's compat functions, as under busted", function()
      assert.are.same({ n = 2, 1, 2 }, table.pack(1, 2))
      assert.are.equal(3, select("#", table.unpack({ 1, 2, 3 })))
      assert.are.equal("./src/found.lua", package.searchpath("found", "./lib/?.lua;./src/?.lua"))
      assert.is_nil(package.searchpath("missing", "./src/?.lua"))
      assert.is_function(warn)
    end)
    """)
    assert results(path, version) == {"has penlight's compat functions, as under busted": ("success", "")}


def test_luajit_ffi_definitions_can_repeat(tmp_path):
    path = write(tmp_path, "ffi_spec.lua", """
    local ffi = require "ffi"
    it("defines", function() ffi.cdef("typedef struct { int a; } luanet_probe_t;") end)
    it("defines again", function()
      ffi.cdef("typedef struct { int a; } luanet_probe_t;")
      assert.are.equal(ffi.typeof("luanet_probe_t"), ffi.typeof("luanet_probe_t"))
    end)
    """)
    assert set(results(path, "luajit").values()) == {("success", "")}


LFS = Path("/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so")


@pytest.mark.skipif(not LFS.exists(), reason="Debian's lua-filesystem for 5.4 is not installed")
def test_c_modules_load_unsandboxed_and_not_in_the_sandbox(tmp_path):
    path = write(tmp_path, "lfs_spec.lua", """
    it("loads lfs", function() assert.is_string(require("lfs").currentdir()) end)
    """)
    assert results(path)["loads lfs"] == ("success", "")
    status, message = results(path, sandbox=True)["loads lfs"]
    assert status == "error" and "lfs" in message


# ---------------------------------------------------------------- luassert's surface

def test_assertion_surface(tmp_path):
    path = write(tmp_path, "surface_spec.lua", """
    describe("luassert", function()
      it("modifiers and assertions", function()
        assert.is_not.equal(1, 2); assert.are_not.same({ 1 }, { 2 }); assert.is.near(1, 1.05, 0.1)
        assert.matches("^a", "abc"); assert.has_no.errors(function() end)
        assert.has_error(function() error({ code = 1 }) end, { code = 1 })
        assert.error_matches(function() error("bad thing") end, "bad")
        assert.is_unique({ 1, 2, 3 }); assert.is_not_unique({ 1, 1 })
        assert.array({ 1, nil, 3 }).has.holes(); assert.array({ 1, 2 }).has.no.holes()
        assert.is_number(1); assert.is_not_string(1); assert.is_false(false); assert.is_falsy(nil)
        assert.returned_arguments(2, 1, 2)
      end)
      it("matchers", function()
        local s = spy.new(function() end)
        s("abc", 3, { 1 })
        assert.spy(s).was.called_with(match.is_string(), match.all_of(match.is_number(), match.is_truthy()),
                                     match.same({ 1 }))
        assert.spy(s).was_not.called_with(match.none_of(match.is_string()), match._, match._)
        assert.spy(s).was.called_with(match.any_of(match.is_nil(), match.matches("b")), match._, match._)
        assert.is_true(match.is_string()("x")); assert.is_false(match.is_not_string()("x"))
        assert:register("matcher", "even", function() return function(v) return v % 2 == 0 end end)
        assert.is_true(match.is_even()(4))
        assert.spy(s).was.called(1)
        assert.is_true(s:called_with({ "abc", 3, { 1 }, n = 3 }))  -- an arglist, as luassert takes it
        assert.is_false(s:called_with({ "abc", 3, n = 2 }))
      end)
      it("register, parameters, formatters, snapshots", function()
        local say = require "say"
        say:set("assertion.is_big.positive", "Expected %s to be big")
        say:set("assertion.is_big.negative", "Expected %s not to be big")
        assert:register("assertion", "is_big", function(state, args) return args[1] > 10 end,
                        "assertion.is_big.positive", "assertion.is_big.negative")
        assert.is_big(11)
        assert.has_error(function() assert.is_big(1) end)
        local snapshot = assert:snapshot()
        assert:set_parameter("TableFormatLevel", 0)
        assert:add_formatter(function(v) if v == "secret" then return "(hidden)" end end)
        local ok, err = pcall(assert.are.equal, "x", "secret")
        assert.matches("(hidden)", tostring(err), 1, true)
        local t = { f = function() return 1 end }
        spy.on(t, "f")
        assert.is_table(t.f)
        snapshot:revert()
        assert.is_function(t.f)
        assert.are.equal(3, assert:get_parameter("TableFormatLevel"))
      end)
    end)
    """)
    got = results(path)
    for name, (status, message) in got.items():
        assert status == "success", (name, message)


def test_spies_stubs_and_mocks(tmp_path):
    path = write(tmp_path, "spies_spec.lua", """
    it("stubs both ways", function()
      local t = { f = function() return "real" end }
      local s = stub(t, "f")
      s.returns(1); assert.are.equal(1, t.f())
      s:returns(2); assert.are.equal(2, t.f())
      s.on_call_with("x").returns("for x"); assert.are.equal("for x", t.f("x"))
      s:on_call_with("y").invokes(function(v) return v .. "!" end); assert.are.equal("y!", t.f("y"))
      s.by_default.invokes(function() return "default" end); assert.are.equal("default", t.f())
      assert.stub(s).was.called(5)
      assert.spy(s).was.returned_with("default")
      s:revert(); assert.are.equal("real", t.f())
    end)
    it("spies record copies", function()
      local s = spy.new(function(x) return x end)
      local arg = { 1 }
      s(arg); arg[1] = 2
      assert.spy(s).was.called_with({ 1 })
      assert.spy(s).was.called_with(match.is_ref(arg))
      s:clear(); assert.spy(s).was_not.called()
    end)
    it("mocks", function()
      local obj = { a = function() return 1 end, sub = { b = function() return 2 end } }
      local m = mock(obj)
      assert.are.equal(1, obj.a()); assert.spy(m.a).was.called()
      mock.revert(obj)
      assert.are.equal(2, obj.sub.b()); assert.is_function(obj.sub.b)
      local stubbed = mock({ f = function() return 1 end }, true)
      assert.is_nil(stubbed.f()); assert.stub(stubbed.f).was.called(1)
    end)
    """)
    for name, (status, message) in results(path).items():
        assert status == "success", (name, message)


# ---------------------------------------------------------------- handlers and timeouts

def test_handler_errors_fail_the_running_test(tmp_path):
    path = write(tmp_path, "handler_spec.lua", """
    it("a timer raises", function()
      luanet.after(0, function() error("raised in a timer") end)
      luanet.run_for(0.05)
    end)
    it("an expected one does not count", function()
      require("busted").expect_handler_error("on purpose")
      luanet.after(0, function() error("on purpose") end)
      luanet.run_for(0.05)
    end)
    """)
    got = results(path)
    status, message = got["a timer raises"]
    assert status == "error" and "raised in a timer" in message
    assert got["an expected one does not count"] == ("success", "")


@pytest.mark.parametrize("version, sandbox", [("5.4", False), ("5.1", False), ("luajit", False),
                                              ("luajit", True), ("5.4", True)])
def test_a_test_stuck_in_a_loop_times_out(tmp_path, version, sandbox):
    write(tmp_path, "spec/loop_spec.lua", """
    it("loops", function() local x = 0; while true do x = x + 1 end end)
    it("still runs", function() end)
    """)
    proc = subprocess.run([sys.executable, "-m", "luanet.spec", "--lua", version, "--timeout", "0.5",
                           "-o", "TAP"] + (["--sandbox"] if sandbox else []),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not ok 1 - loops" in proc.stdout and "timed out" in proc.stdout
    assert "ok 2 - still runs" in proc.stdout


def test_hooks_and_describe_bodies_time_out_too(tmp_path):
    write(tmp_path, "spec/hooks_spec.lua", """
    describe("hooks", function()
      before_each(function() while true do end end)
      it("never runs", function() end)
    end)
    describe("body", function() while true do end end)
    it("after", function() end)
    """)
    proc = subprocess.run([sys.executable, "-m", "luanet.spec", "--timeout", "0.5", "-o", "plainTerminal"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "1 success / 0 failures / 2 errors" in proc.stdout
    assert proc.stdout.count("timed out after 0.5 seconds") == 2


# ---------------------------------------------------------------- the command line

def test_cli_summary_details_and_exit_code(tmp_path):
    write(tmp_path, "spec/calc_spec.lua", MIXED)
    code, out = cli("-o", "plainTerminal")
    assert code == 2  # busted's: failures + errors
    assert "+-*." in out
    assert "1 success / 1 failure / 1 error / 1 pending" in out
    assert "Failure -> spec/calc_spec.lua @ 5\ncalc fails\n" in out
    write(tmp_path, "spec/calc_spec.lua", 'it("ok", function() end)')
    assert cli("-o", "plainTerminal")[0] == 0


def test_cli_tags_filters_and_list(tmp_path):
    write(tmp_path, "spec/tags_spec.lua", """
    describe("block #slow", function()
      it("one #fast", function() end)
      it("two", function() end)
    end)
    it("three #fast", function() end)
    """)

    def ran(*args):
        code, out = cli("-o", "TAP", *args)
        return [line.split(" - ", 1)[1] for line in out.splitlines() if line.startswith("ok ")]

    assert ran("--tags", "fast") == ["block #slow one #fast", "three #fast"]
    assert ran("--exclude-tags", "slow") == ["three #fast"]
    assert ran("--filter", "two") == ["block #slow two"]
    assert ran("--filter-out", "one", "--filter-out", "three") == ["block #slow two"]
    code, out = cli("--list")
    assert code == 0
    assert out.splitlines() == ["spec/tags_spec.lua:2: block #slow one #fast",
                                "spec/tags_spec.lua:3: block #slow two",
                                "spec/tags_spec.lua:5: three #fast"]


def test_cli_reads_the_busted_file_and_its_tasks(tmp_path):
    write(tmp_path, "lib/thing.lua", "return 42\n")
    write(tmp_path, "tests/thing_test.lua", """
    it("finds lib #unit", function() assert.are.equal(42, require("thing")) end)
    it("other", function() end)
    """)
    write(tmp_path, ".busted", """
    return {
      default = { ROOT = { "tests" }, pattern = "_test", lpath = "./lib/?.lua", output = "TAP" },
      unit = { tags = "unit" },
    }
    """)
    code, out = cli()
    assert code == 0 and "ok 1 - finds lib #unit" in out and "ok 2 - other" in out
    code, out = cli("--run", "unit")
    assert "1..1" in out


def test_cli_outputs(tmp_path):
    write(tmp_path, "spec/calc_spec.lua", MIXED)
    code, out = cli("-o", "json")
    doc = json.loads(out)
    assert [len(doc[k]) for k in ("successes", "failures", "errors", "pendings")] == [1, 1, 1, 1]
    assert doc["failures"][0]["name"] == "calc fails"
    code, out = cli("-o", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    code, out = cli("-o", "TAP")
    assert out.startswith("ok 1 - calc adds\nnot ok 2 - calc fails\n# spec/calc_spec.lua @ 5\n"
                          "# Failure message: spec/calc_spec.lua:6: Expected objects to be equal.\n"
                          "# Passed in:\n")
    assert out.endswith("ok 4 - # SKIP calc later\n1..4\n")
    code, out = cli("-o", "gtest")
    assert "[ RUN      ] spec/calc_spec.lua @ 2: calc adds\n" in out
    assert "[  PASSED  ] 1 tests.\n[ PENDING  ] 1 pending tests, listed below:" in out
    assert out.endswith("\n 1 FAILED TESTS\n 1 ERRORS\n")


def test_cli_runs_each_version_in_its_own_process(tmp_path):
    write(tmp_path, "spec/v_spec.lua", 'it("runs", function() print(_VERSION) end)')
    proc = subprocess.run([sys.executable, "-m", "luanet.spec", "--lua", "5.4,5.1", "-o", "TAP"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok 1 - [5.4] runs" in proc.stdout and "ok 2 - [5.1] runs" in proc.stdout


def test_cli_help_and_bad_version():
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["--lua", "4.0"])
    assert exc.value.code == 1  # busted's exit code for a usage error
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-option"])
    assert exc.value.code == 1


@pytest.mark.parametrize("sandbox", [False, True])
@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_every_lua_version(tmp_path, version, sandbox):
    path = write(tmp_path, "calc_spec.lua", MIXED)
    got = results(path, version, sandbox=sandbox)
    assert [s for s, _ in got.values()] == ["success", "failure", "error", "pending"]
    assert run_specs([str(path)], version, out=io.StringIO(), sandbox=sandbox) == 2


# ---------------------------------------------------------------- pytest

def test_pytest_collects_one_item_per_it_with_file_and_line(pytester):
    pytester.makefile(".lua", calc_spec=lua(MIXED))
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([
        "*calc_spec.lua::calc adds PASSED*",
        "*calc_spec.lua::calc fails FAILED*",
        "*calc_spec.lua::calc errors FAILED*",
        "*calc_spec.lua::calc later SKIPPED*",
    ])
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*Expected objects to be equal.*"])
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*calc_spec.lua:12: pending*"])


def test_pytest_runs_each_version_from_the_ini_option(pytester):
    pytester.makeini("[pytest]\nluanet_spec_versions = 5.4 5.1\n")
    pytester.makefile(".lua", v_spec='it("runs", function() end)\n')
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*::[[]5.4[]] runs PASSED*", "*::[[]5.1[]] runs PASSED*"])


def test_pytest_ini_twins(pytester):
    pytester.makeini("[pytest]\nluanet_spec_tags = fast\nluanet_spec_lpath = ./lib/?.lua\n"
                     "luanet_spec_sandbox = true\nluanet_spec_timeout = 0.5\n")
    pytester.mkdir("lib")
    (pytester.path / "lib" / "thing.lua").write_text("return 7\n")
    pytester.makefile(".lua", ini_spec=lua("""
    it("uses lib #fast", function() assert.are.equal(7, require("thing")); assert.is_nil(io) end)
    it("skipped by tags", function() end)
    it("loops #fast", function() while true do end end)
    """))
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*timed out*"])


def test_pytest_runs_only_the_selected_items(pytester):
    pytester.makefile(".lua", sel_spec=lua("""
    it("wanted", function() end)
    it("unwanted", function() local f = io.open("ran.txt", "w"); f:write("x"); f:close() end)
    """))
    result = pytester.runpytest("-k", "wanted and not unwanted", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "ran.txt").exists()


def test_pytest_reports_a_failing_describe_body_and_runs_the_rest(pytester):
    pytester.makefile(".lua", body_spec=lua("""
    describe("broken", function() error("body fails") end)
    describe("fine", function() it("runs", function() end) end)
    """))
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*body_spec.lua::broken (error) FAILED*", "*body fails*"])


def test_pytest_reports_a_broken_spec_file(pytester):
    pytester.makefile(".lua", broken_spec="describe('x', function(\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*broken_spec.lua*"])
