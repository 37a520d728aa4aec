"""ImageValidatingPolicy evaluation, pure: matching, autogen, CEL semantics, the image library, the
verification functions over given outcomes, messages, run-time errors and the cost bound."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import pytest

from exporter.ivp.celenv import MAX_LIST_ITEMS
from exporter.ivp.evaluate import (
    NO_IMAGES,
    Outcome,
    SignatureOutcome,
    VerificationKey,
    conclude,
    conclusion_key,
    prepare,
)
from exporter.ivp.match import Applicable, RequestAttributes, applicable
from exporter.ivp.model import ImageValidatingPolicy
from tests.support.admission import workload
from tests.test_ivp_parse import ivp, load_one

SIGNED = "docker.io/user/test:signed"
UNSIGNED = "docker.io/user/test:unsigned"


def request_for(
    obj: Mapping[str, Any],
    operation: str = "CREATE",
    labels: Mapping[str, str] | None = None,
    resource: str | None = None,
    subresource: str = "",
) -> RequestAttributes:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    metadata = obj["metadata"]
    return RequestAttributes(
        group=group,
        version=version,
        resource=resource or f"{str(obj['kind']).lower()}s",
        subresource=subresource,
        kind=str(obj["kind"]),
        operation=operation,
        name=metadata["name"],
        namespace=metadata.get("namespace", ""),
        object_labels=metadata.get("labels") or {},
        namespace_labels=labels or {},
    )


def outcomes(
    policy: ImageValidatingPolicy, passing: Mapping[str, set[str]]
) -> dict[VerificationKey, SignatureOutcome]:
    """Every (reference, attestor) pair: pass when the attestor is listed for the reference, else fail."""
    pairs: dict[VerificationKey, SignatureOutcome] = {}
    for reference in (SIGNED, UNSIGNED, "ghcr.io/org/app:v1", "docker.io/library/nginx:latest"):
        for attestor in policy.attestors:
            ok = attestor.name in passing.get(reference, set())
            pairs[(reference, attestor.name)] = SignatureOutcome(
                "pass" if ok else "fail", "", "sha256:" + "a" * 64
            )
    return pairs


def evaluate(
    policy: ImageValidatingPolicy,
    obj: dict[str, Any],
    passing: Mapping[str, set[str]] | None = None,
    **request: Any,
) -> Outcome | None:
    applies = applicable(policy, request_for(obj, **request), obj)
    if applies is None:
        return None
    prepared = prepare(policy, applies, obj, None, request={"operation": "CREATE"}, namespace_object=None)
    if prepared is None:
        return None
    return conclude(prepared, outcomes(policy, passing or {SIGNED: {"key"}}))


def status(outcome: Outcome | None) -> str | None:
    """The outcome's status; None when the policy does not apply."""
    return None if outcome is None else outcome.status


def pod(image: str, namespace: str = "dev", **extra: Any) -> dict[str, Any]:
    obj = workload("Pod", "p", namespace, image)
    obj["metadata"].update(extra)
    return obj


def test_signed_image_passes_and_unsigned_fails_with_the_default_message() -> None:
    policy = load_one(ivp())
    assert evaluate(policy, pod("user/test:signed")) == Outcome("pass", "success")
    failed = evaluate(policy, pod("user/test:unsigned"))
    assert failed == Outcome(
        "fail",
        "failed expression: images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)",
    )


def test_message_and_message_expression() -> None:
    document = ivp()
    document["spec"]["validations"][0]["message"] = "images must be signed"
    assert evaluate(load_one(document), pod("user/test:unsigned")) == Outcome("fail", "images must be signed")
    document["spec"]["validations"][0]["messageExpression"] = "'unsigned: ' + images.containers[0]"
    assert evaluate(load_one(document), pod("user/test:unsigned")) == Outcome(
        "fail", "unsigned: user/test:unsigned"
    )


