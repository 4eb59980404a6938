"""glibc malloc settings for a process whose Lua scripts move bulk data.

Each received chunk crosses the bridge as a new Lua string and comes back as
new Python bytes: buffers of a few hundred KiB, allocated and freed at a high
rate, and freed by Lua's collector in bursts. With glibc's defaults such
buffers keep going back to the kernel (mmap/munmap, heap trimming) and every
reuse page-faults: bench/RESULTS.md counts about 25,000 page faults per 256 MiB
echoed, against a few hundred for a plain asyncio echo, and bulk throughput
about 1.5x lower because of them. Keeping them in the heap removes both.

`luanet run` calls tune_malloc() because it owns its process. A program that
embeds a LuaHost decides for itself: call it, or set MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ in the environment.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 20   # blocks below this come from the heap, not mmap
TRIM_THRESHOLD = 16 << 20  # free memory kept at the top of the heap


def tune_malloc() -> bool:
    """Apply the settings above on glibc; False where they do not apply (other
    platforms or C libraries) or the environment already sets them."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False  # the user's choice wins
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; musl has none
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
