"""One memory budget per host: the Lua heap plus the bytes its sockets hold.

``LuaHost(max_memory=N)`` promises that what the host holds for its scripts
stays under N bytes, whatever peers send and however slowly they read. Two
kinds of memory count against it: the Lua heap (measured by the runtime, which
also refuses allocations past the limit) and the bytes sitting in Python on
the scripts' behalf (received and not yet handed to Lua, written and not yet
sent). Both the read path and the write path ask this one object.

Sockets that stopped reading because the budget was spent ``park`` here; the
host calls ``poll()`` after every batch of events, which resumes them once
there is room again.
"""

from __future__ import annotations

from typing import Callable, Final, Optional, Protocol, Set

# What one parked reader may take when it resumes: asyncio and uvloop both
# read up to 256 KiB per call, so that much room must be free before reading
# again, or the first read would overshoot the budget.
READ_QUANTUM: Final = 1 << 18


class Reader(Protocol):
    """What parks in a budget: a socket that stopped reading for lack of room."""

    def resume_for_budget(self) -> None:
        """Start reading again: the budget has room for one read."""
        ...


class MemoryBudget:
    """``limit`` bytes for the Lua heap (``lua_used()``) plus ``held``.

    Arguments:
        limit: the host's ``max_memory`` in bytes; None: no limit (every
            check passes, nothing parks).
        lua_used: returns the bytes the Lua heap uses now.
    """

    __slots__ = ("limit", "held", "_lua_used", "_parked")

    def __init__(self, limit: Optional[int] = None,
                 lua_used: Callable[[], int] = lambda: 0) -> None:
        self.limit = limit
        self.held = 0  # bytes in Python buffers on the scripts' behalf
        self._lua_used = lua_used
        self._parked: Set[Reader] = set()

    @property
    def limited(self) -> bool:
        """Whether there is a limit at all."""
        return self.limit is not None

    def room(self) -> int:
        """Bytes that may still be taken; very large when there is no limit."""
        if self.limit is None:
            return 1 << 62
        return self.limit - self._lua_used() - self.held

    def fits(self, n: int) -> bool:
        """Whether ``n`` more bytes may be taken now."""
        return self.limit is None or n <= self.room()

    def charge(self, n: int) -> None:
        """``n`` bytes are now held in Python on the scripts' behalf."""
        self.held += n

    def release(self, n: int) -> None:
        """``n`` held bytes are gone (handed to Lua, sent or dropped)."""
        self.held -= n

    def park(self, reader: Reader) -> None:
        """``reader`` paused for lack of room; resumed by poll()."""
        self._parked.add(reader)

    def unpark(self, reader: Reader) -> None:
        """``reader`` no longer waits (it closed or resumed on its own)."""
        self._parked.discard(reader)

    def poll(self) -> None:
        """Resume as many parked readers as there is room for one read each
        (their reads land later, so the room is divided up front)."""
        if not self._parked:
            return
        for _ in range(min(len(self._parked), self.room() // READ_QUANTUM)):
            self._parked.pop().resume_for_budget()
