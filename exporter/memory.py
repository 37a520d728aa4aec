"""Keeping the process's memory flat after bursts of large allocations (glibc only; a no-op elsewhere).

glibc serves allocations above a threshold (128 KiB at start) with mmap, returned to the system on free,
but raises that threshold to the size of any such block freed. After a burst of large buffers (a TLS
connection's 256 KiB read buffer, a 3 MiB request body), later ones come from the heap, whose freed space
the process keeps: 500 connections opened and closed left 140 MB more resident for good. Fixing the
threshold keeps large blocks on mmap, so memory goes back when the burst is over.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024


def keep_large_allocations_returnable() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; True when applied (False on other C libraries)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("fixed the mmap threshold of malloc", extra={"bytes": MMAP_THRESHOLD, "applied": applied})
    return applied
