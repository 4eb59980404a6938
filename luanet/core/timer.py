"""Timer: a QTimer-like timer on the event loop.

It fires through the EventQueue like every other event, so its handler runs
from the loop in a batch. A repeating timer is rescheduled from the time it
was due, not from when its handler ran, so it does not drift (as QTimer).
Stopping, restarting or changing a timer drops a firing already posted but not
yet delivered: each start is a new generation, and a posted firing of an
older generation is ignored.
"""

from __future__ import annotations

import asyncio
from typing import Final, Optional

from .constants import Event
from .events import EventQueue, Listener, Reporter

_TIMEOUT: Final = int(Event.TIMEOUT)


class Timer(Reporter):
    """A QTimer: fires ``Event.TIMEOUT`` to ``listener`` after ``interval``
    seconds, once (``single_shot``) or repeatedly, until stopped.

    Arguments:
        events: the queue its firings are posted to (and whose loop it uses).
        listener: called as ``listener(timer, Event.TIMEOUT, None, None)``.
    """

    __slots__ = ("_events", "_loop", "interval", "single_shot",
                 "_handle", "_due", "_generation")

    def __init__(self, events: EventQueue, listener: Optional[Listener] = None) -> None:
        self.listener = listener
        self.tag = None
        self.events_wanted = -1  # all
        self._events = events
        self._loop = events.loop
        self.interval = 0.0
        self.single_shot = False
        self._handle: Optional[asyncio.TimerHandle] = None
        self._due = 0.0
        self._generation = 0

    @property
    def active(self) -> bool:
        """Whether the timer is started (and will fire)."""
        return self._handle is not None

    @property
    def remaining(self) -> float:
        """Seconds until the timer fires, or -1 when it is stopped."""
        if self._handle is None:
            return -1.0
        return max(0.0, self._due - self._loop.time())

    def start(self, interval: Optional[float] = None) -> None:
        """(Re)start from now; ``interval`` replaces the current one."""
        if interval is not None:
            self.interval = float(interval)
        self.stop()
        self._schedule(self._loop.time() + self.interval)

    def stop(self) -> None:
        """Stop; a firing already posted but not delivered is dropped."""
        handle, self._handle = self._handle, None
        self._generation += 1
        if handle is not None:
            handle.cancel()

    def release(self) -> None:
        """The owner is gone: stop, and report nothing more."""
        self.stop()
        self.listener = None

    def _schedule(self, due: float) -> None:
        self._due = due
        self._handle = self._loop.call_at(due, self._due_now, self._generation)

    def _due_now(self, generation: int) -> None:
        if generation != self._generation:
            return
        if self.single_shot:
            self._handle = None
        else:
            # From the due time, not from now: no drift. A handler slower than
            # the interval makes the next firing come at once, not pile up.
            now = self._loop.time()
            due = self._due + self.interval
            self._schedule(due if due > now else now)
        self._events.post_step(self, 0, self._generation)

    def _run_step(self, step: int, gen: int, x: object, a: object, b: object) -> None:
        """A step this timer posted: a firing, under generation ``gen``."""
        self._fire(gen)

    def _fire(self, generation: int) -> None:
        if generation != self._generation:
            return  # stopped or restarted meanwhile: this firing is void
        self._tell(_TIMEOUT, None, None)

    def __repr__(self) -> str:
        if self._handle is None:
            return f"Timer(stopped, interval {self.interval:g} s)"
        kind = "single-shot" if self.single_shot else "repeating"
        return f"Timer(active, {kind}, interval {self.interval:g} s, {self.remaining:.3f} s left)"
