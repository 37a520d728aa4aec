"""ImageValidatingPolicies in the admission engine with a scripted verifier: Deny/Warn/Audit, digest pins,
verifyDigest, deadlines and crashes, reports and metrics, mixed with ClusterPolicies."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.admission.engine import AdmissionConfig, AdmissionEngine, Decision, Webhook
from exporter.admission.review import parse_review
from exporter.ivp.model import ImageValidatingPolicy
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from tests.support.admission import DATA, review_body, walkthrough_policy, workload
from tests.support.registry import generate_signing_key, public_pem
from tests.test_admission_engine import DIGEST, ScriptedVerifier, Sink

PEM = public_pem(generate_signing_key())


def walkthrough_ivps(**replacements: str) -> list[ImageValidatingPolicy]:
    text = (
        (DATA / "walkthrough-ivp.yaml")
        .read_text()
        .replace("__KEY_PEM__", textwrap.indent(PEM.strip(), " " * 10))
    )
    for old, new in replacements.items():
        text = text.replace(old, new)
    policies = parse_policies(text, "walkthrough-ivp.yaml")
    return [policy for policy in policies if isinstance(policy, ImageValidatingPolicy)]


def engine(policies: list[Any], verifier: ScriptedVerifier | None = None, timeout: float = 10.0) -> tuple[
    AdmissionEngine, Sink, ServiceMetrics
]:  # fmt: skip
    metrics = ServiceMetrics(CollectorRegistry())
    sink = Sink()
    built = AdmissionEngine(
        lambda: policies, verifier or ScriptedVerifier(), metrics, config=AdmissionConfig(timeout=timeout),
        results=sink,
    )  # fmt: skip
    return built, sink, metrics


def review(target: AdmissionEngine, obj: dict[str, Any], webhook: Webhook = "mutate") -> Decision:
    return asyncio.run(target.review(webhook, parse_review(review_body(obj))))


def test_deny_blocks_with_kyvernos_layout_and_records_the_result() -> None:
    target, sink, metrics = engine(walkthrough_ivps())
    decision = review(target, workload("Deployment", "unsigned", "prod", "user/test:unsigned"))
    assert not decision.response.allowed and decision.response.code == 403
    assert decision.response.message == (
        "\n\npolicy Deployment/prod/unsigned for resource violation:\n\ncheck-image-signature-enforce:\n"
        "  autogen-check-image-signature-enforce: |\n"
        "    image signature verification failed for user/test:unsigned\n"
    )
    labels = {"policy": "check-image-signature-enforce", "rule": "autogen-check-image-signature-enforce"}
    sample = metrics.registry.get_sample_value
    assert sample("trustwatch_admission_denials_total", {**labels, "namespace": "prod"}) == 1
    results = {**labels, "namespace": "prod", "result": "fail", "action": "Enforce"}
    assert (
        sample(
            "trustwatch_admission_policy_results_total", {**results, "policy_type": "ImageValidatingPolicy"}
        )
        == 1
    )
    assert sink.results == []  # a denied request is an event, not a report result


def test_signed_images_are_pinned_and_reported_as_passing() -> None:
    target, sink, _ = engine(walkthrough_ivps())
    decision = review(target, workload("Deployment", "signed", "prod", "user/test:signed"))
    assert decision.response.allowed
    assert decision.response.patch == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image",
         "value": f"docker.io/user/test:signed@{DIGEST}"}
    ]  # fmt: skip
    [result] = sink.results
    assert (result.report_name, result.policy, result.rule, result.result, result.source) == (
        "ivpol-check-image-signature-enforce",
        "check-image-signature-enforce",
        "autogen-check-image-signature-enforce",
        "pass",
        "KyvernoImageValidatingPolicy",
    )


def test_warn_warns_and_audit_only_reports() -> None:
    warned, _, metrics = engine(walkthrough_ivps())
    decision = review(warned, workload("Pod", "unsigned", "dev", "user/test:unsigned"))
    assert decision.response.allowed
    assert decision.response.warnings == [
        "policy check-image-signature-audit.check-image-signature-audit: "
        "image signature verification failed for user/test:unsigned"
    ]
    labels = {
        "policy": "check-image-signature-audit",
        "rule": "check-image-signature-audit",
        "namespace": "dev",
    }
    assert (
        metrics.registry.get_sample_value("trustwatch_admission_audit_failures_admitted_total", labels) == 1
    )
    audit_only, sink, _ = engine(walkthrough_ivps(**{"[Audit, Warn]": "[Audit]"}))
    decision = review(audit_only, workload("Pod", "unsigned", "dev", "user/test:unsigned"))
    assert decision.response.allowed and decision.response.warnings == []
    assert [result.result for result in sink.results] == ["fail"]


def test_validate_refuses_matched_images_without_a_digest() -> None:
    target, _, _ = engine(walkthrough_ivps())
    decision = review(target, workload("Deployment", "signed", "prod", "user/test:signed"), "validate")
    assert not decision.response.allowed
    assert "missing digest for docker.io/user/test:signed" in decision.response.message
    pinned = workload("Deployment", "signed", "prod", f"user/test:signed@{DIGEST}")
    assert review(target, pinned, "validate").response.allowed
    relaxed, _, _ = engine(walkthrough_ivps(**{"  validations:": "  validationConfigurations:\n"
                                               "    verifyDigest: false\n  validations:"}))  # fmt: skip
    assert review(
        relaxed, workload("Deployment", "signed", "prod", "user/test:signed"), "validate"
    ).response.allowed


def test_unfinished_and_crashed_verifications_are_errors_that_failure_policy_decides() -> None:
    hanging = ScriptedVerifier(hang=["user/test:slow"])
    target, _, _ = engine(walkthrough_ivps(), hanging, timeout=0.5)
    decision = review(target, workload("Pod", "slow", "prod", "user/test:slow"))
    assert not decision.response.allowed
    assert "did not finish within the admission deadline" in decision.response.message
    crashed = review(target, workload("Pod", "crash", "prod", "user/test:crash"))
    assert not crashed.response.allowed and "internal error in trustwatch" in crashed.response.message
    ignoring, _, metrics = engine(
        walkthrough_ivps(**{"failurePolicy: Fail": "failurePolicy: Ignore"}), hanging, 0.5
    )
    admitted = review(ignoring, workload("Pod", "slow", "prod", "user/test:slow"))
    assert admitted.response.allowed
    labels = {
        "policy": "check-image-signature-enforce",
        "rule": "check-image-signature-enforce",
        "namespace": "prod",
    }
    assert metrics.registry.get_sample_value("trustwatch_admission_fail_open_total", labels) == 1


def test_both_kinds_decide_together() -> None:
    policies: list[Any] = [*walkthrough_policy(PEM), *walkthrough_ivps()]
    target, sink, _ = engine(policies)
    decision = review(target, workload("Deployment", "unsigned", "prod", "user/test:unsigned"))
    message = decision.response.message
    assert "check-image-signature:\n  autogen-verify-image: |" in message
    assert "check-image-signature-enforce:\n  autogen-check-image-signature-enforce: |" in message
    assert message.splitlines()[2] == "policy Deployment/prod/unsigned for resource violations:"
    review(target, workload("Deployment", "signed", "prod", "user/test:signed"))
    assert sorted(result.report_name for result in sink.results) == [
        "cpol-check-image-signature",
        "ivpol-check-image-signature-enforce",
    ]
