"""The compiled modules (setup.py, luanet/_compiled.py): built wherever a C
compiler is, used when built, and the source used instead when asked for or
when it changed after the build. Each check runs in a child process: which
version runs is decided once, at the first import of luanet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from luanet import _compiled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = """
import luanet, luanet._compiled as c, importlib
print(c.ACTIVE)
for name in c.MODULES:
    print(importlib.import_module(name).__file__)
"""


def report(code=REPORT, **env):
    """Run ``code`` (REPORT, or a variant ending in it) in a fresh Python:
    (compiled modules active?, the file each of MODULES came from, stderr)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    active, *files = proc.stdout.split()
    return active == "True", files, proc.stderr


def built():
    return _compiled.library() is not None


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here: luanet runs its source")
def test_where_a_compiler_is_the_install_compiled_every_listed_module_and_they_run():
    assert built(), "no compiled modules: setup.py's mypyc build failed or was skipped"
    active, files, _ = report(LUANET_NO_EXTENSIONS="")
    assert active
    assert len(files) == len(_compiled.MODULES)
    assert all(f.endswith(".so") for f in files), files


def test_LUANET_NO_EXTENSIONS_runs_the_source_of_every_listed_module():
    active, files, stderr = report(LUANET_NO_EXTENSIONS="1")
    assert not active
    assert files == [_compiled.source_of(m) for m in _compiled.MODULES]
    assert "changed after" not in stderr  # a choice, not a stale build: nothing to say


@pytest.mark.skipif(not built(), reason="nothing compiled here")
def test_a_module_changed_after_the_build_makes_all_of_them_run_from_source():
    # what a developer meets after editing socket.py without `make`
    probe = f"""
import os
real = os.path.getmtime
os.path.getmtime = lambda p: real(p) + (10 ** 9 if p.endswith("socket.py") else 0)  # later than any build
exec({REPORT!r})
"""
    active, files, stderr = report(probe, LUANET_NO_EXTENSIONS="")
    assert not active
    assert all(f.endswith(".py") for f in files), files  # all of them, not socket alone
    assert "socket.py changed after luanet was compiled" in stderr


def test_class_docstrings_read_from_the_source_as_python_reads_them():
    # what restore_class_docs gives the compiled classes back: every
    # top-level class docstring of the compiled modules, exactly
    import ast
    for module in _compiled.MODULES:
        with open(_compiled.source_of(module), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        expected = {node.name: ast.get_docstring(node, clean=False) for node in tree.body
                    if isinstance(node, ast.ClassDef) and ast.get_docstring(node, clean=False)}
        assert _compiled.class_docs(module) == expected, module


def test_compiled_classes_carry_their_docstrings():
    from luanet.core import TcpSocket
    assert TcpSocket.__doc__ and "One TCP connection" in TcpSocket.__doc__

