"""The plain-HTTP status server: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for the kubelet.

Readiness is the conjunction of named checks registered by the components (the watcher is ready after its
first full sync, the webhook once policies are loaded), and ``/readyz`` says which check is not ready yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

ReadinessCheck = Callable[[], tuple[bool, str]]


@dataclass
class Readiness:
    """Named readiness checks; the process is ready when every one of them is."""

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def evaluate(self) -> tuple[bool, dict[str, str]]:
        """All checks' states, and whether all are ready."""
        states: dict[str, str] = {}
        ready = True
        for name, check in self.checks.items():
            ok, detail = check()
            ready = ready and ok
            states[name] = "ok" if ok else f"not ready: {detail}"
        return ready, states


def build_status_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    """The aiohttp application behind the metrics address."""

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(_request: web.Request) -> web.Response:
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
