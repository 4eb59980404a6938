"""luanet: the Qt-style net.TcpServer / net.TcpSocket Lua API on asyncio.

    from luanet import LuaHost
    with LuaHost() as host:
        host.execute_file("echo.lua")
        host.serve_forever()
"""

from . import _compiled

_compiled.choose()  # before anything imports the modules it may compile

from .host import LuaError, LuaHost, new_event_loop  # noqa: E402

_compiled.restore_class_docs()  # the host imported every compiled module

__all__ = ["LuaHost", "LuaError", "new_event_loop"]
__version__ = "0.1.0"
