"""Keeping the process's memory flat after bursts of large or hostile requests (glibc; a no-op elsewhere).

Where memory stays after an attack (``trustwatch serve`` after the 3 000 hostile requests of
bench/hostile.py, against a run of valid reviews; tracemalloc snapshots, ``sys._debugmallocstats()``,
``malloc_info``): Python objects still referenced grow by about 3.5 MB, the bounded caches (image
references, wildcard matches) filling up; nothing per request is kept. The rest is what allocators keep:

* glibc serves allocations above a threshold (128 KiB at start) with mmap, returned to the system on free,
  but raises that threshold to the size of any such block freed. After a burst of large buffers (a TLS
  connection's 256 KiB read buffer, a 3 MiB request body), later ones come from the heap, whose freed
  space the process keeps: 500 connections opened and closed left 140 MB more resident for good.
  :func:`keep_large_allocations_returnable` fixes the threshold, so large blocks (bodies, their decoded
  text) stay on mmap and go back when freed.
* Smaller blocks (TLS records, body chunks read from sockets, OpenSSL state) come from the heap, and glibc
  gives back on its own only free memory at the heap's very top: one live block above pins everything
  freed below it. After the attack the main heap held 17 MB free of 34 MB. ``malloc_trim(0)`` returns
  the free pages anywhere in the heap (about 15 MB there); :class:`HeapTrimmer` calls it from a thread
  of its own (no GIL needed, glibc's arena locks held briefly) once enough was freed since the last trim.
* Python's allocator (pymalloc) keeps each 1 MiB arena while any object in it lives, and nothing can trim
  those. Floods of small objects freed among longer-lived ones leave arenas mostly empty but held: 430
  bodies of up to 40 000 containers left 57 more arenas than valid reviews (139 MB resident against 81).
  The cure is not to build them: :func:`exporter.jsondoc.refuse_value_floods` refuses such bodies before
  decoding (86 MB after the same requests). What remains (about 13 arenas after the full attack) is
  spread over many request kinds.

Evaluated and not kept: capping glibc's per-thread arenas (``M_ARENA_MAX=1``): the parse, DNS and
executor threads' arenas held about 130 KiB each (large blocks are mmap'd anyway), and the attack ended
at 97 MB with the cap against 96 MB without. A garbage collection before trimming freed thousands of
objects (exception tracebacks of failed registry lookups) but not one arena. ``PYTHONMALLOC=malloc``
(every object from glibc, so trimming reaches them): 102 MB after the attack against 83 MB valid, worse.

Together (bench/hostile.py --requests 3000 --quiet 30): 97 MB after the attack and the quiet period
against 81 MB for valid traffic, 1.19 times (1.52 before).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024
# Free heap bytes worth giving back, and how often they are looked at.
TRIM_THRESHOLD = 4 * 1024 * 1024
TRIM_INTERVAL = 2.0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def keep_large_allocations_returnable() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; True when applied (False on other C libraries)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("fixed the mmap threshold of malloc", extra={"bytes": MMAP_THRESHOLD, "applied": applied})
    return applied


class _MallInfo2(ctypes.Structure):
    """``struct mallinfo2`` (glibc 2.33 and later): sizes in bytes, summed over every arena."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def free_heap_bytes() -> int | None:
    """Bytes glibc's heaps hold free (``mallinfo2().fordblks``), or None without glibc 2.33+."""
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is None:
        return None
    mallinfo2.argtypes = []
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def trim_heap() -> bool:
    """Give the heaps' free pages back to the system (``malloc_trim(0)``); False when not glibc."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True


class HeapTrimmer:
    """Every ``interval`` seconds, on a daemon thread, trims the heap when ``threshold`` bytes or more were
    freed since it last held the least free memory (or was last trimmed).

    Trimming leaves the freed bytes counted as free (only their pages go back), so the trigger is the rise
    of free bytes, not their level: an idle process is not trimmed over and over. ``measure`` and ``trim``
    default to glibc's; :meth:`start` does nothing where the heap cannot be measured.
    """

    def __init__(
        self,
        interval: float = TRIM_INTERVAL,
        threshold: int = TRIM_THRESHOLD,
        *,
        measure: Callable[[], int | None] = free_heap_bytes,
        trim: Callable[[], bool] = trim_heap,
    ) -> None:
        self.interval = interval
        self.threshold = threshold
        self._measure = measure
        self._trim = trim
        self._low: int | None = None  # the least free memory seen since the last trim
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Trim now if enough was freed; True when it did."""
        free = self._measure()
        if free is None:
            return False
        if self._low is None or free < self._low:
            self._low = free
        if free - self._low < self.threshold:
            return False
        self._trim()
        self._low = free
        log.debug("gave free heap memory back to the system", extra={"free_bytes": free})
        return True

    def start(self) -> bool:
        """Start checking; False (and nothing started) where the heap cannot be measured."""
        free = self._measure()
        if self._thread is not None or free is None:
            return False
        self._low = free
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="trustwatch-heap-trim", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop checking and wait for the thread (at most one trim)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.check()
