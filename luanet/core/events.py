"""The one place where core objects hand events to whoever listens.

Core objects never call their listener directly: they post to an EventQueue,
which runs everything posted so far from the event loop in one batch. That
gives the API's promise ("handlers run from the event loop, never inside the
call that caused them") in one place, keeps events in the order they happened,
and lets the Lua bridge send a whole batch across in one call.

Whatever is posted while a batch runs waits for the next batch. Multi-step
sequences rely on that: a socket reports REMOTE_HOST_CLOSED in one batch and
changes its state in the next, so handlers of the first see the old state.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, List, Optional, Tuple

log = logging.getLogger("luanet")


class EventQueue:
    """Runs what core objects post, in order, in one batch per loop turn.

    Arguments:
        loop: the asyncio loop the batches run on.
    """

    __slots__ = ("_loop", "_pending", "_scheduled", "after_batch", "_progress", "turn",
                 "make_socket_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._pending: List[Tuple[Callable[..., Any], Tuple[Any, ...]]] = []
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
        self._pending.append((fn, args))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run_batch)

    def _run_batch(self) -> None:
        self._scheduled = False
        self.turn += 1
        batch, self._pending = self._pending, []
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:  # one broken step must not starve the rest
                log.exception("event step %r failed", fn)
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
