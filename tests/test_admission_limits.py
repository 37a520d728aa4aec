"""Hostile admission input, one bound at a time: parsing limits and typed fields, compressed and slow
bodies, a decision always before the deadline, each image verified once, bounded registries and labels,
connection timeouts (the connection cap: tests/test_listen.py)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from exporter.admission import server as server_module
from exporter.admission.cache import Lookup
from exporter.admission.engine import (
    MAX_NAMESPACE_LABELS,
    MAX_REGISTRIES_PER_REQUEST,
    AdmissionConfig,
    AdmissionEngine,
)
from exporter.admission.review import MAX_CONTAINERS, ReviewError, parse_review
from exporter.admission.server import build_webhook_app
from exporter.admission.verifier import ImageOutcome
from exporter.listen import ConnectionLimits, start_site
from exporter.metrics import ServiceMetrics
from exporter.registry.dns import BoundedResolver
from tests.support.admission import ByImageVerifier, review_body, walkthrough_policy, workload
from tests.support.registry import generate_signing_key, public_pem

POLICIES = walkthrough_policy(public_pem(generate_signing_key()), **{"docker.io/user/test*": "*"})


def body_with(change: Callable[[dict[str, Any]], None]) -> bytes:
    document = json.loads(review_body(workload("Pod", "p", "prod", "user/test:signed")))
    change(document)
    return json.dumps(document).encode()


# --- parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [101, 1_000, 1_000_000])
def test_deep_nesting_is_a_review_error(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = review_body(workload("Pod", "p", "prod", "a:b")).replace(
        b'"dryRun": false', b'"x": ' + nested.encode()
    )
    with pytest.raises(ReviewError, match="nested"):
        parse_review(body)


def set_path(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node: Any = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (set_path(("request", "object", "metadata"), "x"), r"request\.object\.metadata must be an object"),
        (set_path(("request", "object", "metadata"), [1]), r"request\.object\.metadata must be an object"),
        (set_path(("request", "name"), {"a": 1}), r"request\.name must be a str"),
        (set_path(("request", "namespace"), "pro\x00d"), r"request\.namespace .* is not a namespace name"),
        (set_path(("request", "namespace"), "x" * 300), r"request\.namespace .* is not a namespace name"),
        (set_path(("request", "kind", "kind"), "Pod\ud800"), "unpaired surrogate"),
        (set_path(("request", "kind", "kind"), "Pod Disruption"), r"request\.kind\.kind .* is not a kind"),
        (set_path(("request", "object", "metadata", "labels"), {"a": 1}), r"labels\['a'\] must be a str"),
        (set_path(("request", "object", "spec", "containers"), {"a": 1}), r"spec\.containers must be a list"),
        (
            set_path(("request", "object", "spec", "containers", 0), "img"),
            r"containers\[0\] must be an object",
        ),
        (set_path(("request", "object", "spec", "containers", 0, "image"), 5), r"image must be a str"),
        (set_path(("request", "object", "spec", "containers", 0, "image"), "a" * 2000), "longer than 1024"),
        (set_path(("request", "object", "spec"), []), r"request\.object\.spec must be an object"),
        (set_path(("request", "uid"), 7), r"request\.uid must be a str"),
    ],
)
def test_wrong_types_are_named(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    with pytest.raises(ReviewError, match=problem):
        parse_review(body_with(change))


def test_containers_are_bounded() -> None:
    containers = [{"name": f"c{i}", "image": "a:b"} for i in range(MAX_CONTAINERS + 1)]
    with pytest.raises(ReviewError, match=f"more than {MAX_CONTAINERS} containers"):
        parse_review(body_with(set_path(("request", "object", "spec", "containers"), containers)))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b'{"kind": "AdmissionReview", "n": ' + b"9" * 5000 + b"}", "not JSON", id="5000 digits"),
        pytest.param(
            review_body(workload("Pod", "p", "prod", "a:b")).decode().encode("utf-16"),
            "not UTF-8",
            id="UTF-16",
        ),
        pytest.param(
            review_body(workload("Pod", "p", "prod", "a:b")).replace(
                b'"dryRun": false', b'"x": [' + b"0," * 1_000_000 + b"0]"
            ),
            "more than 50000 values",
            id="2 MB array",
        ),
        pytest.param(b"[" + b"0," * 1_000_000 + b"0]", "not a JSON object", id="top-level array"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="BOM"),
    ],
)
def test_hostile_bodies_are_review_errors(body: bytes, problem: str) -> None:
    with pytest.raises(ReviewError, match=problem):
        parse_review(body)


# --- the HTTP layer -----------------------------------------------------------------------------------


class CountingVerifier(ByImageVerifier):
    """Answers every image ``pass`` after ``delay`` seconds, recording the verifications started."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.images: list[str] = []

    async def answer(self, image: str) -> tuple[ImageOutcome, Lookup]:
        self.images.append(image)
        await asyncio.sleep(self.delay)
        return ImageOutcome("pass", "verified"), "miss"


