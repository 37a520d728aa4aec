"""A real ``trustwatch serve`` over TLS under hostile traffic: a few hundred requests of each category
(deep nesting, compressed bodies, wrong types, odd encodings, many containers, many registries, label
values that would break or bloat metrics, oversized bodies) plus slow clients. Nothing is answered 500,
every answer comes before the deadline, /healthz and /metrics answer within 1 s throughout, metric labels
stay bounded, and the process then stops within its grace period."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.admission import walkthrough_policy_text
from tests.support.hostile import CATEGORIES, Outcome, drive, requests
from tests.support.probe import Prober
from tests.support.registry import generate_signing_key, public_pem
from tests.support.serve import ServeProcess

TIMEOUT = 5.0
PER_CATEGORY = {category: 150 for category in CATEGORIES} | {
    "oversized": 30,
    "many-registries": 100,
    "valid": 100,
}
IMAGE = "127.0.0.1:9/user/test:v1"  # nothing listens there: verification fails fast, as an error


async def slowloris(host: str, port: int, context: ssl.SSLContext, connections: int) -> int:
    """Open ``connections`` TLS connections that trickle headers; returns how many the server closed."""

    async def one() -> bool:
        reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")
        writer.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
        try:
            async with asyncio.timeout(30):
                while True:  # a header line now and then, never the end of the headers
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                    if not await _closed_within(reader, 1.0):
                        continue
                    return True
        except (ConnectionError, ssl.SSLError):
            return True
        finally:
            writer.close()

    return sum(await asyncio.gather(*(one() for _ in range(connections))))


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), seconds) == b""
    except TimeoutError:
        return False


def test_hostile_traffic_never_gets_a_500_or_a_late_answer(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        walkthrough_policy_text(public_pem(generate_signing_key()), **{"docker.io/user/test*": "*"})
    )
    with ServeProcess(
        tmp_path,
        "--policies", str(policy),
        "--insecure-registry", "127.0.0.1:9",
        "--timeout", str(TIMEOUT),
        "--grace-period", "3",
    ) as serve:  # fmt: skip
        context = ssl.create_default_context(cafile=str(serve.ca_file))
        port = int(serve.webhook_url.rsplit(":", 1)[1])
        webhook = f"https://localhost:{port}"
        status_probes = [serve.metrics_url + "/healthz", serve.metrics_url + "/metrics"]

        async def attack() -> tuple[Outcome, int]:
            traffic = requests(PER_CATEGORY, IMAGE)
            outcome, closed = await asyncio.gather(
                drive(webhook, context, traffic, deadline=TIMEOUT, concurrency=20),
                slowloris("127.0.0.1", port, context, 50),
            )
            return outcome, closed

        with Prober([*status_probes, webhook + "/healthz"], serve.ca_file) as prober:
            outcome, closed = asyncio.run(attack())
        statuses = {category: dict(counter) for category, counter in outcome.statuses.items()}
        assert outcome.total("500") == 0, statuses
        assert outcome.total("no-answer") == 0, statuses
        # A client still sending a body the server already refused (413 on its Content-Length) may see the
        # connection closed before it reads the answer; nothing else may fail to get one.
        for category, counter in outcome.statuses.items():
            assert category in ("oversized", "deep-nesting") or not counter["connection-error"], statuses
        assert not outcome.late, (outcome.late, max(outcome.latencies))
        assert sum(sum(counter.values()) for counter in outcome.statuses.values()) == sum(
            PER_CATEGORY.values()
        )
        assert statuses["valid"] == {"200": PER_CATEGORY["valid"]}
        assert set(statuses["compressed"]) == {"415"}
        assert set(statuses["wrong-types"]) == {"400"}
        # /healthz and /metrics, probed every 0.2 s from another process as the kubelet and Prometheus do,
        # all answer within 1 s: the status server has an event loop of its own.
        results = prober.results
        assert not results.failures, results.failures
        for url in status_probes:
            assert max(results.latencies[url]) < 1.0, (url, sorted(results.latencies[url])[-10:])
        # The webhook port's /healthz waits in the same queue as the reviews: answered, and mostly fast.
        on_webhook = sorted(results.latencies[webhook + "/healthz"])
        assert on_webhook[int(len(on_webhook) * 0.9)] < 1.0, on_webhook[-10:]
        assert on_webhook[-1] < TIMEOUT, on_webhook[-10:]
        assert closed == 50  # every slow client was cut by the header timeout
        # Metrics still scrape, with bounded, valid labels.
        status, text = serve.get("/metrics")
        assert status == 200
        families = {family.name: family for family in text_string_to_metric_families(text)}
        kinds = {sample.labels["kind"] for sample in families["trustwatch_admission_requests"].samples}
        assert kinds <= {"Pod", "other", ""}
        registries = {
            sample.labels["registry"] for sample in families["trustwatch_registry_requests"].samples
        }
        assert len(registries) <= 101
        started = time.monotonic()
    assert serve.returncode == 0
    assert time.monotonic() - started < 3 + 5  # the grace period, plus process start-up of the exit path
