"""The engine with a scripted verifier: decisions, messages, warnings, patches, results and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.admission.cache import Lookup
from exporter.admission.engine import AdmissionConfig, AdmissionEngine, Decision, Webhook
from exporter.admission.messages import IMAGE_VERIFIED, verification_failed
from exporter.admission.review import parse_review
from exporter.admission.verifier import ImageOutcome
from exporter.admission.violations import Violation
from exporter.metrics import ServiceMetrics
from exporter.policy.model import KyvernoPolicy
from exporter.reports.writer import AuditResult
from tests.support.admission import ByImageVerifier, review_body, walkthrough_policy, workload
from tests.support.registry import generate_signing_key, public_pem

DIGEST = "sha256:" + "ab" * 32
NO_SIGNATURES = ".attestors[0].entries[0].keys: no matching signatures"
WALKTHROUGH_DENIAL = """

policy Deployment/prod/unsigned for resource violation:

check-image-signature:
  autogen-verify-image: |
    failed to verify image docker.io/user/test:unsigned: .attestors[0].entries[0].keys: no matching signatures
"""


class ScriptedVerifier(ByImageVerifier):
    """Outcomes by image as written, for both policy kinds; images listed in ``hang`` never finish."""

    def __init__(self, hang: Iterable[str] = ()) -> None:
        self.calls: list[str] = []
        self.hang = set(hang)

    async def answer(self, image: str) -> tuple[ImageOutcome, Lookup]:
        self.calls.append(image)
        if image in self.hang:
            await asyncio.Event().wait()
        if image.endswith(":crash"):
            raise RuntimeError("verifier bug")
        shown = "docker.io/" + image
        if image.endswith(":signed") or ":signed@" in image:
            return ImageOutcome("pass", IMAGE_VERIFIED, DIGEST), "miss"
        if image.endswith(":broken"):
            return ImageOutcome(
                "error", verification_failed(shown, ".attestors[0].entries[0].keys: 503")
            ), "miss"
        return ImageOutcome("fail", verification_failed(shown, NO_SIGNATURES), DIGEST), "hit"


class Sink:
    def __init__(self) -> None:
        self.results: list[AuditResult] = []

    def submit(self, results: Iterable[AuditResult]) -> None:
        self.results.extend(results)


class Violations:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def submit(self, violation: Violation) -> None:
        self.violations.append(violation)


@pytest.fixture
def policies() -> list[KyvernoPolicy]:
    return walkthrough_policy(public_pem(generate_signing_key()))


def make_engine(
    policies: list[KyvernoPolicy],
    verifier: ScriptedVerifier | None = None,
    violations: Violations | None = None,
    **config: Any,
) -> tuple[AdmissionEngine, Sink, ServiceMetrics]:
    metrics = ServiceMetrics(CollectorRegistry())
    sink = Sink()
    engine = AdmissionEngine(
        lambda: policies,
        verifier or ScriptedVerifier(),
        metrics,
        config=AdmissionConfig(**config),
        results=sink,
        violations=violations,
        clock=lambda: 1764153600.5,
    )
    return engine, sink, metrics


async def run(engine: AdmissionEngine, body: bytes, webhook: Webhook = "mutate") -> Decision:
    return await engine.review(webhook, parse_review(body))


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_walkthrough_unsigned_in_prod_is_denied_with_kyvernos_message(
    policies: list[KyvernoPolicy],
) -> None:
    violations = Violations()
    engine, sink, metrics = make_engine(policies, violations=violations)
    decision = await run(
        engine, review_body(workload("Deployment", "unsigned", "prod", "user/test:unsigned"))
    )
    assert decision.response.allowed is False
    assert decision.response.message == WALKTHROUGH_DENIAL
    assert decision.response.warnings == []
    # Nothing was created, so nothing is reported: the denial is an event.
    assert sink.results == []
    (violation,) = violations.violations
    assert (violation.policy, violation.policy_namespace, violation.resource_name) == (
        "check-image-signature",
        None,
        "unsigned",
    )
    assert violation.message() == (
        "Deployment prod/unsigned: [autogen-verify-image] fail (blocked); failed to verify image "
        f"docker.io/user/test:unsigned: {NO_SIGNATURES}"
    )
    labels = {"policy": "check-image-signature", "rule": "autogen-verify-image", "namespace": "prod"}
    assert sample(metrics, "trustwatch_admission_denials_total", **labels) == 1
    assert (
        sample(
            metrics,
            "trustwatch_admission_policy_results_total",
            **labels,
            result="fail",
            action="Enforce",
            policy_type="ClusterPolicy",
        )
        == 1
    )
    assert (
        sample(
            metrics,
            "trustwatch_admission_requests_total",
            webhook="mutate",
            operation="CREATE",
            kind="Deployment",
            decision="denied",
        )
        == 1
    )
    assert (
        sample(
            metrics,
            "trustwatch_image_verifications_total",
            policy="check-image-signature",
            rule="autogen-verify-image",
            result="fail",
            cached="true",
        )
        == 1
    )
    assert sample(metrics, "trustwatch_admission_review_duration_seconds_count", webhook="mutate") == 1


async def test_signed_in_prod_is_admitted_and_pinned(policies: list[KyvernoPolicy]) -> None:
    engine, sink, metrics = make_engine(policies)
    decision = await run(engine, review_body(workload("Deployment", "signed", "prod", "user/test:signed")))
    assert decision.response.allowed is True
    assert decision.response.patch == [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": f"docker.io/user/test:signed@{DIGEST}",
        }
    ]
    [result] = sink.results
    document = result.document()
    assert document == {
        "message": "image verified",
        "policy": "check-image-signature",
        "rule": "autogen-verify-image",
        "result": "pass",
        "scored": True,
        "source": "kyverno",
        "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "signed", "namespace": "prod"}],
        "timestamp": {"seconds": 1764153600, "nanos": 500000000},
        "properties": {"process": "admission review"},
        "severity": "high",
        "category": "Software Supply Chain Security",
    }
    assert sample(metrics, "trustwatch_admitted_workloads_total", namespace="prod", verified="true") == 1


async def test_unsigned_in_dev_is_admitted_with_a_warning(policies: list[KyvernoPolicy]) -> None:
    engine, sink, metrics = make_engine(policies)
    decision = await run(engine, review_body(workload("Deployment", "unsigned", "dev", "user/test:unsigned")))
    assert decision.response.allowed is True
    assert decision.response.patch is None
    assert decision.response.warnings == [
        "policy check-image-signature.autogen-verify-image: failed to verify image "
        "docker.io/user/test:unsigned: .attestors[0].entries[0].keys: no matching signatures"
    ]
    assert [r.result for r in sink.results] == ["fail"]
    labels = {"policy": "check-image-signature", "rule": "autogen-verify-image", "namespace": "dev"}
    assert sample(metrics, "trustwatch_admission_audit_failures_admitted_total", **labels) == 1
    assert sample(metrics, "trustwatch_admitted_workloads_total", namespace="dev", verified="false") == 1


@pytest.mark.parametrize(
    ("kind", "rule"), [("Pod", "verify-image"), ("CronJob", "autogen-cronjob-verify-image")]
)
async def test_pod_and_cronjob_use_their_rules(policies: list[KyvernoPolicy], kind: str, rule: str) -> None:
    engine, _sink, _metrics = make_engine(policies)
    decision = await run(engine, review_body(workload(kind, "x", "prod", "user/test:unsigned")))
    assert f"  {rule}: |\n" in decision.response.message
    assert decision.response.message.startswith(f"\n\npolicy {kind}/prod/x for resource violation:")


async def test_pod_with_init_container_patches_both_fields(policies: list[KyvernoPolicy]) -> None:
    engine, _sink, _metrics = make_engine(policies)
    decision = await run(engine, review_body(workload("Pod", "p", "prod", "user/test:signed")))
    assert [op["path"] for op in decision.response.patch or []] == [
        "/spec/initContainers/0/image",
        "/spec/containers/0/image",
    ]


@pytest.mark.parametrize(
    ("failure_policy", "namespace", "allowed", "fail_open"),
    [("Fail", "prod", False, 0), ("Ignore", "prod", True, 1), ("Fail", "dev", True, 0)],
)
async def test_verification_errors_follow_failure_policy(
    failure_policy: str, namespace: str, allowed: bool, fail_open: int
) -> None:
    policies = walkthrough_policy(
        public_pem(generate_signing_key()), **{"failurePolicy: Fail": f"failurePolicy: {failure_policy}"}
    )
    engine, sink, metrics = make_engine(policies)
    decision = await run(engine, review_body(workload("Deployment", "d", namespace, "user/test:broken")))
    assert decision.response.allowed is allowed
    if not allowed:
        assert "for resource error:" in decision.response.message
    else:
        assert decision.response.warnings and "503" in decision.response.warnings[0]
    assert [r.status for r in decision.results] == ["error"]
    # Only what was admitted (and so exists) is reported.
    assert [r.result for r in sink.results] == (["error"] if allowed else [])
    labels = {"policy": "check-image-signature", "rule": "autogen-verify-image", "namespace": namespace}
    assert sample(metrics, "trustwatch_admission_fail_open_total", **labels) == fail_open


async def test_a_hanging_verification_becomes_an_error_before_the_deadline(
    policies: list[KyvernoPolicy],
) -> None:
    verifier = ScriptedVerifier(hang={"user/test:slow"})
    engine, _sink, metrics = make_engine(policies, verifier, timeout=0.3)
    decision = await run(engine, review_body(workload("Deployment", "d", "prod", "user/test:slow")))
    assert decision.response.allowed is False
    assert "did not finish within the 0.24s admission deadline" in decision.response.message
    assert [r.status for r in decision.results] == ["error"]
    assert (
        sample(
            metrics,
            "trustwatch_image_verifications_total",
            policy="check-image-signature",
            rule="autogen-verify-image",
            result="error",
            cached="false",
        )
        == 1
    )


async def test_dry_run_is_evaluated_but_not_reported(policies: list[KyvernoPolicy]) -> None:
    engine, sink, _metrics = make_engine(policies)
    decision = await run(
        engine, review_body(workload("Deployment", "unsigned", "prod", "user/test:unsigned"), dry_run=True)
    )
    assert decision.response.allowed is False
    assert sink.results == []


async def test_update_is_verified_only_when_images_change(policies: list[KyvernoPolicy]) -> None:
    verifier = ScriptedVerifier()
    engine, sink, _metrics = make_engine(policies, verifier)
    old = workload("Deployment", "d", "prod", "user/test:unsigned")
    scaled = json.loads(json.dumps(old))
    scaled["spec"]["replicas"] = 3
    decision = await run(engine, review_body(scaled, operation="UPDATE", old=old))
    assert decision.response.allowed is True
    assert verifier.calls == []
    changed = workload("Deployment", "d", "prod", "user/test:signed")
    decision = await run(engine, review_body(changed, operation="UPDATE", old=old))
    assert decision.response.allowed is True
    assert verifier.calls == ["user/test:signed"]
    assert len(sink.results) == 1


async def test_delete_and_unmatched_kinds_are_admitted_untouched(policies: list[KyvernoPolicy]) -> None:
    verifier = ScriptedVerifier()
    engine, sink, _metrics = make_engine(policies, verifier)
    obj = workload("Deployment", "d", "prod", "user/test:unsigned")
    assert (await run(engine, review_body(obj, operation="DELETE", old=obj))).response.allowed
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "prod"}}
    assert (await run(engine, review_body(config_map))).response.allowed
    assert verifier.calls == []
    assert sink.results == []


async def test_validate_denies_unpinned_images_where_verify_digest_requires(
    policies: list[KyvernoPolicy],
) -> None:
    engine, sink, metrics = make_engine(policies)
    decision = await run(
        engine, review_body(workload("Deployment", "d", "prod", "user/test:signed")), "validate"
    )
    assert decision.response.allowed is False
    assert "missing digest for docker.io/user/test:signed" in decision.response.message
    pinned = workload("Deployment", "d", "prod", f"docker.io/user/test:signed@{DIGEST}")
    assert (await run(engine, review_body(pinned), "validate")).response.allowed is True
    audit = await run(engine, review_body(workload("Deployment", "d", "dev", "user/test:signed")), "validate")
    assert audit.response.allowed is True
    assert audit.response.warnings == [
        "policy check-image-signature.autogen-verify-image: missing digest for docker.io/user/test:signed"
    ]
    assert sink.results == []
    labels = {"policy": "check-image-signature", "rule": "autogen-verify-image", "namespace": "prod"}
    assert sample(metrics, "trustwatch_admission_denials_total", **labels) == 1


async def test_namespace_labels_are_bounded(policies: list[KyvernoPolicy]) -> None:
    engine, _sink, metrics = make_engine(policies, namespace_include=("prod",))
    await run(engine, review_body(workload("Deployment", "d", "team-a", "user/test:signed")))
    assert sample(metrics, "trustwatch_admitted_workloads_total", namespace="other", verified="true") == 1
    assert engine.namespace_label("prod") == "prod"


async def test_unscored_policy_reports_failures_as_warn() -> None:
    policies = walkthrough_policy(
        public_pem(generate_signing_key()),
        **{"severity: high": "severity: high\n    policies.kyverno.io/scored: 'false'"},
    )
    engine, sink, _metrics = make_engine(policies)
    await run(engine, review_body(workload("Deployment", "d", "dev", "user/test:unsigned")))
    assert [(r.result, r.scored) for r in sink.results] == [("warn", False)]


async def test_rules_selecting_no_image_skip_and_bad_images_error() -> None:
    policies = walkthrough_policy(
        public_pem(generate_signing_key()), **{"- image: '*'": "- imageReferences: ['ghcr.io/*']"}
    )
    verifier = ScriptedVerifier()
    engine, sink, _metrics = make_engine(policies, verifier)
    decision = await run(engine, review_body(workload("Deployment", "d", "prod", "user/test:unsigned")))
    assert decision.response.allowed is True
    [skipped] = sink.results
    assert skipped.result == "skip"
    assert skipped.message.startswith("skip run verification as image in resource not found in imageRefs")
    assert verifier.calls == []
    bad = await run(engine, review_body(workload("Deployment", "d", "prod", "Not A Valid Image!")))
    assert bad.response.allowed is False
    assert "for resource error:" in bad.response.message
    assert [r.status for r in bad.results] == ["error"]


async def test_a_crashing_verification_is_an_error_result_not_a_crash(policies: list[KyvernoPolicy]) -> None:
    engine, sink, _metrics = make_engine(policies)
    decision = await run(engine, review_body(workload("Deployment", "d", "dev", "user/test:crash")))
    assert decision.response.allowed is True
    assert "internal error in trustwatch (details in its log)" in decision.response.warnings[0]
    assert "verifier bug" not in decision.response.warnings[0]  # no internals in what users see
    assert [r.result for r in sink.results] == ["error"]


def generated_pod(image: str, name: str = "", uid: str = "") -> dict[str, Any]:
    """A Pod a ReplicaSet creates: only ``generateName`` at /mutate; name and uid by /validate."""
    pod = workload("Pod", "x", "dev", image)
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "web-7d9f8-"
    if name:
        pod["metadata"]["name"] = name
        pod["metadata"]["uid"] = uid
    return pod


def generated_review(pod: dict[str, Any]) -> bytes:
    body = json.loads(review_body({**pod, "metadata": {**pod["metadata"], "name": "ignored"}}))
    body["request"]["name"] = pod["metadata"].get("name", "")
    body["request"]["object"] = pod
    return json.dumps(body).encode()


async def test_behind_an_api_server_results_are_written_under_the_generated_name_and_uid(
    policies: list[KyvernoPolicy],
) -> None:
    engine, sink, _metrics = make_engine(policies, results_from="validate")
    mutated = await run(engine, generated_review(generated_pod("user/test:signed")))
    assert mutated.response.allowed is True and sink.results == []  # no name yet: nothing written
    (pin,) = {op["value"] for op in mutated.response.patch or ()}  # what the API server applies
    pinned = f"docker.io/user/test:signed@{DIGEST}"
    assert pin == pinned
    for number in (1, 2):  # two replicas of one template
        named = generated_pod(pinned, name=f"web-7d9f8-abcd{number}", uid=f"uid-{number}")
        validated = await run(engine, generated_review(named), webhook="validate")
        assert validated.response.allowed is True
    # The first /validate took the results of /mutate; the second (whose /mutate ran elsewhere) evaluated.
    assert [(r.resource.name, r.resource.uid, r.result) for r in sink.results] == [
        ("web-7d9f8-abcd1", "uid-1", "pass"),
        ("web-7d9f8-abcd2", "uid-2", "pass"),
    ]


async def test_every_decision_is_one_structured_log_line(
    policies: list[KyvernoPolicy], caplog: pytest.LogCaptureFixture
) -> None:
    engine, _sink, _metrics = make_engine(policies)
    with caplog.at_level("DEBUG", logger="exporter.admission.engine"):
        await run(engine, review_body(workload("Deployment", "unsigned", "prod", "user/test:unsigned")))
        await run(engine, review_body(workload("Deployment", "unsigned", "dev", "user/test:unsigned")))
        await run(engine, review_body(workload("Deployment", "signed", "dev", "user/test:signed")))
    lines = [record for record in caplog.records if record.getMessage() == "admission decision"]
    assert [(r.levelname, vars(r)["decision"], vars(r)["namespace"]) for r in lines] == [
        ("INFO", "denied", "prod"),
        ("INFO", "allowed", "dev"),  # an Audit failure
        ("DEBUG", "allowed", "dev"),
    ]
    denied = vars(lines[0])
    assert denied["resource"] == "Deployment/unsigned" and denied["images"] == ["user/test:unsigned"]
    assert denied["results"] == [
        {
            "policy": "check-image-signature",
            "rule": "autogen-verify-image",
            "result": "fail",
            "action": "Enforce",
        }
    ]
    assert denied["uid"] and denied["cached"] is True and denied["duration_ms"] >= 0
    assert vars(lines[2])["cached"] is False
