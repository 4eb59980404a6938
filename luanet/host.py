"""LuaHost: what Python programs embed. One Lua runtime, one event loop.

The host either owns its loop (the run_* calls drive it) or attaches to a
running one (``loop=asyncio.get_running_loop()``; then the loop's owner drives
it and ``await host.aclose()`` ends the host).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .bridge import Bridge
from .core import EventQueue

log = logging.getLogger("luanet")

# How long close() lets graceful closes flush before aborting what is left.
CLOSE_GRACE_SECONDS = 2.0


class LuaError(Exception):
    """A Lua error: ``message`` is Lua's own (file:line: text); ``traceback``
    the Lua traceback when there is one."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.message = message
        self.traceback = traceback


def new_event_loop(kind: Optional[str] = None) -> asyncio.AbstractEventLoop:
    """An event loop of the given kind: "asyncio", "uvloop", or "auto" (uvloop
    when installed, via pip install luanet[fast]). LUANET_LOOP overrides.

    LuaHost defaults to asyncio: uvloop makes a socket pair for signals on
    every run_until_complete, which a host driven by many short run_until
    calls pays for each time, and which fails once descriptors run out.
    `luanet run` runs its loop once and asks for "auto"."""
    kind = os.environ.get("LUANET_LOOP") or kind or "asyncio"
    if kind in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _as_lua_error(exc: BaseException) -> LuaError:
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    message, _, trace = text.partition("\nstack traceback:")
    return LuaError(message, "stack traceback:" + trace if trace else "")


def _to_lua(value: Any) -> Any:
    # The runtime has no text encoding (bytes stay bytes): a Python str would
    # reach Lua as an opaque Python object, so text goes over as UTF-8.
    return value.encode("utf-8") if isinstance(value, str) else value


