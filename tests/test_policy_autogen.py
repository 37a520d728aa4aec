"""Autogen: which rules Kyverno generates for Pod controllers, their names and kinds."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.policy import rule_matches
from tests.test_policy_builders import AUTOGEN_ANNOTATION as ANNOTATION
from tests.test_policy_builders import CONTROLLER_KINDS as ALL_CONTROLLERS
from tests.test_policy_builders import load, load_error, policy, resource, rule


def _rule_names(*rules: dict[str, Any], annotation: str | None = None) -> list[str]:
    annotations = None if annotation is None else {ANNOTATION: annotation}
    return [r.name for r in load(policy(*rules, annotations=annotations)).rules]


@pytest.mark.parametrize(
    ("annotation", "names", "controller_kinds"),
    [
        (None, ["check", "autogen-check", "autogen-cronjob-check"], ALL_CONTROLLERS),
        ("all", ["check", "autogen-check", "autogen-cronjob-check"], ALL_CONTROLLERS),
        ("none", ["check"], None),
        ("Deployment,StatefulSet", ["check", "autogen-check"], ("apps/v1/Deployment", "apps/v1/StatefulSet")),
        ("StatefulSet,Deployment", ["check", "autogen-check"], ("apps/v1/Deployment", "apps/v1/StatefulSet")),
        ("CronJob", ["check", "autogen-cronjob-check"], None),
        ("Job,CronJob", ["check", "autogen-check", "autogen-cronjob-check"], ("batch/v1/Job",)),
    ],
)
def test_annotation_variants(annotation: str | None, names: list[str], controller_kinds: Any) -> None:
    annotations = None if annotation is None else {ANNOTATION: annotation}
    rules = load(policy(annotations=annotations)).rules
    assert [r.name for r in rules] == names
    controller_rule = next((r for r in rules if r.name == "autogen-check"), None)
    assert (controller_rule.match.any[0].kinds if controller_rule else None) == controller_kinds


@pytest.mark.parametrize("annotation", ["Deployment, Job", "Deployments", "", "Pod"])
def test_bad_annotation_values_are_load_errors(annotation: str) -> None:
    error = load_error(policy(annotations={ANNOTATION: annotation}))
    assert ANNOTATION in str(error)


@pytest.mark.parametrize(
    "resources",
    [
        {"kinds": ["Pod"], "names": ["web"]},
        {"kinds": ["Pod"], "name": "web"},
        {"kinds": ["Pod"], "selector": {"matchLabels": {"app": "web"}}},
        {"kinds": ["Pod"], "selector": {}},
        {"kinds": ["Pod"], "annotations": {"a": "b"}},
        {"kinds": ["Pod", "Service"]},
    ],
)
def test_filters_that_disable_autogen_for_the_whole_policy(resources: dict[str, Any]) -> None:
    blocking = rule("blocking", match={"any": [{"resources": resources}]})
    assert _rule_names(rule("plain"), blocking) == ["plain", "blocking"]


def test_exclude_with_names_also_disables_autogen() -> None:
    excluded = rule(exclude={"any": [{"resources": {"names": ["debug-*"]}}]})
    assert _rule_names(excluded) == ["check"]


def test_only_rules_on_pods_are_copied() -> None:
    names = _rule_names(rule("pods"), rule("services", kinds=("Service",)))
    assert names == ["pods", "services", "autogen-pods", "autogen-cronjob-pods"]


def test_no_pod_or_controller_kind_means_no_autogen() -> None:
    assert _rule_names(rule("svc", kinds=("Service",))) == ["svc"]


def test_versioned_pod_kind_is_copied_but_only_plain_kinds_request_autogen() -> None:
    # Kyverno's "needed" check compares kind strings literally; "v1/Pod" alone does not trigger autogen...
    assert _rule_names(rule("v", kinds=("v1/Pod",))) == ["v"]
    # ...but with another rule naming Pod, a v1/Pod rule is copied too (ContainsKind parses it).
    assert _rule_names(rule("v", kinds=("v1/Pod",)), rule("p")) == [
        "v",
        "p",
        "autogen-v",
        "autogen-cronjob-v",
        "autogen-p",
        "autogen-cronjob-p",
    ]


def test_exclude_kinds_must_name_pod() -> None:
    excludes_deployments = rule(exclude={"any": [{"resources": {"kinds": ["Deployment"]}}]})
    assert _rule_names(excludes_deployments) == ["check"]
    excludes_pods = rule(exclude={"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["kube-system"]}}]})
    rules = load(policy(excludes_pods)).rules
    assert [r.name for r in rules] == ["check", "autogen-check", "autogen-cronjob-check"]
    assert rules[1].exclude is not None and rules[1].exclude.any[0].kinds == ALL_CONTROLLERS
    assert rules[2].exclude is not None and rules[2].exclude.any[0].kinds == ("batch/v1/CronJob",)


def test_exclude_without_kinds_is_kept_and_still_applies() -> None:
    no_kinds = rule(exclude={"any": [{"resources": {"namespaces": ["kube-system"]}}]})
    controller_rule = load(policy(no_kinds)).rules[1]
    assert controller_rule.exclude is not None and controller_rule.exclude.any[0].kinds == ()
    deployment = resource("Deployment", group="apps", namespace="kube-system")
    assert not rule_matches(controller_rule, deployment)
    assert rule_matches(controller_rule, resource("Deployment", group="apps"))


def test_cronjob_rule_retargets_every_filter_controller_rule_only_pod_filters() -> None:
    mixed = rule(match={"any": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"kinds": ["Service"]}}]})
    rules = load(policy(mixed)).rules
    assert [f.kinds for f in rules[1].match.any] == [ALL_CONTROLLERS, ("Service",)]
    assert [f.kinds for f in rules[2].match.any] == [("batch/v1/CronJob",), ("batch/v1/CronJob",)]


def test_generated_rules_match_their_controllers() -> None:
    rules = load(policy()).rules
    kinds = {
        "Deployment": "apps",
        "StatefulSet": "apps",
        "DaemonSet": "apps",
        "ReplicaSet": "apps",
        "Job": "batch",
        "ReplicationController": "",
    }
    for kind, group in kinds.items():
        target = resource(kind, group=group)
        assert [r.name for r in rules if rule_matches(r, target)] == ["autogen-check"], kind
    cronjob = resource("CronJob", group="batch")
    assert [r.name for r in rules if rule_matches(r, cronjob)] == ["autogen-cronjob-check"]
    assert [r.name for r in rules if rule_matches(r, resource())] == ["check"]


def test_long_rule_names_are_truncated_to_63_characters() -> None:
    name = "r" * 60
    names = _rule_names(rule(name))
    assert names[1:] == [("autogen-" + name)[:63], ("autogen-cronjob-" + name)[:63]]


def test_generated_name_colliding_with_a_rule_is_an_error() -> None:
    long_a = "a" * 63
    long_b = "a" * 62 + "b"
    error = load_error(policy(rule(long_a), rule(long_b)))
    assert "duplicate rule name" in str(error)