def test_verify_image_signatures_counts_the_attestors_that_verified() -> None:
    document = ivp(
        validations=[
            {
                "expression": "images.containers.all(i, "
                "verifyImageSignatures(i, [attestors.a, attestors.b]) == 2)"
            }
        ]
    )
    document["spec"]["attestors"] = [
        {"name": "a", "cosign": {"key": {"data": document["spec"]["attestors"][0]["cosign"]["key"]["data"]}}},
        {"name": "b", "cosign": {"key": {"data": document["spec"]["attestors"][0]["cosign"]["key"]["data"]}}},
    ]
    policy = load_one(document)
    assert evaluate(policy, pod("user/test:signed"), {SIGNED: {"a", "b"}}) == Outcome("pass", "success")
    assert status(evaluate(policy, pod("user/test:signed"), {SIGNED: {"a"}})) == "fail"


def test_a_verification_error_is_a_rule_error() -> None:
    policy = load_one(ivp())
    applies = applicable(policy, request_for(pod("user/test:signed")), pod("user/test:signed"))
    assert applies is not None
    prepared = prepare(policy, applies, pod("user/test:signed"), None, request={}, namespace_object=None)
    assert prepared is not None
    broken: dict[VerificationKey, SignatureOutcome] = {
        (SIGNED, "key"): SignatureOutcome("error", "registry answered 503")
    }
    assert conclude(prepared, broken) == Outcome("error", "validations[0]: registry answered 503")


def test_match_constraints_resource_rules_operations_and_exclusions() -> None:
    policy = load_one(ivp())
    assert evaluate(policy, pod("user/test:signed"), operation="UPDATE") is None  # only CREATE listed
    document = ivp()
    document["spec"]["matchConstraints"]["resourceRules"][0]["operations"] = ["*"]
    document["spec"]["matchConstraints"]["excludeResourceRules"] = [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}
    ]
    excluding = load_one(document)
    assert evaluate(excluding, pod("user/test:signed"), operation="CREATE") is not None
    assert evaluate(excluding, pod("user/test:signed"), operation="UPDATE") is None
    assert evaluate(policy, pod("user/test:signed"), subresource="status") is None
    document["spec"]["matchConstraints"]["resourceRules"][0]["resources"] = ["pods/*"]
    assert (
        evaluate(load_one(document), pod("user/test:signed"), subresource="ephemeralcontainers") is not None
    )


