"""LuaHost: what Python programs embed. One Lua runtime, one event loop.

The host either owns its loop (the run_* calls drive it) or attaches to a
running one (``loop=asyncio.get_running_loop()``; then the loop's owner drives
it and ``await host.aclose()`` ends the host).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any, Callable, ItemsView, KeysView, List, Mapping, Optional, Sequence, Union

from .bridge import LUA_MODULES, Bridge
from .core import EventQueue, TcpSocket
from .errors import LuaError

log = logging.getLogger("luanet")

# How long close() lets graceful closes flush before discarding what is left.
CLOSE_GRACE_SECONDS = 2.0


def new_event_loop(kind: Optional[str] = None) -> asyncio.AbstractEventLoop:
    """An event loop of the given kind: "asyncio", "uvloop", or "auto" (uvloop
    when installed, via pip install luanet[fast]). LUANET_LOOP overrides.

    LuaHost defaults to asyncio: uvloop makes a socket pair for signals on
    every run_until_complete, which a host driven by many short run_until
    calls pays for each time, and which fails once descriptors run out.
    `luanet run` runs its loop once and asks for "auto"."""
    kind = os.environ.get("LUANET_LOOP") or kind or "asyncio"
    if kind not in ("asyncio", "uvloop", "auto"):
        raise ValueError(f"event_loop must be 'asyncio', 'uvloop' or 'auto', not {kind!r}")
    if kind in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


_OWN_FRAMES = re.compile(r"\n\tluanet/[\w/]+\.lua:\d+:[^\n]*")


def _as_lua_error(exc: BaseException) -> LuaError:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    message, _, trace = text.partition("\nstack traceback:")
    trace = _OWN_FRAMES.sub("", trace)  # the script's frames are what its author can act on
    if not message:
        message = "not enough memory" if isinstance(exc, MemoryError) else type(exc).__name__
    return LuaError(message, "stack traceback:" + trace if trace else "")


def _key(key: Any) -> Any:
    return key.encode("utf-8") if isinstance(key, str) else key


class LuaGlobals:
    """The Lua global table, by item or attribute: ``host.globals["x"] = 1``,
    ``host.globals.x``. Values go in converted as everywhere (str as UTF-8,
    dicts and lists as tables) and come back as Lua gives them (strings as
    bytes). Made by ``LuaHost.globals`` (``bridge`` is the host's Bridge)."""

    __slots__ = ("_table", "_bridge")

    def __init__(self, bridge: Bridge):
        object.__setattr__(self, "_bridge", bridge)
        object.__setattr__(self, "_table", bridge.globals())

    def __getitem__(self, key: Any) -> Any:
        return self._table[_key(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._table[_key(key)] = self._bridge.to_lua(value)

    def __delitem__(self, key: Any) -> None:
        self._table[_key(key)] = None

    def __contains__(self, key: Any) -> bool:
        return self._table[_key(key)] is not None

    def __getattr__(self, name: str) -> Any:
        return self._table[name.encode("utf-8")]

    def __setattr__(self, name: str, value: Any) -> None:
        self._table[name.encode("utf-8")] = self._bridge.to_lua(value)

    def keys(self) -> KeysView[Any]:
        """The global names (as bytes)."""
        return self._table.keys()  # type: ignore[no-any-return]

    def items(self) -> ItemsView[Any, Any]:
        """(name, value) pairs of the global table."""
        return self._table.items()  # type: ignore[no-any-return]

    @property
    def table(self) -> Any:
        """The underlying lupa table."""
        return self._table


class LuaHost:
    """One Lua runtime with ``net`` and ``luanet``, on one asyncio event loop.

    Arguments:
        lua: the Lua version: "5.1", "5.2", "5.3", "5.4" (default), "5.5" or "luajit".
        sandbox: confine scripts (no Python, files, processes, native code,
            binary chunks, finalisers); True by default, for plugins.
        bind_address: every ``listen()``/``bind()`` binds only this address
            (a name or a numeric address); None binds all interfaces.
        on_error: called with the text of every error raised in a handler,
            timer or callback (by default it is logged on the "luanet" logger).
        loop: a running asyncio loop to attach to (its owner drives it; end
            the host with ``await host.aclose()``); None makes the host's own,
            and raises RuntimeError when called inside a running loop.
        event_loop: the kind of loop to make when ``loop`` is None: "asyncio"
            (default), "uvloop" or "auto" (the LUANET_LOOP environment
            variable, when set, wins; see new_event_loop).
        max_memory: the bytes the host may hold for its scripts: the Lua heap
            plus what its sockets buffer in Python. Past it, reading pauses and
            ``write_*`` returns -1 (SOCKET_RESOURCE_ERROR); Lua allocations fail
            with "not enough memory". None: no limit.
        handler_time_limit: seconds of CPU any handler, callback, timer or
            top-level chunk may run before it is stopped with a Lua error (on
            LuaJIT this turns the JIT compiler off). None: no limit.
        read_buffer_size: the default ``read_buffer_size`` of every socket
            (0: no limit, as in Qt).
        lua_path: ``;``-separated templates (``DIR/?.lua``) where ``require``
            finds Lua modules; in a sandbox only Lua source files load.
        reuse_port: listening sockets get SO_REUSEPORT, so several processes
            (each its own host) can serve one port (``luanet run --workers``).
    """

    def __init__(self, lua: str = "5.4", sandbox: bool = True, bind_address: Optional[str] = None,
                 on_error: Optional[Callable[[str], Any]] = None,
                 loop: Optional[asyncio.AbstractEventLoop] = None,
                 event_loop: Optional[str] = None, max_memory: Optional[int] = None,
                 handler_time_limit: Optional[float] = None, read_buffer_size: int = 0,
                 lua_path: Optional[str] = None, reuse_port: bool = False):
        if lua not in LUA_MODULES:
            raise ValueError(f"unknown Lua version {lua!r}; choose one of {', '.join(LUA_MODULES)}")
        if not isinstance(sandbox, bool):
            raise TypeError("sandbox must be True or False")
        if bind_address is not None and not isinstance(bind_address, str):
            raise TypeError("bind_address must be a str or None")
        if on_error is not None and not callable(on_error):
            raise TypeError("on_error must be callable or None")
        if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, int)
                                       or max_memory <= 0):
            raise ValueError("max_memory must be a positive number of bytes")
        if handler_time_limit is not None and (isinstance(handler_time_limit, bool)
                                               or not isinstance(handler_time_limit, (int, float))
                                               or not handler_time_limit > 0):
            raise ValueError("handler_time_limit must be a positive number of seconds")
        if (isinstance(read_buffer_size, bool) or not isinstance(read_buffer_size, int)
                or read_buffer_size < 0):
            raise ValueError("read_buffer_size must be a non-negative number of bytes")
        if lua_path is not None and not isinstance(lua_path, str):
            raise TypeError("lua_path must be a str of ';'-separated templates or None")
        if loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError("LuaHost() inside a running asyncio loop: pass "
                                   "loop=asyncio.get_running_loop() so the host uses that loop")
        self._owns_loop = loop is None
        self.loop = new_event_loop(event_loop) if loop is None else loop
        self._events = EventQueue(self.loop)
        self._on_error = on_error
        self._stop: Optional[asyncio.Future[None]] = None
        self._closed = False
        self._interrupted = False
        self.discarded_peers = 0
        self._bridge = Bridge(self._events, lua=lua, sandbox=sandbox, bind_address=bind_address,
                              max_memory=max_memory, handler_time_limit=handler_time_limit,
                              read_buffer_size=read_buffer_size, lua_path=lua_path,
                              reuse_port=bool(reuse_port),
                              report_error=self._report_error,
                              run_until=self._run_until_from_lua, run_for=self._run_for_from_lua)
        self.lua_version = lua
        self.sandbox = sandbox
        self.bind_address = bind_address

    # ------------------------------------------------------------ running Lua
    @property
    def globals(self) -> LuaGlobals:
        """The Lua global table (see LuaGlobals)."""
        self._check_open()
        return LuaGlobals(self._bridge)

    def execute(self, source: Union[str, bytes], name: Optional[str] = None) -> Any:
        """Run ``source``, a chunk of Lua (``name`` is its chunk name for
        messages), and return what it returns. A Lua error raises LuaError."""
        if not isinstance(source, (str, bytes)):
            raise TypeError("source must be str or bytes")
        if isinstance(source, str):
            source = source.encode("utf-8")
        chunk_name = "=(execute)"
        if name is not None:
            chunk_name = name if name[:1] in ("@", "=") else "@" + name
        return self._call_lua(self._bridge.execute, source, chunk_name)

    def execute_file(self, path: Union[str, os.PathLike[str]], *args: Any) -> Any:
        """Run the Lua file at ``path``; ``args`` arrive in the chunk as ``...``
        (converted as everywhere). A Lua error raises LuaError; a missing file OSError."""
        path = Path(path)
        source = path.read_bytes()
        if source.startswith(b"#"):  # a shebang line, as the standalone lua skips it
            source = b"--" + source
        return self._call_lua(self._bridge.execute, source, "@" + str(path), *args)

    def eval(self, expression: Union[str, bytes]) -> Any:
        """The value of a Lua expression (several values come as a tuple)."""
        if not isinstance(expression, (str, bytes)):
            raise TypeError("expression must be str or bytes")
        if isinstance(expression, str):
            expression = expression.encode("utf-8")
        return self._call_lua(self._bridge.eval, expression)

    def call(self, function: Any, *args: Any) -> Any:
        """Call a Lua function (one that Lua handed to Python) with ``args``
        converted as everywhere, under the host's time limit."""
        return self._call_lua(self._bridge.call, function, *args)

    def table(self, value: Union[Mapping[Any, Any], Sequence[Any]]) -> Any:
        """A new Lua table from ``value``, a dict or list (nested ones too)."""
        if not isinstance(value, (Mapping, list, tuple)):
            raise TypeError("table() takes a dict, a list or a tuple")
        self._check_open()
        return self._bridge.table(dict(value) if isinstance(value, Mapping) else list(value))

    def load_module(self, name: str) -> Any:
        """Run one of luanet's bundled Lua modules by ``name``; it gets the
        debug library even in a sandbox, scripts do not."""
        if not isinstance(name, str) or not name.replace("/", "_").isidentifier():
            raise ValueError(f"not a luanet module name: {name!r}")
        return self._call_lua(self._bridge.load_module, name)

    def _check_open(self) -> None:
        if self._closed:
            raise LuaError("luanet: this host is closed")

    def _call_lua(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._check_open()
        try:
            return fn(*args)
        except self._bridge.LuaError as exc:
            raise _as_lua_error(exc) from None
        except LuaError:
            raise
        except Exception as exc:
            # A Python error raised through Lua (e.g. the sandbox's attribute filter).
            raise LuaError(str(exc) or type(exc).__name__) from exc

    def _report_error(self, message: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(message)
                return
            except Exception:
                log.exception("on_error callback failed")
        # "in ready_read_handler: x.lua:3: boom" reads as "error in ...";
        # the logger's name (or luanet run's one prefix) says whose it is
        log.error("error %s" if message.startswith("in ") else "%s", message)

    # ------------------------------------------------------------ the loop
    def _check_drivable(self) -> None:
        self._check_open()
        if not self._owns_loop:
            raise RuntimeError("this LuaHost is attached to an asyncio loop: its owner runs it "
                               "(await asyncio.sleep(...) instead of run_for/run_until)")
        if self.loop.is_running():
            raise RuntimeError("the event loop is already running: luanet.run_until and "
                               "luanet.run_for cannot be called from inside a handler")

    def run_until(self, predicate: Callable[[], Any], timeout: float) -> bool:
        """Run the loop until ``predicate()`` is true (-> True) or ``timeout``
        seconds pass (-> False)."""
        self._check_drivable()
        self._events.new_turn()
        return self.loop.run_until_complete(self._wait_until(predicate, timeout))

    def _run_until_from_lua(self, predicate: Callable[[], Any], timeout: float) -> bool:
        if self._interrupted:
            raise RuntimeError("interrupted")
        result = self.run_until(lambda: self._interrupted or predicate(), timeout)
        if self._interrupted:
            raise RuntimeError("interrupted")
        return result

    def _run_for_from_lua(self, seconds: float) -> None:
        if self._interrupted:
            raise RuntimeError("interrupted")
        self.run_until(lambda: self._interrupted, seconds)
        if self._interrupted:
            raise RuntimeError("interrupted")

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
        """Run the loop for ``seconds``."""
        self._check_drivable()
        self._events.new_turn()
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def interrupt(self) -> None:
        """From now on ``luanet.run_for``/``run_until`` raise the Lua error
        ``interrupted`` at once (every later call too), so a script driving
        its own loop ends; ``serve_forever`` returns. Safe from any thread."""
        self._interrupted = True
        self.stop()

    @property
    def interrupted(self) -> bool:
        """Whether interrupt() was called."""
        return self._interrupted

    @property
    def active(self) -> bool:
        """True while any server of this host listens, any socket is open or
        connecting, or any timer runs."""
        return not self._closed and self._bridge.active()

    def serve_forever(self, until_idle: bool = False) -> None:
        """Run the loop until stop(), interrupt(), SIGINT or SIGTERM (or, with
        ``until_idle``, until nothing is listening, connected or timing)."""
        self._check_drivable()
        if self._interrupted:
            return
        self._stop = self.loop.create_future()
        handled = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self.loop.add_signal_handler(sig, self.stop)
                    handled.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
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
        while stop is not None and not stop.done() and self.active:
            await self._events.wait_batch(0.05)

    def stop(self) -> None:
        """Make serve_forever() return (safe from signal handlers and threads)."""
        stop = self._stop
        if stop is not None:
            def finish() -> None:
                if not stop.done():
                    stop.set_result(None)
            try:
                self.loop.call_soon_threadsafe(finish)
            except RuntimeError:  # the loop is closed already
                pass

    # ------------------------------------------------------------ teardown
    def close(self, grace: float = CLOSE_GRACE_SECONDS) -> int:
        """Close every server, socket and timer of this host, after letting
        what scripts wrote flush for up to ``grace`` seconds; returns the
        bytes still unsent then, which are discarded (and logged). No port or
        descriptor of the host stays open."""
        if self._closed:
            return 0
        if not self._owns_loop:
            raise RuntimeError("this LuaHost is attached to an asyncio loop: use await host.aclose()")
        if self.loop.is_running():
            raise RuntimeError("LuaHost.close() cannot be called from inside a handler")
        discarded = self.loop.run_until_complete(self.aclose(grace))
        self._shutdown_loop()
        return discarded

    async def aclose(self, grace: float = CLOSE_GRACE_SECONDS) -> int:
        """close() for a host attached to a running loop: flushes for up to
        ``grace`` seconds, then discards; returns the bytes discarded."""
        if self._closed:
            return 0
        closing = self._bridge.close_all()
        self._closed = True
        deadline = self.loop.time() + max(0.0, grace)
        # Graceful closes flush what scripts wrote; give them the grace.
        while any(not s.finished for s in closing) and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        discarded, peers = 0, 0
        for sock in closing:
            if not sock.finished:
                unsent = _unsent(sock)
                if unsent:
                    discarded += unsent
                    peers += 1
                sock.abort()
        await asyncio.sleep(0)  # let aborted transports drop their sockets
        self._bridge.close()
        self.discarded_peers = peers
        if discarded:
            log.warning("closing discarded %d unsent bytes to %d peer(s) after %g s of grace",
                        discarded, peers, grace)
        return discarded

    def _shutdown_loop(self) -> None:
        loop = self.loop
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def __enter__(self) -> LuaHost:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> LuaHost:
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


def _unsent(sock: TcpSocket) -> int:
    try:
        return int(sock.bytes_to_write)
    except Exception:
        return 0


__all__: List[str] = ["LuaHost", "LuaError", "LuaGlobals", "new_event_loop", "CLOSE_GRACE_SECONDS"]
