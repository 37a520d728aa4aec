"""Giving freed heap memory back to the system: when the trimmer trims (a rise of free bytes, not their
level), its thread, and on glibc that a trim really returns the pages freed under a live block."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from exporter.memory import HeapTrimmer, free_heap_bytes

MB = 1024 * 1024


class FakeHeap:
    """Free bytes a test sets, and the trims asked for."""

    def __init__(self, free: int | None) -> None:
        self.free = free
        self.trims = 0
        self.trimmed = threading.Event()

    def measure(self) -> int | None:
        return self.free

    def trim(self) -> bool:
        self.trims += 1
        self.trimmed.set()
        return True


def trimmer(heap: FakeHeap, threshold: int = 4 * MB) -> HeapTrimmer:
    return HeapTrimmer(interval=0.01, threshold=threshold, measure=heap.measure, trim=heap.trim)


def test_trims_once_enough_was_freed_and_not_again_until_more_is() -> None:
    heap = FakeHeap(2 * MB)
    trim = trimmer(heap)
    assert not trim.check()  # the first look only records the level
    heap.free = 5 * MB
    assert not trim.check()  # 3 MB freed: not worth it yet
    heap.free = 7 * MB
    assert trim.check() and heap.trims == 1
    # Trimmed bytes still count as free: the same level is not trimmed again and again.
    assert not trim.check() and not trim.check()
    heap.free = 3 * MB  # reused by new allocations...
    assert not trim.check()
    heap.free = 8 * MB  # ...and freed again: resident once more
    assert trim.check() and heap.trims == 2


def test_nothing_happens_where_the_heap_cannot_be_measured() -> None:
    heap = FakeHeap(None)
    trim = trimmer(heap)
    assert not trim.check()
    assert not trim.start()
    trim.stop()
    assert heap.trims == 0


def test_the_thread_trims_and_stops() -> None:
    heap = FakeHeap(1 * MB)
    trim = trimmer(heap)
    assert trim.start()
    assert not trim.start()  # one thread only
    heap.free = 10 * MB
    try:
        assert heap.trimmed.wait(10), "no trim within 10 s"
    finally:
        trim.stop()
    trims = heap.trims
    heap.free = 100 * MB
    assert not any(t.name == "trustwatch-heap-trim" for t in threading.enumerate())
    assert heap.trims == trims


GLIBC_TRIM = """
    import gc
    from exporter.memory import free_heap_bytes, trim_heap

    def rss():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))

    # 600 blocks of 100 KiB (under the mmap threshold: they come from the heap), every other one freed:
    # the live ones above pin the freed ones, which glibc alone keeps.
    blocks = [b"x" * (100 * 1024) for _ in range(600)]
    before_free = free_heap_bytes()
    del blocks[::2]
    gc.collect()
    freed = free_heap_bytes() - before_free
    before = rss()
    assert trim_heap()
    print(freed, before - rss())
"""


@pytest.mark.skipif(free_heap_bytes() is None, reason="needs glibc 2.33 or later")
def test_a_trim_returns_memory_freed_under_live_blocks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(GLIBC_TRIM)], capture_output=True, text=True, check=True
    )
    freed, returned = map(int, done.stdout.split())
    assert freed >= 25 * MB  # 300 x 100 KiB freed, in the heap's free lists
    assert returned >= freed // 2  # and most of it left the process's resident memory
