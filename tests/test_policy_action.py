"""Failure-action resolution: rule-level failureAction, overrides (namespaces, namespaceSelector), default."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.policy import KyvernoPolicy, effective_action
from tests.test_policy_builders import load, policy, rule, verification, walkthrough_policy


def _action(parsed: KyvernoPolicy, namespace: str | None, labels: dict[str, str] | None = None) -> str:
    first = parsed.rules[0]
    return effective_action(parsed, first, first.verify_images[0], namespace, labels or {})


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("dev", "Audit"), ("prod", "Enforce"), ("production", "Audit"), (None, "Audit")],
)
def test_walkthrough_policy_dev_audits_prod_enforces(namespace: str | None, expected: str) -> None:
    walkthrough = walkthrough_policy()
    for generated in walkthrough.rules:
        assert effective_action(walkthrough, generated, None, namespace, {}) == expected


def test_default_action_is_audit() -> None:
    assert _action(load(policy()), "dev") == "Audit"


def _overrides(*entries: dict[str, Any], default: str = "Audit") -> KyvernoPolicy:
    return load(policy(validationFailureAction=default, validationFailureActionOverrides=list(entries)))


def test_override_namespaces_accept_wildcards_and_first_match_wins() -> None:
    parsed = _overrides(
        {"action": "Enforce", "namespaces": ["prod-*", "payments"]},
        {"action": "Audit", "namespaces": ["*"]},
        default="Enforce",
    )
    assert _action(parsed, "prod-eu") == "Enforce"
    assert _action(parsed, "payments") == "Enforce"
    assert _action(parsed, "dev") == "Audit"


def test_override_namespace_selector_alone() -> None:
    parsed = _overrides({"action": "enforce", "namespaceSelector": {"matchLabels": {"env": "prod"}}})
    assert _action(parsed, "anything", {"env": "prod"}) == "Enforce"
    assert _action(parsed, "anything", {"env": "dev"}) == "Audit"
    assert _action(parsed, "anything") == "Audit"


def test_override_namespaces_and_selector_must_both_match() -> None:
    parsed = _overrides(
        {
            "action": "Enforce",
            "namespaces": ["team-*"],
            "namespaceSelector": {
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]
            },
        }
    )
    assert _action(parsed, "team-a", {"tier": "gold"}) == "Enforce"
    assert _action(parsed, "team-a", {"tier": "bronze"}) == "Audit"
    assert _action(parsed, "other", {"tier": "gold"}) == "Audit"


def test_cluster_scoped_resources_have_empty_namespace_for_overrides() -> None:
    parsed = _overrides({"action": "Enforce", "namespaces": ["*"]})
    assert _action(parsed, None) == "Enforce"


def test_rule_level_failure_action_beats_overrides_and_spec() -> None:
    audit_entry = rule(verifyImages=[verification(failureAction="Audit")])
    parsed = load(
        policy(
            audit_entry,
            validationFailureAction="Enforce",
            validationFailureActionOverrides=[{"action": "Enforce", "namespaces": ["prod"]}],
        )
    )
    assert _action(parsed, "prod") == "Audit"


def test_any_enforce_entry_makes_the_rule_enforce() -> None:
    mixed = rule(
        verifyImages=[
            verification(imageReferences=["a/*"], failureAction="Audit"),
            verification(imageReferences=["b/*"]),
            verification(imageReferences=["c/*"], failureAction="Enforce"),
        ]
    )
    parsed = load(policy(mixed))
    for entry in parsed.rules[0].verify_images:
        assert effective_action(parsed, parsed.rules[0], entry, "dev", {}) == "Enforce"


def test_first_explicit_entry_action_when_none_enforces() -> None:
    mixed = rule(verifyImages=[verification(imageReferences=["a/*"]), verification(failureAction="audit")])
    parsed = load(policy(mixed, validationFailureAction="Enforce"))
    assert _action(parsed, "dev") == "Audit"


def test_actions_are_per_rule() -> None:
    parsed = load(
        policy(
            rule("audited", verifyImages=[verification(failureAction="Audit")]),
            rule("plain"),
            validationFailureAction="Enforce",
            annotations={"pod-policies.kyverno.io/autogen-controllers": "none"},
        )
    )
    audited, plain = parsed.rules
    assert effective_action(parsed, audited, None, "dev", {}) == "Audit"
    assert effective_action(parsed, plain, None, "dev", {}) == "Enforce"


def test_verification_must_belong_to_the_rule() -> None:
    parsed = load(policy(rule("a", verifyImages=[verification(imageReferences=["x"])]), rule("b")))
    with pytest.raises(ValueError, match="does not belong"):
        effective_action(parsed, parsed.rules[1], parsed.rules[0].verify_images[0], "dev", {})
