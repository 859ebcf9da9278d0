"""Keeping freed memory for the next poll: glibc's malloc thresholds, set once per process.

Every poll allocates arrays of about the same sizes (columns, sparse entries, matrices) and
frees them before the next. By default glibc hands a large block out as a fresh mapping and
unmaps it when it is freed, and gives the top of its heap back to the system past a trim
threshold; either way the next poll's arrays land on new pages, and the kernel zeroes each
page on its first touch (a minor fault). Keeping the freed memory saves those faults and
does not raise peak RSS: what is kept is what the last poll used (measured: the section
"Measurements behind the code" of ``bench/README.md``).

``keep_freed_memory`` raises both thresholds (``mallopt``); ``Worker.run`` calls it unless
``STREAMFIT_KEEP_FREED_MEMORY=0``. Elsewhere than Linux with glibc it does nothing.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import platform
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: Blocks below this come from the heap, where freed memory is reused (glibc's default
#: starts at 128 KiB and adapts up to 32 MiB).
MMAP_THRESHOLD = 64 << 20
#: Free memory at the top of the heap is given back to the system only past this.
TRIM_THRESHOLD = 128 << 20

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Set glibc's mmap and trim thresholds for this process; False where they cannot be
    set (not Linux, not glibc, or ``mallopt`` refused)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
