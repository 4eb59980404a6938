"""Which version of the hot modules runs: mypyc's compiled one or the source.

setup.py compiles MODULES with mypyc when it can; the .py files stay the
reference and the fallback. luanet/__init__.py calls choose() before anything
imports them. The source runs when:
  - LUANET_NO_EXTENSIONS is set (to compare the two, or to debug in Python);
  - nothing was compiled (no C compiler where luanet was installed);
  - in a git working tree, a module changed after it was compiled (`make`
    compiles it again).
Either all of them run compiled or none does: compiled modules call each
other directly, so a mix would hold two different classes of each name.

No import of luanet here: setup.py reads MODULES from this file before
luanet can be imported.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import warnings
from typing import Dict, Optional, Sequence

# The event queue, the socket and server state machines, the timer and the
# bridge: the code every event and connection runs through.
MODULES = [
    "luanet.core.events",
    "luanet.core.budget",
    "luanet.core.states",
    "luanet.core.socket",
    "luanet.core.server",
    "luanet.core.timer",
    "luanet.bridge",
]
GROUP = "luanet"  # mypyc's shared library of the compiled modules: luanet__mypyc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_of(module: str) -> str:
    """The .py file of one of MODULES."""
    return os.path.join(ROOT, *module.split(".")) + ".py"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds MODULES as their .py files, ahead of the compiled ones beside them."""

    def __init__(self, sources: Dict[str, str]):
        self.sources = sources

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: object = None) -> Optional[importlib.machinery.ModuleSpec]:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def library() -> Optional[str]:
    """The file of the compiled modules' shared library; None if none was built."""
    try:
        spec = importlib.util.find_spec(GROUP + "__mypyc")
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin else None


def _why_not_compiled() -> Optional[str]:
    """None when the compiled modules can run; else why not: a message for a
    stale build, "" when the source was asked for or nothing was compiled."""
    if os.environ.get("LUANET_NO_EXTENSIONS"):
        return ""
    built_file = library()
    if built_file is None:
        return ""
    if not os.path.exists(os.path.join(ROOT, ".git")):
        # an installed copy: its files are the ones compiled, and their times
        # are only the order the installer wrote them in
        return None
    built = os.path.getmtime(built_file)
    for module in MODULES:
        source = source_of(module)
        if os.path.exists(source) and os.path.getmtime(source) > built:
            return (f"{source} changed after luanet was compiled; running the source "
                    "(`make` compiles it again)")
    return None


ACTIVE = False  # set by choose(): do the compiled modules run?


def choose() -> bool:
    """Put the compiled modules or the source in place; True: compiled."""
    global ACTIVE
    why = _why_not_compiled()
    if why is None:
        ACTIVE = True
        return True
    if why:
        warnings.warn(f"luanet: {why}", RuntimeWarning, stacklevel=3)
    if not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder({m: source_of(m) for m in MODULES}))
    ACTIVE = False
    return False


# A top-level class and its docstring, as the sources write them (plain
# triple-quoted text; tests/test_compiled.py checks this reads every class
# docstring of MODULES exactly as Python's own parser does).
_CLASS_DOC = re.compile(r'^class (\w+)\b[^\n]*:\n[ \t]+("""|\'\'\')(.*?)\2', re.M | re.S)


def class_docs(module: str) -> Dict[str, str]:
    """The docstring of each top-level class of one of MODULES, by name."""
    with open(source_of(module), encoding="utf-8") as f:
        return {name: doc for name, _, doc in _CLASS_DOC.findall(f.read())}


def restore_class_docs() -> None:
    """mypyc keeps a compiled class's methods' docstrings but not its own, so
    help(TcpSocket) would show no class text: give each its own back, read
    from the source beside it (about a millisecond)."""
    if not ACTIVE:
        return
    for module in MODULES:
        loaded = sys.modules.get(module)
        if loaded is None:
            continue
        for name, doc in class_docs(module).items():
            cls = getattr(loaded, name, None)
            if isinstance(cls, type) and not cls.__doc__:
                cls.__doc__ = doc


if __name__ == "__main__":  # the Makefile's list of what a build compiles
    print(" ".join(os.path.relpath(source_of(m)) for m in MODULES))
