"""The HTTP layer alone: an engine crash still yields an AdmissionReview; readiness follows policies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.admission.cache import Lookup
from exporter.admission.engine import AdmissionEngine
from exporter.admission.server import build_webhook_app
from exporter.admission.verifier import ImageOutcome
from exporter.metrics import ServiceMetrics
from exporter.policy.model import KyvernoPolicy
from tests.support.admission import ByImageVerifier, review_body, workload


class CrashingVerifier(ByImageVerifier):
    """Never asked to verify: reading the policies crashes first."""

    async def answer(self, image: str) -> tuple[ImageOutcome, Lookup]:
        raise AssertionError("not reached")


def crashing_policies() -> list[KyvernoPolicy]:
    raise RuntimeError("policy store exploded")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, ServiceMetrics, list[bool]]]:
    metrics = ServiceMetrics(CollectorRegistry())
    engine = AdmissionEngine(crashing_policies, CrashingVerifier(), metrics)
    ready = [False]
    runner = web.AppRunner(build_webhook_app(engine, metrics, ready=lambda: ready[0]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", metrics, ready
    finally:
        await runner.cleanup()


async def test_an_engine_crash_is_a_denial_without_internals_not_a_500(
    server: tuple[str, ServiceMetrics, list[bool]],
) -> None:
    url, metrics, _ready = server
    async with aiohttp.ClientSession() as session:
        body = review_body(workload("Pod", "p", "prod", "user/test:signed"))
        async with session.post(url + "/mutate", data=body) as response:
            assert response.status == 200
            answer = (await response.json())["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 500
    assert "internal error" in answer["status"]["message"]
    assert "exploded" not in answer["status"]["message"]
    labels = {"webhook": "mutate", "operation": "CREATE", "kind": "Pod", "decision": "error"}
    assert metrics.registry.get_sample_value("trustwatch_admission_requests_total", labels) == 1


async def test_readiness_follows_the_ready_callback(server: tuple[str, ServiceMetrics, list[bool]]) -> None:
    url, _metrics, ready = server
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/readyz") as response:
            assert response.status == 503
        ready[0] = True
        async with session.get(url + "/readyz") as response:
            assert response.status == 200
        async with session.get(url + "/mutate") as response:
            assert response.status == 405