def test_namespace_and_object_selectors() -> None:
    document = ivp()
    document["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["prod"]}]
    }
    document["spec"]["matchConstraints"]["objectSelector"] = {"matchLabels": {"verify": "yes"}}
    policy = load_one(document)
    assert evaluate(policy, pod("user/test:signed", "prod", labels={"verify": "yes"})) is not None
    assert evaluate(policy, pod("user/test:signed", "dev", labels={"verify": "yes"})) is None
    assert evaluate(policy, pod("user/test:signed", "prod")) is None
    # Namespace labels the caller knows are used as they are.
    document["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"tier": "critical"}}
    labelled = load_one(document)
    obj = pod("user/test:signed", "any", labels={"verify": "yes"})
    assert evaluate(labelled, obj, labels={"tier": "critical"}) is not None
    assert evaluate(labelled, obj, labels={"tier": "batch"}) is None


def test_namespaced_policy_only_sees_its_namespace() -> None:
    document = ivp()
    document["kind"] = "NamespacedImageValidatingPolicy"
    document["metadata"]["namespace"] = "team-a"
    policy = load_one(document)
    assert evaluate(policy, pod("user/test:signed", "team-a")) is not None
    assert evaluate(policy, pod("user/test:signed", "team-b")) is None


def test_autogen_checks_pod_controllers_with_the_template_as_object() -> None:
    document = ivp(
        validations=[
            {
                "expression": "object.kind == 'Pod' && object.spec.containers.all(c, "
                "verifyImageSignatures(c.image, [attestors.key]) > 0)"
            }
        ]
    )
    policy = load_one(document)
    deployment = workload("Deployment", "d", "dev", "user/test:signed")
    applies = applicable(policy, request_for(deployment), deployment)
    assert applies is not None and applies.rule == "autogen-check"
    assert evaluate(policy, deployment) == Outcome("pass", "success")
    assert status(evaluate(policy, workload("Deployment", "d", "dev", "user/test:unsigned"))) == "fail"
    cronjob = workload("CronJob", "c", "dev", "user/test:signed")
    cron_applies = applicable(policy, request_for(cronjob), cronjob)
    assert cron_applies is not None and cron_applies.rule == "autogen-cronjob-check"
    assert evaluate(policy, cronjob) == Outcome("pass", "success")
    document["spec"]["autogen"] = {"podControllers": {"controllers": []}}
    assert evaluate(load_one(document), deployment) is None


def test_admission_disabled_policies_are_not_evaluated() -> None:
    policy = load_one(ivp(evaluation={"admission": {"enabled": False}}))
    assert evaluate(policy, pod("user/test:unsigned")) is None


def test_match_conditions_filter_and_their_errors_are_rule_errors() -> None:
    skip_kube_system = [{"name": "notSystem", "expression": "object.metadata.namespace != 'kube-system'"}]
    policy = load_one(ivp(matchConditions=skip_kube_system))
    assert evaluate(policy, pod("user/test:unsigned", "kube-system")) is None
    assert status(evaluate(policy, pod("user/test:unsigned", "dev"))) == "fail"
    broken = load_one(
        ivp(matchConditions=[{"name": "missing", "expression": "object.metadata.labels.team == 'a'"}])
    )
    result = evaluate(broken, pod("user/test:signed"))
    assert result is not None and result.status == "error"
    assert result.message == 'matchConditions.missing: Key not found in map : "labels"'


def test_optional_syntax_strings_extension_and_variables() -> None:
    policy = load_one(
        ivp(
            variables=[
                {"name": "team", "expression": "object.metadata.?labels.?team.orValue('none')"},
                {"name": "upper", "expression": "variables.team.upperAscii()"},
                {"name": "parts", "expression": "'a,b,c'.split(',')"},
            ],
            validations=[
                {
                    "expression": "variables.upper == 'NONE' && variables.parts.size() == 3 && "
                    "images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)"
                }
            ],
        )
    )
    assert evaluate(policy, pod("user/test:signed")) == Outcome("pass", "success")


def test_a_failing_variable_is_a_rule_error() -> None:
    policy = load_one(ivp(variables=[{"name": "bad", "expression": "object.spec.missing.field"}]))
    result = evaluate(policy, pod("user/test:signed"))
    assert result is not None and result.status == "error" and result.message.startswith("variables.bad: ")


def test_image_library() -> None:
    policy = load_one(
        ivp(
            validations=[
                {
                    "expression": "image('nginx').registry() == 'docker.io' && "
                    "image('nginx').repository() == 'library/nginx' && image('nginx').tag() == 'latest' && "
                    "image('ghcr.io/a/b@sha256:" + "c" * 64 + "').digest() == 'sha256:" + "c" * 64 + "' && "
                    "image('ghcr.io/a/b@sha256:" + "c" * 64 + "').containsDigest() && "
                    "isImage('ghcr.io/a/b:v1') && !isImage('UPPER CASE') && "
                    "images.containers.all(i, verifyImageSignatures(i, [attestors.key]) > 0)"
                },
            ]
        )
    )
    assert evaluate(policy, pod("user/test:signed")) == Outcome("pass", "success")
    invalid = load_one(ivp(validations=[{"expression": "image('NOT VALID').registry() == ''"}]))
    result = evaluate(invalid, pod("user/test:signed"))
    assert result is not None and result.status == "error" and "NOT VALID" in result.message


def test_match_image_references_glob_and_expression_and_skipped_images() -> None:
    by_glob = load_one(ivp(matchImageReferences=[{"glob": "ghcr.io/*"}]))
    # No image of the Pod matches: the policy is skipped.
    assert evaluate(by_glob, pod("user/test:unsigned")) == Outcome("skip", NO_IMAGES)
    by_expression = load_one(
        ivp(
            matchImageReferences=[
                {
                    "expression": "image.registry == 'docker.io' && image.tag == 'unsigned' && "
                    "ref.startsWith('user/')"
                }
            ]
        )
    )
    assert status(evaluate(by_expression, pod("user/test:unsigned"))) == "fail"
    assert evaluate(by_expression, pod("user/test:signed")) == Outcome("skip", NO_IMAGES)
    # An image matchImageReferences skips counts as verified when passed to verifyImageSignatures.
    two = pod("user/test:unsigned")
    two["spec"]["containers"].append({"name": "sidecar", "image": "ghcr.io/org/app:v1"})
    only_ghcr = load_one(ivp(matchImageReferences=[{"glob": "ghcr.io/*"}]))
    assert evaluate(only_ghcr, two, {"ghcr.io/org/app:v1": {"key"}}) == Outcome("pass", "success")


def test_image_extractors_for_other_kinds() -> None:
    policy = load_one(
        ivp(
            images=[{"name": "tasks", "expression": "object.spec.tasks.map(t, t.image)"}],
            validations=[
                {"expression": "images.tasks.all(i, verifyImageSignatures(i, [attestors.key]) > 0)"}
            ],
        )
    )
    tasks: list[dict[str, str]] = [{"image": "user/test:signed"}]
    pipeline: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": "dev"},
        "spec": {"containers": [], "tasks": tasks},
    }
    assert evaluate(policy, pipeline) == Outcome("pass", "success")
    tasks.append({"image": "user/test:unsigned"})
    assert status(evaluate(policy, pipeline)) == "fail"


