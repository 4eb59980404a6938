"""The lupa bridge: the only module that imports lupa.

One runtime per host, created with encoding=None so Lua strings are bytes both
ways. Lua calls down through a small table of named Python functions
(``native_functions``), which take and return only ids, numbers, booleans and
bytes; events go up through one Lua dispatcher, a batch per EventQueue batch.
Python never holds a Lua object other than that dispatcher and the chunks'
results, so Lua's collector alone decides when a server or socket dies (its
finaliser calls ``release``).
"""

from __future__ import annotations

import importlib
import logging
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .core import Event, EventQueue, SocketState, TcpServer, TcpSocket

log = logging.getLogger("luanet")

LUA_MODULES = {
    "5.1": "lupa.lua51", "5.2": "lupa.lua52", "5.3": "lupa.lua53",
    "5.4": "lupa.lua54", "5.5": "lupa.lua55", "luajit": "lupa.luajit21",
}

# Events per dispatch call: 3 Lua stack slots each, well below every
# version's C stack limit.
_BATCH_EVENTS = 200

_READY_READ = int(Event.READY_READ)
_DISCONNECTED = int(Event.DISCONNECTED)
_CALL = int(Event.CALL)


def _text(value: Any) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _optional_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


# Properties Lua may read, through the readers native.getter(class, name) makes. Strings go out as
# bytes: with encoding=None a Python str would reach Lua as a Python object.
_SERVER_PROPS: Dict[bytes, Callable[[TcpServer], Any]] = {
    b"listening": lambda s: s.listening,
    b"port": lambda s: s.port,
    b"max_pending_connections": lambda s: s.max_pending_connections,
    b"has_pending_connections": lambda s: s.has_pending_connections,
    b"error_string": lambda s: _text(s.error_string),
    b"error": lambda s: _optional_int(s.error),
}
_SOCKET_PROPS: Dict[bytes, Callable[[TcpSocket], Any]] = {
    b"state": lambda s: int(s.state),
    b"error": lambda s: _optional_int(s.error),
    b"error_string": lambda s: _text(s.error_string),
    b"valid": lambda s: s.valid,
    b"local_address": lambda s: _text(s.local_address),
    b"local_port": lambda s: s.local_port,
    b"remote_address": lambda s: _text(s.remote_address),
    b"remote_port": lambda s: s.remote_port,
    b"is_open": lambda s: s.is_open,
    b"open_mode": lambda s: int(s.open_mode),
    b"bytes_to_write": lambda s: s.bytes_to_write,
    b"readable": lambda s: s.readable,
    b"writeable": lambda s: s.writeable,
}


def lua_source(name: str) -> bytes:
    """A file of the Lua half of the binding, from the installed package or
    from the source tree's lua/ directory."""
    try:
        return (resources.files("luanet.lua") / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parent.parent / "lua" / name).read_bytes()


