"""Scripts' ``print``: written by a thread, so a stdout that does not keep up
(a pipe nobody reads) never blocks the event loop.

What waits to be written is bounded (``LIMIT`` bytes); beyond it, output is
dropped and, once the reader catches up, one line says how much was dropped.
At exit whatever is still queued gets ``EXIT_FLUSH_SECONDS`` to go out.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections import deque
from typing import Deque, Optional

LIMIT = 1 << 20
EXIT_FLUSH_SECONDS = 2.0


class Output:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._queue: Deque[bytes] = deque()
        self._queued = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._writing = False
        self._thread: Optional[threading.Thread] = None

    def write(self, data: bytes) -> None:
        stream = sys.stdout
        if getattr(stream, "buffer", None) is None:
            # a text-only stream (a test runner's capture): it cannot block
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
            return
        with self._lock:
            if self._queued + len(data) > self.limit:
                self._dropped += len(data)
                return
            self._queue.append(data)
            self._queued += len(data)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="luanet-stdout", daemon=True)
                self._thread.start()
                atexit.register(self.flush, EXIT_FLUSH_SECONDS)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._dropped:
                    self._writing = False
                    self._idle.notify_all()
                    self._ready.wait()
                self._writing = True
                parts = list(self._queue)
                self._queue.clear()
                self._queued = 0
                dropped, self._dropped = self._dropped, 0
            data = b"".join(parts)
            if dropped:
                data += f"luanet: {dropped} bytes of output dropped (stdout did not keep up)\n".encode()
            try:
                out = sys.stdout
                out.flush()
                out.buffer.write(data)
                out.buffer.flush()
            except (OSError, ValueError):
                pass  # stdout closed or broken: nothing more can be shown

    def flush(self, timeout: float = EXIT_FLUSH_SECONDS) -> bool:
        """Wait until everything queued is written (at most timeout seconds)."""
        with self._lock:
            if self._thread is None:
                return True
            return self._idle.wait_for(lambda: not self._queue and not self._writing, timeout)


stdout = Output()