class Server:
    def __init__(
        self, url: str, engine: AdmissionEngine, metrics: ServiceMetrics, verifier: CountingVerifier
    ) -> None:
        self.url = url
        self.engine = engine
        self.metrics = metrics
        self.verifier = verifier

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


async def serve(
    verifier: CountingVerifier, deadline: float = 2.0, limits: ConnectionLimits | None = None
) -> tuple[web.AppRunner, Server]:
    metrics = ServiceMetrics(CollectorRegistry())
    engine = AdmissionEngine(
        lambda: POLICIES,
        verifier,
        metrics,
        config=AdmissionConfig(timeout=deadline),
    )
    app = build_webhook_app(engine, metrics, ready=lambda: True)
    runner, port = await start_site(app, "127.0.0.1", 0, limits=limits)
    return runner, Server(f"http://127.0.0.1:{port}", engine, metrics, verifier)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    runner, running = await serve(CountingVerifier())
    try:
        yield running
    finally:
        await runner.cleanup()


async def post(url: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(url + "/mutate", data=body, headers=headers) as response,
    ):
        answer: dict[str, Any] = await response.json()
        return response.status, answer


async def test_compressed_bodies_are_refused(server: Server) -> None:
    body = gzip.compress(review_body(workload("Pod", "p", "prod", "user/test:signed")))
    status, answer = await post(server.url, body, **{"Content-Encoding": "gzip"})
    assert status == 415
    assert "Content-Encoding 'gzip' is not accepted" in answer["message"]
    status, answer = await post(server.url, b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})
    assert status == 415


async def test_each_distinct_image_is_verified_once(server: Server) -> None:
    images = [f"registry.test/app{i % 3}:v1" for i in range(MAX_CONTAINERS)]
    obj = workload("Pod", "p", "prod", "unused:v1")
    obj["spec"] = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    status, answer = await post(server.url, review_body(obj))
    assert status == 200 and answer["response"]["allowed"] is True
    assert sorted(server.verifier.images) == [f"registry.test/app{i}:v1" for i in range(3)]


async def test_registries_per_request_are_bounded(server: Server) -> None:
    obj = workload("Pod", "p", "prod", "unused:v1")
    containers = [{"name": f"c{i}", "image": f"r{i}.invalid/app:v1"} for i in range(25)]
    obj["spec"] = {"containers": containers}
    status, answer = await post(server.url, review_body(obj))
    assert status == 200
    assert len(server.verifier.images) == MAX_REGISTRIES_PER_REQUEST
    # The walkthrough policy enforces in prod with failurePolicy Fail: the unverified images deny.
    assert answer["response"]["allowed"] is False
    message = answer["response"]["status"]["message"]
    assert f"more than {MAX_REGISTRIES_PER_REQUEST} registries in one request" in message


