"""Process-level settings that make CPU training faster without changing any result."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling for this setting on 64-bit
TRIM_THRESHOLD = 256 * 2**20


def tune_allocator() -> bool:
    """Keep freed activation buffers in the heap instead of handing them back to the kernel.

    Every Nature-CNN update allocates a few MB of float activations, and each replay batch a
    ~1 MB uint8 array. glibc serves blocks that large with fresh ``mmap`` pages and returns them
    on free, so every update pays ~1,000 page faults for memory it just released (400k faults
    in 400 updates, measured). Raising the mmap and trim thresholds lets those blocks be reused:
    ~5x fewer page faults and 5-10% faster updates on CPU. Returns whether it took effect
    (glibc only; elsewhere it is a no-op).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