def test_required_fails_images_no_validation_verified() -> None:
    lenient = [{"expression": "images.containers.size() > 0"}]
    assert evaluate(load_one(ivp(validations=lenient)), pod("user/test:signed")) == Outcome(
        "fail", f"image {SIGNED} not verified: no validation verified its signatures"
    )
    relaxed = load_one(ivp(validations=lenient, validationConfigurations={"required": False}))
    assert evaluate(relaxed, pod("user/test:signed")) == Outcome("pass", "success")


def test_a_huge_list_is_refused_before_evaluation() -> None:
    obj = pod("user/test:signed")
    obj["spec"]["containers"][0]["env"] = [{"name": f"V{i}", "value": "x"} for i in range(MAX_LIST_ITEMS + 1)]
    reading = [
        {"expression": "object.spec.containers.all(c, verifyImageSignatures(c.image, [attestors.key]) > 0)"}
    ]
    result = evaluate(load_one(ivp(validations=reading)), obj)
    assert result is not None and result.status == "error"
    assert f"object.spec.containers[0].env has {MAX_LIST_ITEMS + 1} items" in result.message
    # A policy that never reads the object is not refused for it.
    assert evaluate(load_one(ivp()), obj) == Outcome("pass", "success")


def test_an_expression_looping_too_long_is_stopped_as_a_rule_error() -> None:
    # A list at the bound, looped over in three nested comprehensions: 512^3 iterations if unbounded.
    looping = (
        "object.spec.containers[0].env.all(a, object.spec.containers[0].env.all(b, "
        "object.spec.containers[0].env.all(c, a.name != '')))"
    )
    policy = load_one(ivp(validations=[{"expression": looping}]))
    obj = pod("user/test:signed")
    obj["spec"]["containers"][0]["env"] = [{"name": f"V{i}", "value": "x"} for i in range(MAX_LIST_ITEMS)]
    started = time.perf_counter()
    result = evaluate(policy, obj)
    elapsed = time.perf_counter() - started
    assert result is not None and result.status == "error"
    assert "budget" in result.message
    assert elapsed < 5, f"the cost bound took {elapsed:.1f}s to stop the expression"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("object.spec.nothere == 1", "nothere"),
        ("object.spec.containers[5].image == ''", "index"),
        ("int(object.metadata.name) > 0", "cannot convert string to int"),
    ],
)
def test_runtime_errors_are_rule_errors_not_crashes(expression: str, problem: str) -> None:
    result = evaluate(load_one(ivp(validations=[{"expression": expression}])), pod("user/test:signed"))
    assert result is not None and result.status == "error"
    assert result.message.startswith("validations[0]: ") and problem in result.message.lower()


