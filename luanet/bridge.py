"""The lupa bridge: the only module that imports lupa.

One runtime per host, created with encoding=None so Lua strings are bytes both
ways. Lua calls down through a table of named Python functions (``_natives``),
which take and return only ids, numbers, booleans and bytes, and never raise:
no Python exception, text or object reaches a script. Events go up through one
Lua dispatcher, a batch per EventQueue batch. Python holds no Lua object but
the dispatcher and a few of the Lua half's functions, so Lua's collector alone
decides when a server, socket or timer dies (its finaliser calls ``release``).

The interface the host uses: ``execute``, ``compile``, ``call``, ``eval``,
``globals``, ``table``, ``load_module``, ``active``, ``close_all``, ``close``.

Memory: with ``max_memory`` the host's budget (core/budget.py) counts the Lua
heap and the bytes held in Python. Bytes are pushed into Lua only when they
fit with ``HEADROOM`` to spare: a push that fails outside a protected call
would abort the process, and a string returned to Lua that does not fit would
hang it, so neither is ever attempted.
"""

from __future__ import annotations

import importlib
import logging
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, Final, Iterable, List, Optional, Set, Tuple, cast

from .core import Event, EventQueue, SocketState, TcpServer, TcpSocket
from .core.budget import MemoryBudget
from .core.events import Reporter, Stepper
from .core.timer import Timer
from .errors import HostClosed
from .output import stdout
from .schema import ALWAYS_DELIVERED, CALL_EVENT, CLASSES, lua_schema

log = logging.getLogger("luanet")

LUA_MODULES = {
    "5.1": "lupa.lua51", "5.2": "lupa.lua52", "5.3": "lupa.lua53",
    "5.4": "lupa.lua54", "5.5": "lupa.lua55", "luajit": "lupa.luajit21",
}

# The Lua half, in load order; each runs as chunk(native, M) and adds itself
# to M (net and timer return what scripts see).
_LUA_PARTS: Final = ("limits", "checks", "objects", "readbuf", "dispatch")

# Events per dispatch call: 3 Lua stack slots each, well below every
# version's C stack limit.
_BATCH_EVENTS: Final = 200

# Memory kept free in the Lua heap for what pushing a batch costs (the call,
# stack slots, string headers), so a push never meets the limit.
HEADROOM: Final = 64 << 10

_READY_READ: Final = int(Event.READY_READ)
# as bits (1 << event), like each object's events_wanted: tested without a lookup
_ALWAYS: Final = sum(1 << int(e) for e in ALWAYS_DELIVERED)
_BYTES_WRITTEN: Final = int(Event.BYTES_WRITTEN)
_ACCEPT_ERROR: Final = int(Event.ACCEPT_ERROR)


def lua_source(name: str) -> bytes:
    """A file of the Lua half of the binding, from the installed package or
    from the source tree's lua/ directory."""
    try:
        return (resources.files("luanet.lua") / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parent.parent / "lua" / name).read_bytes()


