"""The public Python API documents itself (API.md section 2, issue 12): every
public class, function, method and property has a docstring, and every
argument is named in it (a constructor's in its class docstring, which is
what help() shows first). ruff's D1 rules check the first half statically;
this checks the arguments, which no linter does."""

from __future__ import annotations

import enum
import inspect
import re

import pytest

import luanet
from luanet.core import EventQueue, TcpServer, TcpSocket
from luanet.core.budget import MemoryBudget
from luanet.core.timer import Timer
from luanet.host import LuaGlobals

PUBLIC_CLASSES = [luanet.LuaHost, luanet.LuaError, LuaGlobals,
                  TcpServer, TcpSocket, Timer, EventQueue, MemoryBudget]
PUBLIC_FUNCTIONS = [luanet.new_event_loop]


def _own_doc(obj):
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if doc else ""


def _undocumented_args(func, doc):
    """Parameter names of ``func`` (not self/cls) that ``doc`` does not name."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return []
    return [p.name for p in params
            if p.name not in ("self", "cls") and not re.search(rf"\b{re.escape(p.name)}\b", doc)]


def _public_members(cls):
    """(name, function or None, docstring) of what ``cls`` itself defines."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield name, None, _own_doc(member.fget) or _own_doc(member)
        elif isinstance(member, (staticmethod, classmethod)):
            yield name, member.__func__, _own_doc(member.__func__)
        elif inspect.isfunction(member):
            yield name, member, _own_doc(member)


def test_the_exports_are_the_documented_ones():
    assert {"LuaHost", "LuaError", "new_event_loop"} <= set(luanet.__all__)
    for name in luanet.__all__:
        assert _own_doc(getattr(luanet, name)), name


@pytest.mark.parametrize("func", PUBLIC_FUNCTIONS, ids=lambda f: f.__name__)
def test_public_functions_document_every_argument(func):
    doc = _own_doc(func)
    assert doc, f"{func.__name__} has no docstring"
    assert _undocumented_args(func, doc) == [], f"{func.__name__}'s docstring misses arguments"


# (compiled, a class's own docstring is the one _compiled.restore_class_docs
# gives back: mypyc keeps only its methods')
@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda c: c.__name__)
def test_public_classes_document_their_constructor(cls):
    doc = _own_doc(cls)
    assert doc, f"{cls.__name__} has no class docstring"
    init = cls.__dict__.get("__init__")
    # (a compiled __init__ shows only *args, **kwargs: its arguments are
    # checked in the source pass of `make test`)
    if inspect.isfunction(init):
        missing = _undocumented_args(init, doc + "\n" + _own_doc(init))
        assert missing == [], f"{cls.__name__}(): arguments missing from its docstring: {missing}"


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda c: c.__name__)
def test_public_methods_and_properties_have_docstrings(cls):
    undocumented = [name for name, _, doc in _public_members(cls) if not doc]
    assert undocumented == [], f"{cls.__name__}: no docstring on {undocumented}"


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda c: c.__name__)
def test_public_methods_name_every_argument(cls):
    missing = {}
    for name, func, doc in _public_members(cls):
        if func is not None and doc:
            args = _undocumented_args(func, doc)
            if args:
                missing[name] = args
    assert missing == {}, f"{cls.__name__}: arguments missing from method docstrings: {missing}"


def test_the_core_enums_say_what_they_are():
    from luanet.core import Event, OpenMode, SocketError, SocketState
    for cls in (Event, OpenMode, SocketError, SocketState):
        assert issubclass(cls, enum.Enum)
        assert _own_doc(cls), cls.__name__


def test_the_package_ships_its_types():
    from importlib import resources
    assert resources.files("luanet").joinpath("py.typed").is_file()
