"""The one place where core objects hand events to whoever listens.

Core objects never call their listener directly: they post to an EventQueue,
which runs everything posted so far from the event loop in one batch. That
gives the API's promise ("handlers run from the event loop, never inside the
call that caused them") in one place, keeps events in the order they happened,
and lets the Lua bridge send a whole batch across in one call.

Whatever is posted while a batch runs waits for the next batch. Multi-step
sequences rely on that: a socket reports REMOTE_HOST_CLOSED in one batch and
changes its state in the next, so handlers of the first see the old state.

A step is posted as its object and a step code with up to four values, not as
a bound method: compiled, the queue calls the object's ``_run_step`` directly,
where a bound method and its arguments cost a method object, two tuples and a
Python-level call per step (about 1k instructions; a connection takes eight).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Final, List, Optional, Tuple, cast

log = logging.getLogger("luanet")


class Stepper:
    """What posts steps to an EventQueue: sockets, servers, timers, the bridge.
    Each says in ``_run_step`` what its step codes mean."""

    __slots__ = ()

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        """Run a step this object posted, with the values posted with it."""
        raise NotImplementedError


class _Call(Stepper):
    """A plain call posted with EventQueue.post."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., Any], args: Tuple[Any, ...]):
        self.fn = fn
        self.args = args

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        self.fn(*self.args)

    def __repr__(self) -> str:
        return repr(self.fn)


# What core objects report to: listener(obj, event, a, b).
Listener = Callable[[Any, int, Any, Any], None]


class Reporter(Stepper):
    """A core object that reports events (TcpSocket, TcpServer, Timer):
    ``listener`` receives them (None: nobody), those whose bit
    (``1 << event``) is set in ``events_wanted`` (all by default; checked as
    each event is due, so a change applies to events already posted);
    ``tag`` is the owner's to set (the bridge keeps its id there), never read
    by core. Here, not in each class, so that an owner holding any of them
    reads them directly."""

    __slots__ = ("listener", "tag", "events_wanted")

    listener: Optional[Listener]
    tag: Any
    events_wanted: int

    def _tell(self, event: int, a: object, b: object) -> None:
        """Hand ``event`` to the listener, if there is one and it wants it."""
        listener = self.listener
        if listener is not None and (self.events_wanted >> event) & 1:
            listener(self, event, a, b)


# values per posted step in EventQueue._pending: target, step, gen, x, a, b
_STEP_SIZE: Final = 6


class EventQueue:
    """Runs what core objects post, in order, in one batch per loop turn.

    Arguments:
        loop: the asyncio loop the batches run on.
    """

    __slots__ = ("_loop", "_pending", "_scheduled", "after_batch", "_progress", "turn",
                 "make_socket_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        # flat, _STEP_SIZE values a step: no tuple per step
        self._pending: List[object] = []
        self._scheduled = False
        # Called once at the end of every batch (the bridge flushes to Lua there).
        self.after_batch: Optional[Callable[[], None]] = None
        self._progress: Optional[asyncio.Future[None]] = None
        # Counts loop turns as the script sees them: each batch, and each
        # time the owner lets the loop run (new_turn). Calls made within one
        # count happened "in the same turn": sockets use it for Qt's
        # write-then-disconnect.
        self.turn = 0
        # asyncio's selector loops make a transport for a connected socket
        # with this (what their own servers use, without task or waiter);
        # None on uvloop, which takes its public API. Looked up
        # once: a lookup that fails builds an AttributeError every time.
        self.make_socket_transport: Optional[Callable[..., Any]] = getattr(
            loop, "_make_socket_transport", None)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this queue runs on."""
        return self._loop

    def new_turn(self) -> None:
        """The owner lets the loop run: what scripts did before is an earlier turn."""
        self.turn += 1

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the next batch (never inside this call)."""
        self.post_step(_Call(fn, args), 0)

    def post_step(self, target: Stepper, step: int, gen: int = 0, x: object = None,
                  a: object = None, b: object = None) -> None:
        """Run ``target._run_step(step, gen, x, a, b)`` in the next batch."""
        pending = self._pending
        pending.append(target)
        pending.append(step)
        pending.append(gen)
        pending.append(x)
        pending.append(a)
        pending.append(b)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run_batch)

    def _run_batch(self) -> None:
        self._scheduled = False
        self.turn += 1
        batch, self._pending = self._pending, []
        for i in range(0, len(batch), _STEP_SIZE):
            target = cast(Stepper, batch[i])
            try:
                target._run_step(cast(int, batch[i + 1]), cast(int, batch[i + 2]),
                                batch[i + 3], batch[i + 4], batch[i + 5])
            except Exception:  # one broken step must not starve the rest
                log.exception("event step %d of %r failed", batch[i + 1], target)
        if self.after_batch is not None:
            try:
                self.after_batch()
            except Exception:
                log.exception("event listener failed")
        progress = self._progress
        if progress is not None:
            self._progress = None
            if not progress.done():
                progress.set_result(None)

    async def wait_batch(self, timeout: float) -> None:
        """Wait until the next batch has run, or timeout seconds pass."""
        if self._progress is None:
            self._progress = self._loop.create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._progress), timeout)
        except asyncio.TimeoutError:
            pass