def _deny_attribute(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python objects are not accessible from a sandboxed script")


class _Released:
    """What an id answers once its object was released (a script can still
    reach a collected object through a weak table on Lua 5.4): closed."""

    listening = False
    has_pending_connections = False
    valid = False
    is_open = False
    readable = False
    writeable = False
    active = False
    single_shot = False
    port = 0
    max_pending_connections = 0
    local_port = 0
    remote_port = 0
    bytes_to_write = 0
    read_buffer_size = 0
    state = 0  # SocketState.UNCONNECTED (a literal: mypyc compiles this class)
    open_mode = 0
    error = None
    error_string = "The object was released"
    local_address = ""
    remote_address = ""
    interval = 0.0
    remaining = -1.0

    def __getattr__(self, name: str) -> Any:
        return lambda *args: False

    def __repr__(self) -> str:
        return "(released)"


_RELEASED: Final = _Released()


def to_lua(runtime: Any, value: Any) -> Any:
    """A Python value as Lua should see it: str as UTF-8 bytes, dicts and
    lists (nested too) as tables; the rest as lupa converts it."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return runtime.table_from({to_lua(runtime, k): to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


class Bridge(Stepper):
    """A Lua runtime with net and luanet installed, wired to an EventQueue."""

    def __init__(self, events: EventQueue, *, lua: str = "5.4", sandbox: bool = True,
                 bind_address: Optional[str] = None, max_memory: Optional[int] = None,
                 handler_time_limit: Optional[float] = None, read_buffer_size: int = 0,
                 lua_path: Optional[str] = None, reuse_port: bool = False,
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
        self.max_memory = max_memory
        self.budget = MemoryBudget(max_memory, self._lua_memory if max_memory else (lambda: 0))
        self._events = events
        self._event_of = self._on_event  # bound once; see _register
        self._bind_address = bind_address
        self._report_error = report_error
        self._run_until = run_until
        self._run_for = run_for
        self._objects: Dict[int, Any] = {}
        self._next_id = 0
        self._batch: List[Any] = []
        # the part of a batch Lua is running (native.write_at indexes it)
        self._delivering: List[Any] = []
        self._batch_bytes = 0
        self._read_buffer_size = int(read_buffer_size)
        self._reuse_port = reuse_port
        self._owed: Dict[TcpSocket, int] = {}  # socket -> id: data that did not fit in Lua yet
        self._flushing: Set[TcpSocket] = set()  # collected, still sending
        self._closed = False
        self._getters = {spec.name.encode(): {p.name.encode(): p for p in spec.props}
                         for spec in CLASSES}
        self._setters = {spec.name.encode(): {p.name.encode(): p.set for p in spec.props if p.set}
                         for spec in CLASSES}
        events.after_batch = self.flush

        native = self.runtime.table_from({k.encode(): v for k, v in self._natives().items()})
        native[b"schema"] = to_lua(self.runtime, lua_schema())
        native[b"default_read_buffer_size"] = int(read_buffer_size)
        if handler_time_limit is not None:
            native[b"handler_time_limit"] = float(handler_time_limit)
        parts = self.runtime.table()
        for name in _LUA_PARTS:
            self._run_chunk(f"{name}.lua", native, parts)
        self._dispatch = parts[b"dispatch"][b"run"]
        self._clock_begin = parts[b"limits"][b"begin"]
        self._clock_stop = parts[b"limits"][b"stop"]
        self._shutdown = parts[b"objects"][b"shutdown"]
        self._describe = parts[b"objects"][b"describe"]
        self.net = self._run_chunk("net.lua", native, parts)
        timer_class, after, every = self._run_chunk("timer.lua", native, parts)
        self.luanet, lua_print = self._run_chunk("luanet.lua", native, parts, timer_class, after, every)
        g = self.runtime.globals()
        g[b"print"] = lua_print
        g[b"net"] = self.net
        g[b"luanet"] = self.luanet
        install = self.runtime.eval(b"""function(net, luanet)
            package.preload.net = function() return net end
            package.preload.luanet = function() return luanet end
            package.loaded.net, package.loaded.luanet = net, luanet
        end""")
        install(self.net, self.luanet)
        # Kept for luanet's own modules (load_module), which need tracebacks
        # and line numbers even where the sandbox hides debug from scripts,
        # and to refuse every call once the host is closed.
        self._debug = g[b"debug"]
        if sandbox:
            self._run_chunk("sandbox.lua", to_lua(self.runtime, lua_path or ""))
        elif lua_path:
            g[b"package"][b"path"] = to_lua(self.runtime, lua_path) + b";" + g[b"package"][b"path"]

    # ------------------------------------------------------------ the interface
    def _run_chunk(self, name: str, *args: Any) -> Any:
        chunk = self.runtime.compile(lua_source(name), name=f"@luanet/{name}", mode="t")
        return chunk(*args)

    def compile(self, source: bytes, name: str) -> Any:
        """A chunk of script code (text only in a sandbox)."""
        return self.runtime.compile(source, name=name, mode="t" if self.sandbox else None)

    def call(self, fn: Any, *args: Any) -> Any:
        """Call a Lua function under the time limit, with arguments converted."""
        runtime = self.runtime
        args = tuple(to_lua(runtime, a) for a in args)
        if not self._clock_begin():
            return fn(*args)
        try:
            return fn(*args)
        finally:
            self._clock_stop()

    def execute(self, source: bytes, name: str, *args: Any) -> Any:
        return self.call(self.compile(source, name), *args)

    def eval(self, expression: bytes) -> Any:
        return self.execute(b"return " + expression, "=eval")

    def globals(self) -> Any:
        return self.runtime.globals()

    def table(self, value: Any) -> Any:
        return to_lua(self.runtime, value)

    def to_lua(self, value: Any) -> Any:
        return to_lua(self.runtime, value)

    def describe(self) -> Dict[str, Dict[str, Any]]:
        """What each class offers scripts, by name (for tools and tests):
        methods (``new`` among them), properties, writable ones, handlers,
        constants."""
        out: Dict[str, Dict[str, Any]] = {}
        for name, entry in self._describe().items():
            out[name.decode()] = {
                kind.decode(): (dict((k.decode(), v) for k, v in value.items()) if kind == b"constants"
                                else sorted(v.decode() for v in value.values()))
                for kind, value in entry.items()}
        return out

    def load_module(self, name: str) -> Any:
        """Run luanet's own ``lua/<name>.lua`` (trusted code) with the debug
        library as its first argument; returns what the chunk returns."""
        if not name.replace("/", "_").isidentifier():
            raise ValueError(f"not a luanet module name: {name!r}")
        return self._run_chunk(f"{name}.lua", self._debug)

    # ------------------------------------------------------------ natives
    def _natives(self) -> Dict[str, Callable[..., Any]]:
        """The whole surface Lua can call. Arguments were checked in Lua."""
        objects = self._objects

        def get(oid: int) -> Any:
            return objects.get(oid, _RELEASED)

        # (isinstance, not a None test: compiled, the write is then a direct call)
        def write(oid: int, data: bytes) -> int:
            sock = objects.get(oid)
            return sock.write(data) if isinstance(sock, TcpSocket) else -1

        # once a connection each: the guard (below) written out, without its
        # call by name and argument tuple
        def next_pending(oid: int) -> Any:
            self._check_open()
            try:
                return self._next_pending(oid)
            except Exception:
                return self._internal_error("next_pending")

        def release(*oids: Any) -> None:
            self._check_open()
            self._release(oids)  # (each id under its own guard)

        def write_at(at: int, oid: Optional[int] = None) -> int:
            # write_string of the bytes a ready_read_handler was handed (net.lua
            # checked they are equal): the batch's own object, to the socket
            # they came from (the id before them in the batch) or to ``oid``.
            # Every argument lupa converts costs ~700 instructions: an echo
            # sends only where its bytes are.
            delivering = self._delivering
            sock = objects.get(delivering[at - 2] if oid is None else oid)
            return sock.write(delivering[at - 1]) if isinstance(sock, TcpSocket) else -1

        return {
            "server_new": self._guard(self._server_new),
            "socket_new": self._guard(self._socket_new),
            "timer_new": self._guard(self._timer_new),
            "release": release,
            "describe": self._guard(lambda oid: self._fit(repr(get(oid)).encode())),
            "getter": self._getter,
            "setter": self._setter,
            "want": self._guard(self._want),
            "defer": self._guard(self._defer),
            "report_error": self._guard(self._lua_error),
            "write_stdout": self._guard(stdout.write),
            "run_until": self._lua_run_until,
            "run_for": self._lua_run_for,
            # TcpServer
            "listen": self._guard(lambda oid, port: self._result(get(oid), get(oid).listen(int(port)))),
            "server_close": self._guard(lambda oid: get(oid).close()),
            "pause": self._guard(lambda oid: get(oid).pause_accepting()),
            "resume": self._guard(lambda oid: get(oid).resume_accepting()),
            "next_pending": next_pending,
            # TcpSocket
            "connect": self._guard(lambda oid, host, port, mode: self._result(get(oid), get(oid).connect(
                host.decode("utf-8", "replace"), int(port), int(mode)))),
            "bind": self._guard(lambda oid, port: self._result(get(oid), get(oid).bind(int(port)))),
            "write": write,
            "write_at": write_at,
            "disconnect": self._guard(lambda oid: get(oid).disconnect()),
            "abort": self._guard(lambda oid: get(oid).abort()),
            "close": self._guard(lambda oid: get(oid).close()),
            "hold_reading": self._guard(self._hold_reading),
            # Timer
            "timer_start": self._guard(lambda oid, interval: get(oid).start(interval)),
            "timer_stop": self._guard(lambda oid: get(oid).stop()),
            "timer_active": self._guard(lambda oid: get(oid).active),
        }

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A native that never raises into Lua: a Python exception here is a
        bug of luanet's, logged, and Lua gets nil."""
        def guarded(*args: Any) -> Any:
            self._check_open()
            try:
                return fn(*args)
            except Exception:
                return self._internal_error(getattr(fn, "__name__", "a native call"))
        return guarded

    def _check_open(self) -> None:
        if self._closed:
            raise HostClosed("luanet: this host is closed")

    def _internal_error(self, name: str) -> None:
        """Log the exception being handled, a bug of luanet's in native
        ``name``; Lua gets nil."""
        log.exception("internal error in %s", name)

    def _fit(self, data: bytes) -> Any:
        """``data`` if a Lua string of it fits the memory budget, else False
        (the Lua side raises "not enough memory" then)."""
        if self.max_memory is not None and self._lua_memory() + len(data) + HEADROOM > self.max_memory:
            return False
        return data

    def _result(self, obj: Any, ok: bool) -> Any:
        """true, or false and the error string (``assert(server:listen(p))``
        then says why)."""
        if ok:
            return True
        return False, self._fit(obj.error_string.encode("utf-8", "replace")) or b"not enough memory"

    # ------------------------------------------------------------ handles
    def _register(self, obj: Reporter) -> int:
        if self._read_buffer_size and isinstance(obj, TcpSocket):
            obj.read_buffer_size = self._read_buffer_size  # the host's default
        self._next_id += 1
        oid = self._next_id
        # The id rides on the object as its opaque tag, and every object
        # shares one listener: nothing is made per connection for it.
        obj.tag = oid
        obj.listener = self._event_of
        # Only the events a Lua handler is set for cross (and those Lua
        # always needs): the object drops the others itself (_want sets them).
        obj.events_wanted = _ALWAYS
        self._objects[oid] = obj
        return oid

    def _server_new(self) -> int:
        return self._register(TcpServer(self._events, None, None, self._bind_address, budget=self.budget,
                                        reuse_port=self._reuse_port))

    def _socket_new(self) -> int:
        return self._register(TcpSocket(self._events, None, self._bind_address,
                                        budget=self.budget))

    def _timer_new(self) -> int:
        return self._register(Timer(self._events))

    def _next_pending(self, oid: int) -> Any:
        """The id of the next queued connection, the bytes already received
        on it, and whether more wait (Lua keeps that answer for the rest of
        the dispatch; see net.lua)."""
        server = self._objects.get(oid)
        if not isinstance(server, TcpServer):
            return None  # released
        sock = server.next_pending_connection()
        if sock is None:
            return None
        sid = self._register(sock)
        # Bytes that arrived while it was queued are readable at once; the
        # core announces them too (READY_READ with b=True, before a close that
        # came after them), so a handler the script sets right after taking
        # the socket still hears of them.
        return sid, self._take_data(sid, sock), server.has_pending_connections

    def _getter(self, class_name: bytes, name: bytes) -> Callable[[int], Any]:
        """A reader of one property, made once when the class is defined: a
        property read is then one call with the object's id."""
        prop = self._getters[class_name][name]
        read, objects, fit = prop.get, self._objects, self._fit
        if prop.kind == "string":
            return lambda oid: fit(read(objects.get(oid, _RELEASED)))
        return lambda oid: read(objects.get(oid, _RELEASED))

    def _setter(self, class_name: bytes, name: bytes) -> Callable[[int, Any], None]:
        write = self._setters[class_name][name]
        return self._guard(lambda oid, value: write(self._objects.get(oid, _RELEASED), value))

    def _want(self, oid: int, event: int, on: bool) -> None:
        obj = self._objects.get(oid)
        if obj is None:
            return  # released
        if not (_ALWAYS >> event) & 1:  # those cross anyway
            bit = 1 << int(event)
            obj.events_wanted = (obj.events_wanted | bit) if on else (obj.events_wanted & ~bit)
        if event == _BYTES_WRITTEN:
            obj.notify_bytes_written = bool(on)
        elif event == _ACCEPT_ERROR:
            obj.accept_error_handled = bool(on)

    def _hold_reading(self, oid: int, hold: bool) -> None:
        sock = self._objects.get(oid)
        if sock is None:
            return
        if hold:
            sock.pause_for_owner()
        else:
            sock.resume_for_owner()

    def _release(self, oids: Tuple[Any, ...]) -> None:
        """These Lua objects were collected (finalisers queue their ids).
        Each on its own: a failure with one must not keep the rest open."""
        for oid in oids:
            try:
                self._release_one(int(oid))
            except Exception:
                log.exception("internal error releasing object %r", oid)

    def _release_one(self, oid: int) -> None:
        # (membership tests before deleting, and isinstance before each call:
        # compiled, those are direct C calls where dict.pop and a method of
        # an object of unknown type are looked up by name)
        obj = self._objects.get(oid)
        if obj is None:
            return
        del self._objects[oid]
        # A collected socket still sends what it was given (a graceful close):
        # the host waits for it and counts it at close, as for any other.
        if isinstance(obj, TcpSocket):
            if obj in self._owed:
                del self._owed[obj]
            obj.release()
            if not obj.finished:
                self._flushing.add(obj)
        elif isinstance(obj, TcpServer):
            sockets = obj.pending_and_handed_out()
            if obj.listening:
                log.warning("a listening TcpServer (port %d) was garbage-collected; "
                            "keep a reference to it (e.g. in a global) to keep it serving", obj.port)
            obj.release()
            self._flushing.update(s for s in sockets if not s.finished)
        else:
            obj.release()

    # ------------------------------------------------------------ events up
    def _lua_memory(self) -> int:
        used: int = self.runtime.get_memory_used()
        return used

    def _lua_room(self) -> int:
        """Bytes that may still be pushed into Lua in this batch."""
        if self.max_memory is None:
            return 1 << 62
        return self.max_memory - self._lua_memory() - HEADROOM - self._batch_bytes

    def _take_data(self, oid: int, sock: TcpSocket) -> Optional[bytes]:
        """The socket's received bytes, as many as fit in Lua; the rest stay
        in Python (held back, reading paused) until Lua has room."""
        size = sock.bytes_available
        if not size:
            return None
        room = self._lua_room()
        if room < size:
            self.runtime.gccollect()
            room = self._lua_room()
        if room <= 0:
            self._owed[sock] = oid
            return None
        if room < size:
            self._owed[sock] = oid
            data = sock.read(room)
        else:
            if sock in self._owed:  # (compiled: a direct call; pop() is looked up by name)
                del self._owed[sock]
            data = sock.read()
        self._batch_bytes += len(data)
        return data

    def _on_event(self, obj: Reporter, event: int, a: Any, b: Any) -> None:
        oid: int = obj.tag
        if event == _READY_READ:
            # the bytes travel with the event (without a budget all of them:
            # nothing to weigh, nothing owed)
            sock = cast(TcpSocket, obj)  # compiled: checked, then called directly
            a = sock.read_pieces() if self.max_memory is None else self._take_data(oid, sock)
            if a.__class__ is list:
                # several pieces arrived: one event each, as received (a
                # join would copy every byte of a bulk stream once more)
                batch = self._batch
                for piece in a:
                    batch += (event, oid, piece)
                return
            if not a:
                if not b:
                    return
                a = b""  # handed over already (next_pending): announce only
        self._batch += (event, oid, a)

    def _defer(self, token: int) -> None:
        self._events.post_step(self, 0, token)

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        """A step this bridge posted: the _async callback ``gen`` is due."""
        self._queue_call(gen)

    def _queue_call(self, token: int) -> None:
        self._batch += (CALL_EVENT, token, None)

    def flush(self) -> None:
        """Send the events gathered in this batch to Lua."""
        batch = self._batch
        if batch and not self._closed:
            self._batch = []
            self._batch_bytes = 0
            step = 3 * _BATCH_EVENTS
            parts: Iterable[List[Any]] = (batch,) if len(batch) <= step else [
                batch[start:start + step] for start in range(0, len(batch), step)]
            for part in parts:
                # (saved and restored: defensive, as no handler can run the loop)
                outer, self._delivering = self._delivering, part
                try:
                    self._dispatch(*part)
                except self.LuaError as exc:  # e.g. out of memory between two handlers
                    self._report_error(f"event dispatch failed: {_lua_message(exc)}")
                    self.runtime.gccollect()
                finally:
                    self._delivering = outer
        if self.max_memory is not None and not self._closed:
            self._after_budgeted_batch()

    def _after_budgeted_batch(self) -> None:
        # Lua 5.1 and LuaJIT have no emergency collection: near the limit,
        # collect here so the garbage of handlers never blocks the next batch.
        if self._lua_memory() > cast(int, self.max_memory) * 3 // 4:  # only called with a limit
            self.runtime.gccollect()
        for sock in list(self._owed):
            # (pop, not del: a collection in an earlier pass may have
            # released the socket, and dropped it from _owed)
            if sock.listener is None or not sock.bytes_available:
                self._owed.pop(sock, None)
            elif self._lua_room() > 0:
                self._owed.pop(sock, None)
                self._on_event(sock, _READY_READ, None, None)
        self.budget.poll()
        if self._batch:
            self._events.post(lambda: None)  # an empty step: its batch flushes these

    def _lua_error(self, message: bytes) -> None:
        self._report_error(message.decode("utf-8", "replace"))

    # ------------------------------------------------------------ loop helpers
    def _lua_run_until(self, predicate: Any, timeout: float) -> Any:
        self._check_open()
        try:
            return self._run_until(predicate, float(timeout))
        except HostClosed:
            raise
        except Exception as exc:  # the predicate raised, or the loop cannot run here
            return None, _lua_message(exc).encode()

    def _lua_run_for(self, seconds: float) -> Any:
        self._check_open()
        try:
            self._run_for(float(seconds))
            return True
        except HostClosed:
            raise
        except Exception as exc:
            return None, _lua_message(exc).encode()

    # ------------------------------------------------------------ teardown
    def active(self) -> bool:
        """Is anything listening, connected, connecting or timing, or still
        sending what a collected socket was given?"""
        if self._flushing:
            self._flushing = {s for s in self._flushing if not s.finished}
            if self._flushing:
                return True
        for obj in self._objects.values():
            if isinstance(obj, TcpServer):
                if obj.listening:
                    return True
            elif isinstance(obj, Timer):
                if obj.active:
                    return True
            elif obj.state != SocketState.UNCONNECTED:
                return True
        return False

    def close_all(self) -> List[TcpSocket]:
        """Close every server, socket and timer; returns the sockets still
        closing (their written bytes flushing)."""
        self._closed = True
        self._shutdown()
        objects = list(self._objects.values())
        self._objects.clear()
        closing: List[TcpSocket] = [s for s in self._flushing if not s.finished]
        self._flushing = set()
        for obj in objects:
            if isinstance(obj, TcpServer):
                closing.extend(obj.pending_and_handed_out())
            elif isinstance(obj, TcpSocket):
                closing.append(obj)
            obj.release()
        return closing

    def close(self) -> None:
        """After close_all: every Lua function Python still holds now raises
        HostClosed when called, and nothing it does can open anything."""
        refuse = self._guard(lambda: None)  # raises HostClosed: the host is closed
        install = self.runtime.eval(b"function(sethook, refuse) sethook(function() refuse() end, 'c') end")
        install(self._debug[b"sethook"], refuse)


def _lua_message(exc: BaseException) -> str:
    first = exc.args[0] if getattr(exc, "args", None) else exc
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return text.split("\nstack traceback:", 1)[0] or type(exc).__name__
