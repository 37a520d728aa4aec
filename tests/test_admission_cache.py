"""The single-flight TTL cache: one computation per key, expiry, negative TTL, size bound."""

from __future__ import annotations

import asyncio
import gc

import pytest
from prometheus_client import CollectorRegistry, Counter

from exporter.admission.cache import SingleFlightCache
from exporter.admission.children import MetricChildren


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_lookups_share_one_computation() -> None:
    calls = 0
    release = asyncio.Event()

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "v"

    cache: SingleFlightCache[str] = SingleFlightCache(ttl=10, max_entries=10)
    waiters = [asyncio.ensure_future(cache.get_or_compute("k", compute)) for _ in range(50)]
    release.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert sorted(how for _, how in results) == ["miss"] + ["shared"] * 49
    assert await cache.get_or_compute("k", compute) == ("v", "hit")


async def test_abandoned_waiter_does_not_cancel_the_computation() -> None:
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "v"

    cache: SingleFlightCache[str] = SingleFlightCache(ttl=10, max_entries=10)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cache.get_or_compute("k", compute), 0.01)
    release.set()
    assert await cache.get_or_compute("k", compute) in {("v", "shared"), ("v", "hit")}
    assert cache.peek("k") == "v"


async def test_ttl_negative_ttl_and_uncached_values() -> None:
    clock = Clock()
    sizes: list[int] = []
    cache: SingleFlightCache[str] = SingleFlightCache(
        ttl=100,
        negative_ttl=10,
        max_entries=10,
        is_negative=lambda value: value.startswith("no"),
        should_cache=lambda value: value != "error",
        clock=clock,
        on_size_change=sizes.append,
    )

    async def value(text: str) -> str:
        return text

    await cache.get_or_compute("good", lambda: value("yes"))
    await cache.get_or_compute("bad", lambda: value("no"))
    await cache.get_or_compute("err", lambda: value("error"))
    assert len(cache) == 2
    clock.now = 11
    assert cache.peek("bad") is None
    assert cache.peek("good") == "yes"
    clock.now = 101
    assert cache.peek("good") is None
    assert sizes[-1] == 0


async def test_size_bound_evicts_least_recently_used() -> None:
    cache: SingleFlightCache[int] = SingleFlightCache(ttl=100, max_entries=2)

    async def value(number: int) -> int:
        return number

    await cache.get_or_compute("a", lambda: value(1))
    await cache.get_or_compute("b", lambda: value(2))
    assert cache.peek("a") == 1  # a is now the most recently used
    await cache.get_or_compute("c", lambda: value(3))
    assert cache.peek("b") is None
    assert (cache.peek("a"), cache.peek("c"), len(cache)) == (1, 3, 2)


async def test_failed_computation_is_not_cached_and_reaches_every_waiter() -> None:
    cache: SingleFlightCache[int] = SingleFlightCache(ttl=100, max_entries=2)

    async def boom() -> int:
        raise RuntimeError("registry down")

    with pytest.raises(RuntimeError, match="registry down"):
        await cache.get_or_compute("k", boom)
    assert cache.peek("k") is None


def test_rejects_unbounded_settings() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        SingleFlightCache(ttl=1, max_entries=0)


def test_metric_children_are_memoised_up_to_a_bound() -> None:
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a"], registry=registry)
    children = MetricChildren(max_entries=1)
    assert children.get(counter, "x") is children.get(counter, "x")
    children.get(counter, "y").inc()  # beyond the bound: still the right child, just not memoised
    children.get(counter, "y").inc()
    assert registry.get_sample_value("c_total", {"a": "y"}) == 2


async def test_a_computation_failing_after_every_caller_gave_up_logs_no_traceback() -> None:
    """asyncio logs "Task exception was never retrieved" for a failed task nobody awaited; under attack
    that was one traceback per lookup. The cache marks the failure as seen."""
    cache: SingleFlightCache[str] = SingleFlightCache(ttl=60, max_entries=10)
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        raise OSError("registry unreachable")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(cache.get_or_compute("k", compute), 0.01)
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    task, _how = cache.lookup("k", compute)
    assert isinstance(task, asyncio.Task)
    release.set()
    await asyncio.wait([task])
    del task
    gc.collect()
    assert not reported
