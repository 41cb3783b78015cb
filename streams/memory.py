"""Freed memory kept for reuse, not handed back to the kernel.

On this kind of machine (a VM), a page the process touches for the first time costs ~2 µs to
fault in: ~0.5 ms per MB. A labelled stage grows its key tables and segment columns and writes
megabytes of state records per checkpoint (the batch scan's token arrays, tens of MB, are kept
by ``schemas.batch_scan`` itself). glibc serves large blocks with ``mmap`` and returns freed
memory at the top of its heap to the kernel, so much of that is fresh pages again and again.
With large blocks served from the heap and up to ``keep_mb`` of free memory kept, they reuse
pages the process already has. The price is a resident size that stays up to ``keep_mb``
above what is live after a peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt's parameters (malloc.h)
_LARGE = 64 << 20  # blocks up to this size come from the heap, and the heap grows by this much at once


def keep_freed_memory(keep_mb: int) -> bool:
    """Tune glibc's allocator for the whole process (see the module doc); 0 leaves its defaults.
    False where it does not apply (not glibc) or glibc refused a value."""
    if keep_mb <= 0 or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    keep = keep_mb << 20
    large = min(keep, _LARGE)
    settings = ((_M_MMAP_THRESHOLD, large), (_M_TOP_PAD, large), (_M_TRIM_THRESHOLD, keep))
    return all(libc.mallopt(option, value) == 1 for option, value in settings)
