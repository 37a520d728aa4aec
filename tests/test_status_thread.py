"""The status server answers from its own thread however busy the main loop is, and its /healthz tells a
busy main loop (healthy) from one that stopped running (unhealthy), by the loop's heartbeat."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.heartbeat import INTERVAL, STALL_LIMIT, LoopHeartbeat
from exporter.metrics import ServiceMetrics
from exporter.status_server import Readiness, build_status_app
from exporter.status_thread import ThreadedServer


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _lag_sample(registry: CollectorRegistry, name: str, le: str | None = None) -> float:
    labels = {"le": le} if le is not None else {}
    value = registry.get_sample_value(f"trustwatch_event_loop_lag_seconds_{name}", labels)
    assert value is not None
    return value


def test_the_heartbeat_records_how_long_the_loop_was_held() -> None:
    metrics = ServiceMetrics()
    heartbeat = LoopHeartbeat(metrics.event_loop_lag)

    async def scenario() -> float:
        beating = asyncio.create_task(heartbeat.run())
        await asyncio.sleep(INTERVAL / 2)
        time.sleep(0.6)  # noqa: ASYNC251 - holds the loop, as a long computation would
        held_silence = heartbeat.silence()
        for _ in range(100):  # the overdue beat runs within the next loop iterations
            if _lag_sample(metrics.registry, "count") >= 1:
                break
            await asyncio.sleep(0)
        beating.cancel()
        return held_silence

    silence_while_held = asyncio.run(scenario())
    assert silence_while_held >= 0.6
    # The first beat came at least 0.475 s late (0.6 s held, less the half interval already waited).
    assert _lag_sample(metrics.registry, "bucket", "0.25") < _lag_sample(metrics.registry, "count")
    assert heartbeat.silence() < silence_while_held


def test_healthz_answers_from_its_own_thread_while_the_main_loop_is_held() -> None:
    metrics = ServiceMetrics()
    clock = [1000.0]
    heartbeat = LoopHeartbeat(metrics.event_loop_lag, clock=lambda: clock[0])
    readiness = Readiness()
    readiness.add("policies", lambda: (True, "1 loaded"))
    server = ThreadedServer("test-status")

    async def scenario() -> list[tuple[int, str]]:
        port = await server.start(
            build_status_app(metrics.registry, readiness, heartbeat), "127.0.0.1", 0, shutdown_timeout=1
        )
        base = f"http://127.0.0.1:{port}"
        # Blocking calls made on the main loop itself: served on the main loop, they could never be answered.
        answers = [_get(base + "/readyz")]  # listening before the service registered every check
        readiness.started = True
        answers += [_get(base + "/healthz"), _get(base + "/readyz"), _get(base + "/metrics")]
        clock[0] += STALL_LIMIT + 1  # the main loop has not beaten for longer than the stall limit
        answers.append(_get(base + "/healthz"))
        await server.cleanup()
        return answers

    starting, healthy, ready, scraped, stalled = asyncio.run(scenario())
    assert starting[0] == 503 and '"startup": "not ready: components are starting"' in starting[1]
    assert healthy == (200, "ok\n")
    assert ready[0] == 200 and '"policies": "ok: 1 loaded"' in ready[1]
    assert scraped[0] == 200 and "trustwatch_event_loop_lag_seconds_bucket" in scraped[1]
    assert stalled[0] == 503
    assert f"has not run for {STALL_LIMIT + 1:.0f} s" in stalled[1] and "restart" in stalled[1]


def test_a_status_server_that_cannot_listen_raises_and_leaves_no_thread() -> None:
    first, second = ThreadedServer("test-first"), ThreadedServer("test-second")

    def app() -> web.Application:
        return build_status_app(
            CollectorRegistry(), Readiness(), LoopHeartbeat(ServiceMetrics().event_loop_lag)
        )

    async def scenario() -> BaseException | None:
        port = await first.start(app(), "127.0.0.1", 0, shutdown_timeout=1)
        try:
            await second.start(app(), "127.0.0.1", port, shutdown_timeout=1)
        except OSError as error:
            return error
        finally:
            await first.cleanup()
        return None

    error = asyncio.run(scenario())
    assert isinstance(error, OSError)
    assert not {"test-first", "test-second"} & {thread.name for thread in threading.enumerate()}