def test_unknown_namespace_labels_make_a_selector_policy_an_error_that_failure_policy_decides() -> None:
    document = ivp()
    document["spec"]["matchConstraints"]["namespaceSelector"] = {"matchLabels": {"tier": "critical"}}
    policy = load_one(document)
    obj = pod("user/test:signed", "fresh")
    attributes = dataclasses.replace(request_for(obj), namespace_labels_known=False)
    applies = applicable(policy, attributes, obj)
    assert applies is not None and applies.labels_unknown
    prepared = prepare(policy, applies, obj, None, request={"namespace": "fresh"}, namespace_object=None)
    assert prepared is not None and prepared.outcome is not None
    assert prepared.outcome.status == "error"
    assert "labels of namespace fresh are not loaded yet" in prepared.outcome.message
    # Without a namespaceSelector the labels do not matter.
    plain = load_one(ivp())
    assert applicable(plain, attributes, obj) == Applicable("check")


def test_conclusions_are_reusable_only_for_policies_that_read_no_request_data() -> None:
    image_only = load_one(ivp())
    reading = load_one(ivp(validations=[{"expression": "object.metadata.name != ''"}]))
    obj = pod("user/test:signed")
    keys = []
    for policy in (image_only, reading):
        applies = applicable(policy, request_for(obj), obj)
        assert applies is not None
        prepared = prepare(policy, applies, obj, None, request={}, namespace_object=None)
        assert prepared is not None
        keys.append(conclusion_key(prepared, outcomes(policy, {SIGNED: {"key"}})))
    assert keys[0] is not None and keys[1] is None
    assert {"images", "attestors", "verifyImageSignatures"} <= image_only.identifiers
    assert image_only.verifies_signatures and not image_only.verifies_attestations
    # Another verification outcome is another key.
    applies = applicable(image_only, request_for(obj), obj)
    assert applies is not None
    prepared = prepare(image_only, applies, obj, None, request={}, namespace_object=None)
    assert prepared is not None
    assert conclusion_key(prepared, outcomes(image_only, {})) != keys[0]


PROVENANCE = "https://slsa.dev/provenance/v1"


def test_attestation_functions_read_verified_statements() -> None:
    document = ivp(
        attestations=[{"name": "slsa", "intoto": {"type": PROVENANCE}}],
        validations=[
            {
                "expression": "images.containers.all(i, verifyAttestationSignatures(i, attestations.slsa, "
                "[attestors.key]) > 0 && extractPayload(i, attestations.slsa).buildDefinition.buildType == "
                "'https://example.com/build')",
                "message": "not built by the trusted builder",
            }
        ],
    )
    policy = load_one(document)
    assert policy.verifies_attestations and not policy.verifies_signatures
    obj = pod("user/test:signed")
    applies = applicable(policy, request_for(obj), obj)
    assert applies is not None
    prepared = prepare(policy, applies, obj, None, request={}, namespace_object=None)
    assert prepared is not None
    trusted = {"buildDefinition": {"buildType": "https://example.com/build"}}
    verified = SignatureOutcome("pass", "", "sha256:" + "a" * 64, (trusted,))
    assert conclude(prepared, {(SIGNED, "key", "slsa"): verified}) == Outcome("pass", "success")
    other = SignatureOutcome("pass", "", "sha256:" + "a" * 64, ({"buildDefinition": {"buildType": "x"}},))
    assert conclude(prepared, {(SIGNED, "key", "slsa"): other}) == Outcome(
        "fail", "not built by the trusted builder"
    )
    unsigned = SignatureOutcome("fail", "no attestation", "sha256:" + "a" * 64)
    assert conclude(prepared, {(SIGNED, "key", "slsa"): unsigned}).status == "fail"


def test_extract_payload_without_a_verified_attestation_is_an_error() -> None:
    document = ivp(
        attestations=[{"name": "slsa", "intoto": {"type": PROVENANCE}}],
        validations=[{"expression": "images.containers.all(i, extractPayload(i, attestations.slsa).x == 1)"}],
    )
    policy = load_one(document)
    obj = pod("user/test:signed")
    applies = applicable(policy, request_for(obj), obj)
    assert applies is not None
    prepared = prepare(policy, applies, obj, None, request={}, namespace_object=None)
    assert prepared is not None
    unsigned = SignatureOutcome("fail", "no attestation", "sha256:" + "a" * 64)
    result = conclude(prepared, {(SIGNED, "key", "slsa"): unsigned})
    assert result.status == "error"
    assert f"no verified slsa attestation for {SIGNED}" in result.message