def _deny_attribute(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python objects are not accessible from a sandboxed script")


class Bridge:
    """A Lua runtime with net and luanet installed, wired to an EventQueue."""

    def __init__(self, events: EventQueue, *, lua: str = "5.4", sandbox: bool = True,
                 bind_address: Optional[str] = None, max_memory: Optional[int] = None,
                 handler_time_limit: Optional[float] = None,
                 report_error: Callable[[str], None],
                 run_until: Callable[[Callable[[], Any], float], Any],
                 run_for: Callable[[float], Any]):
        if lua not in LUA_MODULES:
            raise ValueError(f"unknown Lua version {lua!r}; choose one of {', '.join(LUA_MODULES)}")
        lupa_module = importlib.import_module(LUA_MODULES[lua])
        self.LuaError = lupa_module.LuaError
        options: Dict[str, Any] = dict(encoding=None, register_eval=False, register_builtins=False,
                                       unpack_returned_tuples=True)
        if sandbox:
            options["attribute_filter"] = _deny_attribute
        if max_memory is not None:
            options["max_memory"] = max_memory
        self.runtime = lupa_module.LuaRuntime(**options)
        self.version = lua
        self.sandbox = sandbox
        self._events = events
        self._bind_address = bind_address
        self._report_error = report_error
        self._run_until = run_until
        self._run_for = run_for
        self._objects: Dict[int, Any] = {}
        # id -> bit mask (1 << event) of the events the Lua object has a handler
        # for: the others never cross (READY_READ and DISCONNECTED always do).
        self._wanted: Dict[int, int] = {}
        self._next_id = 0
        self._batch: List[Any] = []
        self._closed = False
        events.after_batch = self.flush

        native = self.runtime.table_from({k.encode(): v for k, v in self.native_functions().items()})
        if handler_time_limit is not None:
            native[b"handler_time_limit"] = float(handler_time_limit)
        self.net, self._dispatch, self._shutdown = self._run_chunk("net.lua", native)
        self.luanet, lua_print = self._run_chunk("luanet.lua", native)
        self.runtime.globals()[b"print"] = lua_print
        self._install_modules()
        # Kept for luanet's own modules (load_module), which need tracebacks
        # and line numbers even where the sandbox hides debug from scripts.
        self._debug = self.runtime.globals()[b"debug"]
        if sandbox:
            self._run_chunk("sandbox.lua")

    # ------------------------------------------------------------ set-up
    def _run_chunk(self, name: str, *args: Any) -> Any:
        chunk = self.runtime.compile(lua_source(name), name=f"@luanet/{name}", mode="t")
        return chunk(*args)

    def load_module(self, name: str) -> Any:
        """Run luanet's own ``lua/<name>.lua`` (trusted code) with the debug
        library as its first argument; returns what the chunk returns."""
        if not name.isidentifier():
            raise ValueError(f"not a luanet module name: {name!r}")
        return self._run_chunk(f"{name}.lua", self._debug)

    def _install_modules(self) -> None:
        g = self.runtime.globals()
        g[b"net"] = self.net
        g[b"luanet"] = self.luanet
        install = self.runtime.eval(b"""function(net, luanet)
            package.preload.net = function() return net end
            package.preload.luanet = function() return luanet end
            package.loaded.net, package.loaded.luanet = net, luanet
        end""")
        install(self.net, self.luanet)

    def native_functions(self) -> Dict[str, Callable[..., Any]]:
        """The whole surface Lua can call. Arguments were checked in net.lua."""
        objects = self._objects
        return {
            "server_new": self._server_new,
            "socket_new": self._socket_new,
            "release": self._release,
            "describe": lambda oid: repr(objects[oid]).encode(),
            "getter": self._getter,
            "want": self._want,
            "defer": self._defer,
            "report_error": self._lua_error,
            "write_stdout": _write_stdout,
            "run_until": self._lua_run_until,
            "run_for": self._lua_run_for,
            # TcpServer
            "listen": lambda oid, port: objects[oid].listen(int(port)),
            "server_close": lambda oid: objects[oid].close(),
            "pause": lambda oid: objects[oid].pause_accepting(),
            "resume": lambda oid: objects[oid].resume_accepting(),
            "set_max_pending": self._set_max_pending,
            "next_pending": self._next_pending,
            # TcpSocket
            "connect": lambda oid, host, port, mode: objects[oid].connect(
                host.decode("utf-8", "replace"), int(port), int(mode)),
            "bind": lambda oid, port: objects[oid].bind(int(port)),
            "write": lambda oid, data: objects[oid].write(data),
            "disconnect": lambda oid: objects[oid].disconnect(),
            "abort": lambda oid: objects[oid].abort(),
            "close": lambda oid: objects[oid].close(),
            "watch_written": self._watch_written,
        }

    # ------------------------------------------------------------ handles
    def _register(self, obj: Any) -> int:
        self._next_id += 1
        obj.tag = self._next_id
        self._objects[self._next_id] = obj
        return self._next_id

    def _server_new(self) -> int:
        return self._register(TcpServer(self._events, self._on_event, self._on_event,
                                        self._bind_address))

    def _socket_new(self) -> int:
        return self._register(TcpSocket(self._events, self._on_event, self._bind_address))

    def _next_pending(self, oid: int) -> Optional[int]:
        sock = self._objects[oid].next_pending_connection()
        return None if sock is None else self._register(sock)

    def _set_max_pending(self, oid: int, value: Any) -> None:
        self._objects[oid].max_pending_connections = int(value)

    def _watch_written(self, oid: int, on: bool) -> None:
        self._objects[oid].notify_bytes_written = bool(on)

    def _want(self, oid: int, event: int, on: bool) -> None:
        bit = 1 << int(event)
        mask = self._wanted.get(oid, 0)
        self._wanted[oid] = (mask | bit) if on else (mask & ~bit)

    def _getter(self, class_name: bytes, name: bytes) -> Callable[[int], Any]:
        """A reader of one property, made once when net.lua loads: a property
        read is then one call with the object's id."""
        read = (_SERVER_PROPS if class_name == b"TcpServer" else _SOCKET_PROPS)[name]
        objects = self._objects
        return lambda oid: read(objects[oid])

    def _release(self, oid: int) -> None:
        """The Lua object was collected (its finaliser calls this)."""
        obj = self._objects.pop(oid, None)
        self._wanted.pop(oid, None)
        if obj is None or self._closed:
            return
        obj.tag = None
        if isinstance(obj, TcpServer):
            if obj.listening:
                log.warning("luanet: a listening TcpServer (port %d) was garbage-collected; "
                            "keep a reference to it (e.g. in a global) to keep it serving", obj.port)
            obj.release()
        else:
            obj.release()

    # ------------------------------------------------------------ events up
    def _on_event(self, obj: Any, event: int, a: Any, b: Any) -> None:
        tag = obj.tag
        if tag is None:
            return
        if event == _READY_READ:
            a = obj.read()  # the bytes travel with the event; Lua buffers them
        elif event != _DISCONNECTED and not (self._wanted.get(tag, 0) >> event) & 1:
            return  # no handler for it: not worth a trip into Lua
        self._batch += (event, tag, a)

    def _defer(self, token: int) -> None:
        self._events.post(self._queue_call, token)

    def _queue_call(self, token: int) -> None:
        self._batch += (_CALL, token, None)

    def flush(self) -> None:
        """Send the events gathered in this batch to Lua."""
        batch = self._batch
        if not batch or self._closed:
            return
        self._batch = []
        step = 3 * _BATCH_EVENTS
        parts = (batch,) if len(batch) <= step else [
            batch[start:start + step] for start in range(0, len(batch), step)]
        for part in parts:
            try:
                self._dispatch(*part)
            except Exception as exc:  # a broken dispatcher must not take the loop down
                self._report_error(f"luanet: event dispatch failed: {exc}")

    def _lua_error(self, message: bytes) -> None:
        self._report_error(message.decode("utf-8", "replace"))

    # ------------------------------------------------------------ loop helpers
    def _lua_run_until(self, predicate: Any, timeout: float):
        try:
            return self._run_until(predicate, float(timeout))
        except RuntimeError as exc:
            return None, str(exc).encode()
        except Exception as exc:  # the predicate raised: surface its message in Lua
            return None, _lua_message(exc).encode()

    def _lua_run_for(self, seconds: float):
        try:
            self._run_for(float(seconds))
            return True
        except RuntimeError as exc:
            return None, str(exc).encode()

    # ------------------------------------------------------------ teardown
    def active(self) -> bool:
        """Is anything listening, connected or connecting?"""
        for obj in self._objects.values():
            if isinstance(obj, TcpServer):
                if obj.listening:
                    return True
            elif obj.state != SocketState.UNCONNECTED:
                return True
        return False

    def close_all(self) -> List[TcpSocket]:
        """Close every server and socket; returns the sockets still closing."""
        self._closed = True
        self._shutdown()
        objects = list(self._objects.values())
        self._objects.clear()
        closing = []
        for obj in objects:
            obj.tag = None
            if isinstance(obj, TcpServer):
                closing.extend(obj.pending_and_handed_out())
                obj.release()
            else:
                closing.append(obj)
                obj.release()
        return closing


def _write_stdout(data: bytes) -> None:
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        out.flush()
        buffer.write(data)
        buffer.flush()
    else:  # a text-only stream (e.g. captured by a test runner)
        out.write(data.decode("utf-8", "replace"))
        out.flush()


def _lua_message(exc: BaseException) -> str:
    text = str(exc.args[0] if getattr(exc, "args", None) else exc)
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", "replace")
    return text.split("\nstack traceback:", 1)[0]
