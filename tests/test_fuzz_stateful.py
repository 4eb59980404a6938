"""The stateful fuzzer (tests/fuzz/stateful.py) as tests.

- test_regression: every minimal sequence in tests/fuzz/regressions.py, on
  5.4, 5.1 and LuaJIT; an entry whose bug is still open is xfail(strict=True).
- test_random_walk: seeded random sequences per Lua version (and on uvloop
  for 5.4: test_random_walk_on_uvloop). Small under
  `make test` (a few seconds per version); `make stress` (LUANET_STRESS=1)
  runs them for minutes (LUANET_STRESS_SECONDS per version, default 180).
  Any violation fails the test, except the classes of regressions still
  open (those are reported, and their own xfail test tracks the fix). A
  failure prints the seed and the shrunk minimal sequence.

Every sequence runs in a worker child process with a watchdog, so a hang or
a runaway fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os

import pytest

from fuzz import stateful
from fuzz.regressions import REGRESSIONS

LUAS = ["5.4", "5.1", "luajit"]
STRESS = os.environ.get("LUANET_STRESS", "") not in ("", "0")
STRESS_SECONDS = float(os.environ.get("LUANET_STRESS_SECONDS", "180"))
OPEN_CLASSES = {r["cls"] for r in REGRESSIONS if r["open"]}


@pytest.fixture(scope="module")
def workers():
    made = {}

    def get(lua):
        if lua not in made:
            made[lua] = stateful.Worker(timeout=40.0)
        return made[lua]

    yield get
    for w in made.values():
        w.close()


def _cases():
    for reg in REGRESSIONS:
        for lua in LUAS:
            marks = [pytest.mark.xfail(reason=reg["bug"], strict=True)] if reg["open"] else []
            yield pytest.param(reg, lua, id="%s-%s" % (reg["name"], lua), marks=marks)


@pytest.mark.parametrize("reg,lua", list(_cases()))
def test_regression(workers, reg, lua):
    res = workers(lua).run(lua, reg["steps"])
    assert res["violations"] == [], "replay of %s on Lua %s:\n  %s" % (
        json.dumps(reg["steps"]), lua, "\n  ".join(res["violations"]))


def test_detects_a_planted_violation(workers):
    """The checks can fail: the same clean connection, once the harness
    forgets what the script wrote, shows bytes its peer should not have."""
    steps = [["connect", "c0", "L0", None], ["run", 0.02], ["write", "c0", 5, False, False], ["run", 0.02]]
    ok = workers("5.4").run("5.4", steps)
    assert ok["violations"] == []
    # the same connection, with the harness made to forget what was written
    planted = stateful.Run("5.4")
    planted.setup()
    try:
        for st in steps:
            planted.step(st)
            planted.lx("F.snap()")
            planted.pump_peers()
        planted.lx("for _, l in pairs(F.log.c0) do l.w = {} end")  # forget what was written
        planted.finish()
    finally:
        planted.teardown()
    assert any(v.startswith("received-without-peer") or v.startswith("received-not-prefix")
               for v in planted.violations), planted.violations


@pytest.mark.stress
@pytest.mark.parametrize("lua", LUAS)
def test_random_walk(lua):
    walk(lua)


@pytest.mark.stress
def test_random_walk_on_uvloop(monkeypatch):
    """The same walk with the hosts on uvloop, which `luanet run` uses when
    installed: its transports own their descriptors differently (the first
    uvloop run found a descriptor closed twice, which made libuv abort)."""
    pytest.importorskip("uvloop")
    monkeypatch.setenv("LUANET_LOOP", "uvloop")  # inherited by the worker children
    walk("5.4")


def walk(lua):
    if STRESS:
        kw = dict(seconds=STRESS_SECONDS, steps=80, seed=int(os.environ.get("LUANET_STRESS_SEED", "1000")),
                  shrink_budget=240.0)
    else:
        kw = dict(sequences=8, steps=50, seed=0, shrink_budget=60.0)
    lines = []
    stats = stateful.campaign(lua, log=lines.append, known=OPEN_CLASSES, **kw)
    print("\n".join(lines))
    print("[%s] sequences %d, steps %d, failing %d, not reproduced on replay: %s"
          % (lua, stats["sequences"], stats["steps"], stats["failures"], stats.get("unreproduced", {})))
    new = stats["findings"]
    assert not new, ("new violation classes on Lua %s (minimal sequences; add them to "
                     "tests/fuzz/regressions.py):\n%s") % (
        lua, "\n".join("%s: seed %d, sandbox %s, steps %s\n    %s"
                       % (cls, f["seed"], f["sandbox"], json.dumps(f["steps"]), f["message"])
                       for cls, f in new.items()))
