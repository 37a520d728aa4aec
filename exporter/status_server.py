"""The plain-HTTP status server: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for the kubelet.

It runs on a thread of its own (:mod:`exporter.status_thread`), so everything it reads must be safe to read
from there. ``/healthz`` fails when the main event loop has stopped beating (:mod:`exporter.heartbeat`).
Readiness is the conjunction of named checks registered by the components (a report source is ready after
its first full sync), and ``/readyz`` says which check is not ready yet, and what each one has to report
(report APIs missing from the cluster, report files skipped as unreadable) even when it is ready.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8, ESCAPING_HEADER_TAG, UNDERSCORES
from prometheus_client.registry import Collector

from exporter.heartbeat import STALL_LIMIT, LoopHeartbeat
from exporter.reports.exposition import ReportExposition

ReadinessCheck = Callable[[], tuple[bool, str]]


@dataclass
class Readiness:
    """Named readiness checks; the process is ready once it has started and every check is ready.

    The status server answers from its own thread while the service is still starting, before every
    component has registered its check: until :attr:`started` is set, the process is not ready. Checks run
    on that thread: each must only read values that the main loop replaces whole (or copy collections in
    one C-level step, such as ``dict(d)``), never iterate live ones.
    """

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    started: bool = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def evaluate(self) -> tuple[bool, dict[str, str]]:
        """All checks' states, and whether all are ready."""
        if not self.started:
            return False, {"startup": "not ready: components are starting"}
        states: dict[str, str] = {}
        ready = True
        for name, check in list(self.checks.items()):
            ok, detail = check()
            ready = ready and ok
            states[name] = ("ok" if ok else "not ready") + (f": {detail}" if detail else "")
        return ready, states


def render_metrics(
    registry: CollectorRegistry, reports: ReportExposition | None, accept: str
) -> tuple[bytes, str]:
    """The exposition body and its content type for an ``Accept`` header, negotiated by prometheus_client.

    The instrumented metrics go through prometheus_client; the report families, most of a scrape at
    cluster scale, through their own renderer, appended before OpenMetrics' final ``# EOF``. The escaping
    schemes that rewrite even legal names (``dots``, ``values``) get prometheus_client for everything.
    """
    encoder, content_type = choose_encoder(accept)
    if reports is None:
        return encoder(registry), content_type
    if _escaping(content_type) not in _NAMES_KEPT:
        return encoder(_Joined(registry, reports.collector)), content_type
    if content_type.startswith("application/openmetrics-text"):
        eof = b"# EOF\n"
        body = encoder(registry)
        return body.removesuffix(eof) + reports.render(openmetrics=True) + eof, content_type
    return encoder(registry) + reports.render(openmetrics=False), content_type


# Escaping schemes under which legal names are written as they are, like the report renderer writes them.
_NAMES_KEPT = (UNDERSCORES, ALLOWUTF8)


def _escaping(content_type: str) -> str:
    """The name escaping choose_encoder picked: named in the content type unless it is the default."""
    for parameter in content_type.split(";"):
        key, _, value = parameter.strip().partition("=")
        if key == ESCAPING_HEADER_TAG:
            return value
    return UNDERSCORES


class _Joined(Collector):
    """Several collectors as one, for an encoder that takes a single registry."""

    def __init__(self, *parts: Collector) -> None:
        self._parts = parts

    def collect(self) -> Iterator[Metric]:
        for part in self._parts:
            yield from part.collect()


def build_status_app(
    registry: CollectorRegistry,
    readiness: Readiness,
    heartbeat: LoopHeartbeat,
    reports: ReportExposition | None = None,
) -> web.Application:
    """The aiohttp application behind the metrics address; ``reports`` adds the report families."""

    async def metrics(request: web.Request) -> web.Response:
        # Off this loop: at cluster scale a scrape takes tens of milliseconds, during which probes would wait.
        accept = request.headers.get("Accept", "")
        body, content_type = await asyncio.to_thread(render_metrics, registry, reports, accept)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(_request: web.Request) -> web.Response:
        silence = heartbeat.silence()
        if silence > STALL_LIMIT:
            return web.Response(
                status=503,
                text=f"the event loop has not run for {silence:.0f} s: the process is stuck; restart it "
                "and look in its log for what ran last\n",
            )
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        ready, states = readiness.evaluate()
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps({"ready": ready, "checks": states}, indent=2) + "\n",
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
