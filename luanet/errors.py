"""The exceptions luanet raises to Python programs."""

from __future__ import annotations


class LuaError(Exception):
    """A Lua error. ``message`` is Lua's own text (``file:line: text``);
    ``traceback`` the Lua traceback when there is one."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.message = message
        self.traceback = traceback


class HostClosed(LuaError):
    """Lua code of a closed host was called (Python still held a function)."""
