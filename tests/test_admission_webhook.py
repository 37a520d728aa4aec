"""The webhook end to end: HTTPS on loopback, a real docker-registry with signed and unsigned images,
Pod/Deployment/CronJob reviews in ``prod`` (Enforce) and ``dev`` (Audit), reports written to a local
directory, metrics read back; a registry that hangs, malformed reviews and an invalid policy reload."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.admission.engine import AdmissionConfig, AdmissionEngine
from exporter.admission.server import MAX_BODY_BYTES, build_webhook_app
from exporter.admission.tls import ServingCertificate, TLSConfig
from exporter.admission.verifier import CacheSettings, ImageVerifier, registry_metrics_hook
from exporter.listen import start_site
from exporter.metrics import ServiceMetrics
from exporter.policy.reload import PolicyReloader
from exporter.registry.client import RegistryClient, RegistryOptions
from exporter.reports.writer import ReportWriter
from exporter.reports.writer_local import LocalReportBackend
from tests.support.admission import review_body, walkthrough_policy_text, workload
from tests.support.registry import (
    HangingServer,
    RegistryServer,
    generate_signing_key,
    public_pem,
    registry_available,
)

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not registry_available(), reason="needs /usr/bin/docker-registry"),
]

TIMEOUT = 3.0


@dataclass
class Webhook:
    url: str
    ssl: ssl.SSLContext
    registry: RegistryServer
    hanging: str
    signed_digest: str
    metrics: ServiceMetrics
    writer: ReportWriter
    reports: Path
    policy_file: Path
    reloader: PolicyReloader
    session: aiohttp.ClientSession

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            self.url + path, data=body, ssl=self.ssl, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        ) as response:
            return response.status, await response.json()

    async def review(self, obj: dict[str, Any], path: str = "/mutate", **kwargs: Any) -> dict[str, Any]:
        status, body = await self.post(path, review_body(obj, **kwargs))
        assert status == 200, body
        response: dict[str, Any] = body["response"]
        return response

    def image(self, tag: str) -> str:
        return f"{self.registry.host}/user/test:{tag}"

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    key = generate_signing_key()
    async with RegistryServer(tmp_path / "registry") as registry, HangingServer() as hanging:
        signed = registry.push_image("user/test", "signed", b"signed image")
        registry.sign("user/test", signed, key)
        registry.push_image("user/test", "unsigned", b"unsigned image")
        metrics = ServiceMetrics(CollectorRegistry())
        policy_file = tmp_path / "policies" / "policy.yaml"
        policy_file.parent.mkdir()
        policy_file.write_text(walkthrough_policy_text(public_pem(key)))
        reloader = PolicyReloader([policy_file.parent], metrics)
        reloader.load_initial()
        options = RegistryOptions(
            insecure_registries=frozenset({registry.host, hanging.host}),
            request_timeout=TIMEOUT,
            deadline=TIMEOUT * 2,
            on_request=registry_metrics_hook(metrics),
        )
        reports = tmp_path / "reports"
        writer = ReportWriter(LocalReportBackend(reports), metrics)
        certificate = ServingCertificate.open(TLSConfig(generate_dir=tmp_path / "tls"), metrics)
        assert certificate.ca_file is not None
        client_ssl = ssl.create_default_context(cafile=str(certificate.ca_file))
        async with RegistryClient(options) as client, aiohttp.ClientSession() as session:
            verifier = ImageVerifier(client, metrics, CacheSettings(negative_ttl=60))
            engine = AdmissionEngine(
                lambda: reloader.current().policies,
                verifier,
                metrics,
                config=AdmissionConfig(timeout=TIMEOUT),
                results=writer,
            )
            runner, port = await start_site(
                build_webhook_app(engine, metrics, ready=lambda: True),
                "127.0.0.1",
                0,
                ssl_context=certificate.context,
            )
            try:
                yield Webhook(
                    f"https://127.0.0.1:{port}",
                    client_ssl,
                    registry,
                    hanging.host,
                    signed,
                    metrics,
                    writer,
                    reports,
                    policy_file,
                    reloader,
                    session,
                )
            finally:
                await runner.cleanup()
                await verifier.close()


def report(directory: Path, namespace: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (directory / f"policyreport-{namespace}-cpol-check-image-signature.yaml").read_text()
    )
    return loaded


async def test_the_walkthrough(webhook: Webhook) -> None:
    unsigned = webhook.image("unsigned")
    denied = await webhook.review(workload("Deployment", "unsigned", "prod", unsigned))
    assert denied["allowed"] is False
    assert denied["status"]["message"] == (
        "\n\npolicy Deployment/prod/unsigned for resource violation:\n\n"
        "check-image-signature:\n"
        "  autogen-verify-image: |\n"
        f"    failed to verify image {unsigned}: .attestors[0].entries[0].keys: no matching signatures\n"
    )

    admitted = await webhook.review(workload("Deployment", "signed", "prod", webhook.image("signed")))
    assert admitted["allowed"] is True
    assert admitted["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(admitted["patch"])) == [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": f"{webhook.image('signed')}@{webhook.signed_digest}",
        }
    ]

    audited = await webhook.review(workload("Deployment", "unsigned", "dev", unsigned))
    assert audited["allowed"] is True
    assert audited["warnings"] == [
        "policy check-image-signature.autogen-verify-image: failed to verify image "
        f"{unsigned}: .attestors[0].entries[0].keys: no matching signatures"
    ]

    await webhook.writer.flush()
    dev, prod = report(webhook.reports, "dev"), report(webhook.reports, "prod")
    assert dev["summary"] == {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    # The denied Deployment was never created: prod reports only the admitted one.
    assert prod["summary"] == {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    [failure] = dev["results"]
    assert failure["message"].startswith(f"failed to verify image {unsigned}")
    assert (failure["severity"], failure["category"], failure["source"]) == (
        "high",
        "Software Supply Chain Security",
        "kyverno",
    )
    assert failure["properties"] == {"process": "admission review"}
    assert failure["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "unsigned", "namespace": "dev"}
    ]

    # The mutated (pinned) object passes /validate; the unpinned one does not in prod.
    pinned = workload("Deployment", "signed", "prod", f"{webhook.image('signed')}@{webhook.signed_digest}")
    assert (await webhook.review(pinned, "/validate"))["allowed"] is True
    unpinned = await webhook.review(
        workload("Deployment", "signed", "prod", webhook.image("signed")), "/validate"
    )
    assert unpinned["allowed"] is False
    assert "missing digest for" in unpinned["status"]["message"]

    assert webhook.sample("trustwatch_admitted_workloads_total", namespace="prod", verified="true") == 1
    assert webhook.sample("trustwatch_admitted_workloads_total", namespace="dev", verified="false") == 1
    assert webhook.sample("trustwatch_verification_cache_entries") == 2
    assert (
        webhook.sample("trustwatch_registry_requests_total", registry=webhook.registry.host, status="200") > 0
    )
    assert (
        webhook.sample(
            "trustwatch_image_verification_duration_seconds_count",
            result="pass",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("kind", "rule"), [("Pod", "verify-image"), ("CronJob", "autogen-cronjob-verify-image")]
)
async def test_pods_and_cronjobs(webhook: Webhook, kind: str, rule: str) -> None:
    denied = await webhook.review(workload(kind, "x", "prod", webhook.image("unsigned")))
    assert denied["allowed"] is False
    assert f"  {rule}: |" in denied["status"]["message"]
    admitted = await webhook.review(workload(kind, "x", "prod", webhook.image("signed")))
    assert admitted["allowed"] is True
    audited = await webhook.review(workload(kind, "x", "dev", webhook.image("unsigned")))
    assert audited["allowed"] is True
    assert audited["warnings"][0].startswith(f"policy check-image-signature.{rule}: failed to verify image")


async def test_the_cache_answers_repeated_reviews(webhook: Webhook) -> None:
    for _ in range(3):
        await webhook.review(workload("Deployment", "signed", "prod", webhook.image("signed")))
    assert webhook.sample("trustwatch_verification_cache_lookups_total", result="miss") == 1
    assert webhook.sample("trustwatch_verification_cache_lookups_total", result="hit") == 2


async def test_concurrent_reviews_of_a_new_image_share_one_verification(webhook: Webhook) -> None:
    deployment = workload("Deployment", "rollout", "prod", webhook.image("signed"))
    answers = await asyncio.gather(*(webhook.review(deployment) for _ in range(30)))
    assert all(answer["allowed"] for answer in answers)
    assert webhook.sample("trustwatch_image_verification_duration_seconds_count", result="pass") == 1
    assert webhook.sample("trustwatch_verification_cache_lookups_total", result="miss") == 1
    shared = webhook.sample("trustwatch_verification_cache_lookups_total", result="shared")
    hits = webhook.sample("trustwatch_verification_cache_lookups_total", result="hit")
    assert shared > 0
    assert shared + hits == 29


async def test_a_hanging_registry_gets_an_error_before_the_deadline(webhook: Webhook) -> None:
    image = f"{webhook.hanging}/user/test:any"
    denied = await webhook.review(workload("Deployment", "stuck", "prod", image))
    assert denied["allowed"] is False
    assert "for resource error:" in denied["status"]["message"]
    assert "admission deadline" in denied["status"]["message"]
    audited = await webhook.review(workload("Deployment", "stuck", "dev", image))
    assert audited["allowed"] is True
    await webhook.writer.flush()
    assert [r["result"] for r in report(webhook.reports, "dev")["results"]] == ["error"]


async def test_bad_input_is_answered_not_crashed_on(webhook: Webhook) -> None:
    status, body = await webhook.post("/mutate", b"{not json")
    assert (status, body["message"][:40]) == (400, "not a valid AdmissionReview: body is not")
    status, body = await webhook.post("/validate", json.dumps({"kind": "AdmissionReview"}).encode())
    assert status == 400
    assert "apiVersion must be one of" in body["message"]
    status, body = await webhook.post("/mutate", b" " * (MAX_BODY_BYTES + 1))
    assert status == 413
    assert (
        webhook.sample(
            "trustwatch_admission_requests_total", webhook="mutate", operation="", kind="", decision="error"
        )
        == 2
    )
    async with webhook.session.get(webhook.url + "/healthz", ssl=webhook.ssl) as response:
        assert response.status == 200
    async with webhook.session.get(webhook.url + "/readyz", ssl=webhook.ssl) as response:
        assert response.status == 200
    # The webhook still works afterwards.
    assert (await webhook.review(workload("Pod", "p", "prod", webhook.image("signed"))))["allowed"] is True


async def test_an_invalid_policy_reload_keeps_the_last_good_set(webhook: Webhook) -> None:
    webhook.policy_file.write_text("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nspec: [broken\n")
    assert webhook.reloader.check_once() is False
    assert webhook.sample("trustwatch_policy_load_errors_total") == 1
    denied = await webhook.review(workload("Deployment", "unsigned", "prod", webhook.image("unsigned")))
    assert denied["allowed"] is False


async def test_v1beta1_reviews_are_answered_in_kind(webhook: Webhook) -> None:
    status, body = await webhook.post(
        "/mutate",
        review_body(
            workload("Pod", "p", "dev", webhook.image("signed")), api_version="admission.k8s.io/v1beta1"
        ),
    )
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"]["allowed"] is True
