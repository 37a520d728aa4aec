"""match/exclude semantics: kinds, names, namespaces, selectors, operations, annotations, any/all."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.policy import ResourceInfo, rule_matches
from exporter.policy.match import kind_matches, parse_kind_selector
from exporter.policy.wildcard import wildcard_match
from tests.test_policy_builders import load, policy, resource, rule

DEPLOYMENT = resource("Deployment", group="apps")
POD = resource()


def _matches(match: dict[str, Any], target: ResourceInfo, exclude: dict[str, Any] | None = None) -> bool:
    fields: dict[str, Any] = {"match": match}
    if exclude is not None:
        fields["exclude"] = exclude
    parsed = load(policy(rule(**fields), annotations={"pod-policies.kyverno.io/autogen-controllers": "none"}))
    (only,) = parsed.rules
    return rule_matches(only, target)


def _any(**resources: Any) -> dict[str, Any]:
    return {"any": [{"resources": resources}]}


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "", True),
        ("*", "a/b", True),
        ("prod-*", "prod-eu", True),
        ("prod-*", "dev-eu", False),
        ("?ev", "dev", True),
        ("?ev", "dev2", False),
        ("a*b*c", "aXbYc", True),
        ("[ab]", "a", False),
        ("[ab]", "[ab]", True),
        ("ghcr.io/*", "ghcr.io/org/app:1", True),
        ("exact", "exact", True),
        ("exact", "Exact", False),
    ],
)
def test_wildcards(pattern: str, name: str, expected: bool) -> None:
    assert wildcard_match(pattern, name) is expected


@pytest.mark.parametrize(
    ("selector", "parsed"),
    [
        ("Pod", ("*", "*", "Pod", "")),
        ("v1/Pod", ("*", "v1", "Pod", "")),
        ("apps/v1/Deployment", ("apps", "v1", "Deployment", "")),
        ("*", ("*", "*", "*", "")),
        ("*/*", ("*", "*", "*", "*")),
        ("Pod/exec", ("*", "*", "Pod", "exec")),
        ("Pod.exec", ("*", "*", "Pod", "exec")),
        ("v1/Pod/exec", ("*", "v1", "Pod", "exec")),
        ("apps/v1/Deployment/scale", ("apps", "v1", "Deployment", "scale")),
        ("networking.k8s.io/v1/Ingress", ("networking.k8s.io", "v1", "Ingress", "")),
    ],
)
def test_kind_selector_parsing(selector: str, parsed: tuple[str, str, str, str]) -> None:
    assert parse_kind_selector(selector) == parsed


@pytest.mark.parametrize(
    ("kinds", "target", "expected"),
    [
        (("Pod",), POD, True),
        (("v1/Pod",), POD, True),
        (("v2/Pod",), POD, False),
        (("*",), DEPLOYMENT, True),
        (("Deployment",), DEPLOYMENT, True),
        (("apps/v1/Deployment",), DEPLOYMENT, True),
        (("apps/*/Deployment",), DEPLOYMENT, True),
        (("batch/v1/Deployment",), DEPLOYMENT, False),
        (("Pod", "Deployment"), DEPLOYMENT, True),
        (("Deploy*",), DEPLOYMENT, True),
        (("Pod",), resource(subresource="exec"), True),
        (("Pod/exec",), POD, False),
        (("Pod/exec",), resource(subresource="exec"), True),
        (("Pod/log",), resource(subresource="ephemeralcontainers"), True),
        (("Deployment/status",), resource("Deployment", group="apps", subresource="scale"), False),
    ],
)
def test_kinds(kinds: tuple[str, ...], target: ResourceInfo, expected: bool) -> None:
    assert kind_matches(kinds, target) is expected


@pytest.mark.parametrize(
    ("resources", "target", "expected"),
    [
        ({"names": ["web*"]}, POD, True),
        ({"names": ["api", "w?b"]}, POD, True),
        ({"names": ["api"]}, POD, False),
        ({"name": "web"}, POD, True),
        (
            {"names": ["gen-*"]},
            ResourceInfo.from_object({"kind": "Pod", "metadata": {"generateName": "gen-"}}),
            True,
        ),
        ({"namespaces": ["dev", "prod"]}, POD, True),
        ({"namespaces": ["pro*"]}, POD, False),
        ({"namespaces": ["*"]}, resource(namespace=None), True),
        ({"namespaces": ["dev"]}, resource(namespace=None), False),
        ({"operations": ["UPDATE"]}, POD, False),
        ({"operations": ["CREATE", "UPDATE"]}, POD, True),
        ({"annotations": {"team": "a*"}}, resource(annotations={"team": "alpha"}), True),
        ({"annotations": {"team": "a*"}}, resource(annotations={"team": "beta"}), False),
        ({"annotations": {"*.io/owner": "*"}}, resource(annotations={"acme.io/owner": "x"}), True),
        ({"annotations": {"a": "1", "b": "2"}}, resource(annotations={"a": "1"}), False),
    ],
)
def test_filter_attributes(resources: dict[str, Any], target: ResourceInfo, expected: bool) -> None:
    assert _matches(_any(kinds=["Pod"], **resources), target) is expected


def test_namespace_patterns_compare_a_namespace_objects_own_name() -> None:
    namespace_object = resource("Namespace", namespace=None, name="prod")
    assert _matches(_any(kinds=["Namespace"], namespaces=["prod"]), namespace_object)
    assert not _matches(_any(kinds=["Namespace"], namespaces=["dev"]), namespace_object)


LABELS = {"app": "web", "tier": "frontend"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "api"}}, False),
        ({"matchLabels": {"app": "w*"}}, True),
        ({"matchLabels": {"ti*": "front*"}}, True),
        ({"matchLabels": {"ti*": "back*"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["api"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["web"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}],
            },
            False,
        ),
    ],
)
def test_selector_and_namespace_selector(selector: dict[str, Any], expected: bool) -> None:
    assert _matches(_any(kinds=["Pod"], selector=selector), resource(labels=LABELS)) is expected
    assert (
        _matches(_any(kinds=["Pod"], namespaceSelector=selector), resource(namespace_labels=LABELS))
        is expected
    )


def test_namespace_selector_is_not_applied_to_namespace_objects() -> None:
    target = resource("Namespace", namespace=None, name="dev")
    assert _matches(_any(kinds=["Namespace"], namespaceSelector={"matchLabels": {"x": "y"}}), target)


def test_match_any_needs_one_filter_and_all_needs_every_filter() -> None:
    by_kind = {"resources": {"kinds": ["Pod"]}}
    by_namespace = {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}
    assert _matches({"any": [by_kind, by_namespace]}, POD)
    assert not _matches({"all": [by_kind, by_namespace]}, POD)
    assert _matches({"all": [by_kind, by_namespace]}, resource(namespace="prod"))
    # legacy top-level resources behaves like a single filter
    assert _matches({"resources": {"kinds": ["Pod"], "namespaces": ["dev"]}}, POD)
    assert not _matches({"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}, POD)


def test_exclude_any_excludes_on_one_filter_exclude_all_only_on_every_filter() -> None:
    match = _any(kinds=["Pod"])
    system = {"resources": {"namespaces": ["kube-*"]}}
    labelled = {"resources": {"selector": {"matchLabels": {"trusted": "true"}}}}
    in_system = resource(namespace="kube-system")
    both = resource(namespace="kube-system", labels={"trusted": "true"})
    assert not _matches(match, in_system, exclude={"any": [system, labelled]})
    assert _matches(match, in_system, exclude={"all": [system, labelled]})
    assert not _matches(match, both, exclude={"all": [system, labelled]})
    assert _matches(match, POD, exclude={"any": [system, labelled]})
    assert not _matches(match, in_system, exclude={"resources": {"namespaces": ["kube-system"]}})


def test_resource_info_from_object() -> None:
    info = ResourceInfo.from_object(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "1"}, "annotations": {"b": "2"}},
        },
        operation="UPDATE",
        namespace_labels={"env": "prod"},
        namespace="prod",
    )
    assert (info.group, info.version, info.kind, info.name, info.namespace, info.operation) == (
        "apps",
        "v1",
        "Deployment",
        "web",
        "prod",
        "UPDATE",
    )
    assert (dict(info.labels), dict(info.annotations), dict(info.namespace_labels)) == (
        {"a": "1"},
        {"b": "2"},
        {"env": "prod"},
    )
    core = ResourceInfo.from_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert (core.group, core.version, core.namespace) == ("", "v1", None)
