"""One source of truth: the LuaLS stubs in lua/types/ say exactly what the
running objects offer (checked against the runtime, so neither can drift),
and the constants scripts see are the core's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from luanet import LuaHost
from luanet.core.constants import OpenMode, SocketError, SocketState, open_mode_valid
from luanet.schema import CLASSES, valid_open_modes

TYPES = Path(__file__).resolve().parent.parent / "lua" / "types"

# stub class of the instances, stub class of the class table, file
STUBS = {
    "TcpServer": ("net.TcpServer", "net.TcpServerClass", "net.lua", "TcpServer", "TcpServerClass"),
    "TcpSocket": ("net.TcpSocket", "net.TcpSocketClass", "net.lua", "TcpSocket", "TcpSocketClass"),
    "Timer": ("luanet.Timer", "luanet.TimerClass", "luanet.lua", "Timer", "TimerClass"),
}


def stub_fields(text: str, cls: str) -> set:
    """The ---@field names of one ---@class block."""
    block = text.split(f"---@class {cls}\n", 1)[1]
    names = set()
    for line in block.splitlines():
        if not line.startswith("---"):
            break
        m = re.match(r"---@field (\w+)", line)
        if m:
            names.add(m.group(1))
    return names


def stub_functions(text: str, table: str, sep: str) -> set:
    return set(re.findall(rf"^function {table}{re.escape(sep)}(\w+)\(", text, re.M))


def stub_constants(text: str, table: str) -> dict:
    m = re.search(rf"^local {table} = \{{\n(.*?)^\}}", text, re.M | re.S)
    if not m:
        return {}
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+) = (-?\d+),", m.group(1), re.M)}


@pytest.fixture(scope="module")
def api():
    host = LuaHost()
    try:
        yield host._bridge.describe()
    finally:
        host.close()


@pytest.mark.parametrize("name", sorted(STUBS))
def test_stubs_list_exactly_what_the_runtime_has(api, name):
    cls, class_cls, file, table, class_table = STUBS[name]
    text = (TYPES / file).read_text()
    runtime = api[name]
    fields = stub_fields(text, cls)
    assert fields == set(runtime["properties"]) | set(runtime["handlers"]), \
        f"stub fields of {cls} differ from the runtime's properties and handlers"
    methods = stub_functions(text, table, ":")
    statics = stub_functions(text, class_table, ".")
    assert methods | statics == set(runtime["methods"]), f"stub functions of {cls} differ"
    assert stub_constants(text, class_table) == runtime["constants"]


def test_writable_properties_say_so_in_the_stubs(api):
    for name, (_, _, file, _, _) in STUBS.items():
        text = (TYPES / file).read_text()
        for prop in api[name]["writable"]:
            line = re.search(rf"---@field {prop} .*", text).group(0)
            assert "Read/write" in line, line


def test_constants_come_from_the_core(api):
    consts = api["TcpSocket"]["constants"]
    for enum, suffix in ((SocketState, "_STATE"), (SocketError, "_ERROR"), (OpenMode, "_MODE")):
        for member in enum:
            assert consts[member.name + suffix] == int(member)


def test_open_modes_lua_accepts_are_the_cores():
    assert valid_open_modes() == [m for m in range(16) if open_mode_valid(m)]
    host = LuaHost()
    try:
        for mode in range(-1, 18):
            ok = host.eval(f"(pcall(function() net.TcpSocket.new():connect('127.0.0.1', 1, {mode}) end))")
            assert bool(ok) == open_mode_valid(mode), mode
    finally:
        host.close()


def test_every_schema_property_is_readable_from_lua(api):
    for spec in CLASSES:
        assert {p.name for p in spec.props} <= set(api[spec.name]["properties"])
