"""Compiles the hot modules with mypyc (bench/RESULTS.md, lever 14); the rest
of the build is in pyproject.toml.

The same files are the pure-Python version: with LUANET_NO_EXTENSIONS=1 set
at install, or where nothing can compile them (no C compiler), luanet
installs and runs without the compiled modules, only slower.
luanet/_compiled.py lists them and decides at import which version runs.
"""

import os
import runpy

from setuptools import setup

_compiled = runpy.run_path(os.path.join("luanet", "_compiled.py"))  # luanet itself cannot import yet


def compiled_modules():
    if os.environ.get("LUANET_NO_EXTENSIONS"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # no mypyc: the pure-Python version
        return []
    paths = [os.path.relpath(_compiled["source_of"](module)) for module in _compiled["MODULES"]]
    extensions = mypycify(paths, opt_level="3", group_name=_compiled["GROUP"])
    for extension in extensions:
        extension.optional = True  # a failed compile leaves the pure-Python version
    return extensions


setup(ext_modules=compiled_modules())