class LuaGlobals:
    """The Lua global table, by item or attribute: host.globals["x"] = 1,
    host.globals.x. Values come back as Lua gives them (strings as bytes)."""

    __slots__ = ("_table",)

    def __init__(self, table: Any):
        object.__setattr__(self, "_table", table)

    def __getitem__(self, key: Any) -> Any:
        return self._table[_to_lua(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._table[_to_lua(key)] = _to_lua(value)

    def __delitem__(self, key: Any) -> None:
        self._table[_to_lua(key)] = None

    def __contains__(self, key: Any) -> bool:
        return self._table[_to_lua(key)] is not None

    def __getattr__(self, name: str) -> Any:
        return self._table[name.encode("utf-8")]

    def __setattr__(self, name: str, value: Any) -> None:
        self._table[name.encode("utf-8")] = _to_lua(value)

    def keys(self):
        return self._table.keys()

    def items(self):
        return self._table.items()

    @property
    def table(self) -> Any:
        """The underlying lupa table."""
        return self._table


class LuaHost:
    def __init__(self, lua: str = "5.4", sandbox: bool = True, bind_address: Optional[str] = None,
                 on_error: Optional[Callable[[str], Any]] = None,
                 loop: Optional[asyncio.AbstractEventLoop] = None,
                 event_loop: Optional[str] = None, max_memory: Optional[int] = None,
                 handler_time_limit: Optional[float] = None):
        """max_memory: bytes the Lua side may allocate; past it, allocation
        fails with a Lua error ("not enough memory") where it happens.
        handler_time_limit: seconds of CPU a single handler or callback may
        run before it is stopped with a Lua error (on LuaJIT this turns the
        JIT compiler off, which runs no hooks). Both errors reach on_error
        like any other, and the host carries on."""
        if max_memory is not None and (not isinstance(max_memory, int) or max_memory <= 0):
            raise ValueError("max_memory must be a positive number of bytes")
        if handler_time_limit is not None and not handler_time_limit > 0:
            raise ValueError("handler_time_limit must be a positive number of seconds")
        self._owns_loop = loop is None
        self.loop = new_event_loop(event_loop) if loop is None else loop
        self._events = EventQueue(self.loop)
        self._on_error = on_error
        self._stop: Optional[asyncio.Future] = None
        self._closed = False
        self._bridge = Bridge(self._events, lua=lua, sandbox=sandbox, bind_address=bind_address,
                              max_memory=max_memory, handler_time_limit=handler_time_limit,
                              report_error=self._report_error,
                              run_until=self._run_until_from_lua, run_for=self.run_for)
        self.lua_version = lua
        self.sandbox = sandbox
        self.bind_address = bind_address

    # ------------------------------------------------------------ running Lua
    @property
    def globals(self) -> "LuaGlobals":
        """The Lua global table (str keys and values are passed as UTF-8 bytes)."""
        if self._closed:
            raise RuntimeError("this LuaHost is closed")
        return LuaGlobals(self._bridge.runtime.globals())

    def execute(self, source: Union[str, bytes], name: Optional[str] = None) -> Any:
        """Run a chunk of Lua. A Lua error raises LuaError."""
        if isinstance(source, str):
            source = source.encode("utf-8")
        chunk_name = None
        if name is not None:
            chunk_name = name if name[:1] in ("@", "=") else "@" + name
        return self._call_lua(self._bridge.runtime.execute, source, name=chunk_name,
                              mode="t" if self.sandbox else None)

    def load_module(self, name: str) -> Any:
        """Run one of luanet's bundled Lua modules (``"busted"``) in this host;
        it gets the debug library even in a sandbox, scripts do not."""
        if self._closed:
            raise RuntimeError("this LuaHost is closed")
        return self._call_lua(self._bridge.load_module, name)

    def execute_file(self, path: Union[str, os.PathLike], *args: Any) -> Any:
        """Run a Lua file; ``args`` arrive in the chunk as ``...``."""
        path = Path(path)
        source = path.read_bytes()
        if source.startswith(b"#"):  # a shebang line, as the standalone lua skips it
            source = b"--" + source
        chunk = self._call_lua(self._bridge.runtime.compile, source, name="@" + str(path),
                               mode="t" if self.sandbox else None)
        return self._call_lua(chunk, *args)

    def eval(self, expression: Union[str, bytes]) -> Any:
        if isinstance(expression, str):
            expression = expression.encode("utf-8")
        return self._call_lua(self._bridge.runtime.execute, b"return " + expression,
                              name="=eval")

    def _call_lua(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise RuntimeError("this LuaHost is closed")
        try:
            return fn(*args, **kwargs)
        except self._bridge.LuaError as exc:
            raise _as_lua_error(exc) from None
        except (AttributeError, TypeError) as exc:
            # A Python error raised through Lua (e.g. the sandbox's attribute filter).
            raise LuaError(str(exc)) from exc

    def _report_error(self, message: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(message)
                return
            except Exception:
                log.exception("luanet: on_error callback failed")
        log.error("luanet: error in a Lua handler: %s", message)

    # ------------------------------------------------------------ the loop
    def _check_drivable(self) -> None:
        if self._closed:
            raise RuntimeError("this LuaHost is closed")
        if not self._owns_loop:
            raise RuntimeError("this LuaHost is attached to an asyncio loop: its owner runs it "
                               "(await asyncio.sleep(...) instead of run_for/run_until)")
        if self.loop.is_running():
            raise RuntimeError("the event loop is already running: luanet.run_until and "
                               "luanet.run_for cannot be called from inside a handler")

    def run_until(self, predicate: Callable[[], Any], timeout: float) -> bool:
        """Run the loop until predicate() is true (-> True) or timeout (-> False)."""
        self._check_drivable()
        return self.loop.run_until_complete(self._wait_until(predicate, timeout))

    def _run_until_from_lua(self, predicate: Callable[[], Any], timeout: float) -> bool:
        return self.run_until(predicate, timeout)

    async def _wait_until(self, predicate: Callable[[], Any], timeout: float) -> bool:
        loop = self.loop
        deadline = loop.time() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Re-check after every batch of events, or every 10 ms for
            # conditions that change outside Lua.
            await self._events.wait_batch(min(remaining, 0.01))

    def run_for(self, seconds: float) -> None:
        self._check_drivable()
        self.loop.run_until_complete(asyncio.sleep(seconds))

    @property
    def active(self) -> bool:
        """True while any server of this host listens or any socket is open."""
        return not self._closed and self._bridge.active()

    def serve_forever(self, until_idle: bool = False) -> None:
        """Run the loop until stop(), SIGINT or SIGTERM (or, with until_idle,
        until nothing is listening or connected any more)."""
        self._check_drivable()
        self._stop = self.loop.create_future()
        handled = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self.loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        try:
            if until_idle:
                self.loop.run_until_complete(self._serve_while_active())
            else:
                self.loop.run_until_complete(self._stop)
        finally:
            for sig in handled:
                self.loop.remove_signal_handler(sig)
            self._stop = None

    async def _serve_while_active(self) -> None:
        stop = self._stop
        while not stop.done() and self.active:
            await self._events.wait_batch(0.05)

    def stop(self) -> None:
        """Make serve_forever() return (safe from signal handlers and threads)."""
        stop = self._stop
        if stop is not None:
            self.loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

    # ------------------------------------------------------------ teardown
    def close(self) -> None:
        """Close every server and socket of this host; no port or descriptor stays open."""
        if self._closed:
            return
        if not self._owns_loop:
            raise RuntimeError("this LuaHost is attached to an asyncio loop: use await host.aclose()")
        if self.loop.is_running():
            raise RuntimeError("LuaHost.close() cannot be called from inside a handler")
        self.loop.run_until_complete(self.aclose())
        self._shutdown_loop()

    async def aclose(self) -> None:
        if self._closed:
            return
        closing = self._bridge.close_all()
        self._closed = True
        deadline = self.loop.time() + CLOSE_GRACE_SECONDS
        # Graceful closes flush what scripts wrote; give them a moment.
        while any(not s.finished for s in closing) and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        for sock in closing:
            if not sock.finished:
                sock.abort()
        await asyncio.sleep(0)  # let aborted transports drop their sockets
        self._bridge.runtime = None  # type: ignore[assignment]

    def _shutdown_loop(self) -> None:
        loop = self.loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def __enter__(self) -> "LuaHost":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> "LuaHost":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "_owns_loop", False):
            try:
                if not self.loop.is_running() and not self.loop.is_closed():
                    self.close()
            except Exception:
                pass