async def denial_long_before_30s(server: Server) -> str:
    """POST a Pod review to a server with a 1 s deadline whose verification or engine takes 30 s: it is
    denied long before (the bound leaves room for a loaded test machine). Returns the message."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, answer = await post(server.url, review_body(workload("Pod", "p", "prod", "user/test:x")))
    assert loop.time() - started < 5.0
    assert status == 200
    assert answer["response"]["allowed"] is False
    message: str = answer["response"]["status"]["message"]
    return message


async def test_a_verification_past_the_deadline_is_answered_in_time() -> None:
    runner, server = await serve(CountingVerifier(delay=30.0), deadline=1.0)
    try:
        assert "did not finish within the 0.8s admission deadline" in await denial_long_before_30s(server)
    finally:
        await runner.cleanup()


async def test_an_engine_past_the_deadline_is_a_counted_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    runner, server = await serve(CountingVerifier(), deadline=1.0)

    async def stuck(self: AdmissionEngine, request: object, deadline: float) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(AdmissionEngine, "_mutate", stuck)
    try:
        assert "no decision within the 0.8s admission deadline" in await denial_long_before_30s(server)
        fallbacks = server.sample(
            "trustwatch_admission_fallback_decisions_total", webhook="mutate", reason="deadline"
        )
        assert fallbacks == 1
    finally:
        await runner.cleanup()


async def test_request_labels_are_bounded(server: Server) -> None:
    weird = review_body({"apiVersion": "v1", "kind": "Weird", "metadata": {"name": "w"}})
    assert (await post(server.url, weird))[0] == 200
    exposition = generate_latest(server.metrics.registry).decode()
    assert 'kind="Weird"' not in exposition
    labels = {"webhook": "mutate", "operation": "CREATE", "kind": "other", "decision": "allowed"}
    assert server.sample("trustwatch_admission_requests_total", **labels) == 1
    # Namespaces: the first MAX_NAMESPACE_LABELS seen keep their name, later ones are "other".
    for number in range(MAX_NAMESPACE_LABELS):
        assert server.engine.namespace_label(f"ns-{number}") == f"ns-{number}"
    obj = workload("Pod", "p", "one-too-many", "registry.test/app:v1")
    assert (await post(server.url, review_body(obj)))[0] == 200
    assert server.engine.namespace_label("ns-0") == "ns-0"
    exposition = generate_latest(server.metrics.registry).decode()
    assert 'namespace="one-too-many"' not in exposition
    assert 'namespace="other"' in exposition


# --- connections --------------------------------------------------------------------------------------


async def wait_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection (which must happen ``within`` s)."""
    async with asyncio.timeout(within):
        return await reader.read()


async def test_slow_headers_slow_bodies_and_idle_connections_are_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "BODY_TIMEOUT", 0.5)
    limits = ConnectionLimits(idle_timeout=0.5)
    runner, server = await serve(CountingVerifier(), limits=limits)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        idle_reader, _idle = await asyncio.open_connection("127.0.0.1", port)
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
        slow.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        body_reader, body = await asyncio.open_connection("127.0.0.1", port)
        body.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        assert await wait_closed(idle_reader, 5) == b""
        assert await wait_closed(slow_reader, 5) == b""
        async with asyncio.timeout(5):  # the body deadline answers 408
            assert (await body_reader.readline()).startswith(b"HTTP/1.1 408")
        for writer in (_idle, slow, body):
            writer.close()
    finally:
        await runner.cleanup()


# --- DNS ----------------------------------------------------------------------------------------------


async def test_dns_lookups_have_a_deadline_and_threads_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".invalid"):
            release.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    resolver = BoundedResolver(timeout=0.3)
    try:
        lookups = [resolver.resolve(f"h{i}.invalid", 443) for i in range(20)]
        results = await asyncio.gather(*lookups, return_exceptions=True)
        assert all(isinstance(result, OSError) and "no DNS answer" in str(result) for result in results)
        # The default executor is untouched by the stuck lookups.
        assert await asyncio.to_thread(lambda: 42) == 42
    finally:
        release.set()
    answers = await resolver.resolve("localhost", 443)
    assert answers and answers[0]["port"] == 443
