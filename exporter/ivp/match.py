"""Which requests an ImageValidatingPolicy sees: ``matchConstraints`` as the Kubernetes API server applies
them, plus Kyverno's autogen for Pod controllers.

A policy matching ``pods`` also checks the Pod templates of the controllers in ``autogen.podControllers``
(default: all), exactly as ClusterPolicy autogen does (:mod:`exporter.policy.autogen`): the expressions
then see the template as ``object`` (Kyverno rewrites ``object.spec`` to the template's spec), and the
result is reported under ``autogen-<policy>`` / ``autogen-cronjob-<policy>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.ivp.model import ImageValidatingPolicy, MatchConstraints, ResourceRule
from exporter.policy.autogen import CONTROLLER_GVKS, CRONJOB
from exporter.policy.selector import selector_matches

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_POD = ("", "v1", "pods")


def _controller_resource(kind: str, gvk: str) -> tuple[str, str, str]:
    """``apps/v1/Deployment`` -> (``apps``, ``v1``, ``deployments``); the core group is ``""``."""
    parts = gvk.split("/")
    return (parts[0] if len(parts) == 3 else "", parts[-2], f"{kind.lower()}s")


# kind -> (group, version, resource) of the Pod controllers autogen covers.
CONTROLLER_RESOURCES: Mapping[str, tuple[str, str, str]] = {
    kind: _controller_resource(kind, gvk) for kind, gvk in CONTROLLER_GVKS.items()
}


@dataclass(frozen=True)
class RequestAttributes:
    """What ``matchConstraints`` look at: the request's resource, operation, namespace and labels."""

    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    operation: str
    name: str
    namespace: str
    object_labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]
    namespace_labels_known: bool = True


@dataclass(frozen=True)
class Applicable:
    """The policy applies: report under ``rule``; ``pod_template`` is the path of the Pod template the
    expressions see as ``object`` (empty: the object itself). ``labels_unknown``: it applies only if its
    ``namespaceSelector`` matches, and the namespace's labels are not loaded yet."""

    rule: str
    pod_template: tuple[str, ...] = ()
    labels_unknown: bool = False


def _any(patterns: tuple[str, ...], value: str) -> bool:
    return "*" in patterns or value in patterns


def _resource_matches(patterns: tuple[str, ...], resource: str, subresource: str) -> bool:
    full = f"{resource}/{subresource}" if subresource else resource
    for pattern in patterns:
        if pattern in ("*", full) or (pattern == "*/*" and subresource):
            return True
        base, _, sub = pattern.partition("/")
        if (
            sub
            and subresource
            and ((base == "*" and sub == subresource) or (base == resource and sub == "*"))
        ):
            return True
    return False


def rule_matches(rule: ResourceRule, request: RequestAttributes) -> bool:
    """Kubernetes ``NamedRuleWithOperations`` semantics (``*`` wildcards, ``resource/subresource``)."""
    return (
        _any(rule.api_groups, request.group)
        and _any(rule.api_versions, request.version)
        and _any(rule.operations, request.operation)
        and _resource_matches(rule.resources, request.resource, request.subresource)
        and (not rule.resource_names or request.name in rule.resource_names)
    )


def _namespace_labels(request: RequestAttributes) -> Mapping[str, str]:
    """The namespace's labels; the API server sets ``kubernetes.io/metadata.name`` on every namespace."""
    if NAMESPACE_NAME_LABEL in request.namespace_labels:
        return request.namespace_labels
    return {**request.namespace_labels, NAMESPACE_NAME_LABEL: request.namespace}


def constraints_match(constraints: MatchConstraints, request: RequestAttributes) -> bool:
    """Whether the request is selected: a resource rule matches, no exclude rule does, and the namespace and
    object selectors match (cluster-scoped objects pass any namespace selector; while the namespace's
    labels are not loaded, the namespace selector is not consulted - see :func:`applicable`)."""
    if not any(rule_matches(rule, request) for rule in constraints.resource_rules):
        return False
    if any(rule_matches(rule, request) for rule in constraints.exclude_resource_rules):
        return False
    if (
        constraints.namespace_selector is not None
        and request.namespace
        and request.namespace_labels_known
        and not selector_matches(constraints.namespace_selector, _namespace_labels(request))
    ):
        return False
    return constraints.object_selector is None or selector_matches(
        constraints.object_selector, request.object_labels
    )


def _as_pod(request: RequestAttributes, template_labels: Mapping[str, str]) -> RequestAttributes:
    group, version, resource = _POD
    return RequestAttributes(
        group, version, resource, "", "Pod", request.operation, request.name, request.namespace,
        template_labels, request.namespace_labels, request.namespace_labels_known,
    )  # fmt: skip


def template_path(kind: str) -> tuple[str, ...]:
    """Where a controller kind keeps its Pod template."""
    if kind == CRONJOB:
        return ("spec", "jobTemplate", "spec", "template")
    return ("spec", "template")


def _template_labels(obj: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, str]:
    node: Any = obj
    for key in (*path, "metadata", "labels"):  # dict checks: decoded JSON, and ABC checks are slow here
        node = node.get(key) if isinstance(node, dict) else None
    return {str(k): str(v) for k, v in node.items()} if isinstance(node, dict) else {}


def applicable(
    policy: ImageValidatingPolicy, request: RequestAttributes, obj: Mapping[str, Any]
) -> Applicable | None:
    """Whether (and as what) ``policy`` checks the request, or None. A namespaced policy only sees its own
    namespace; ``evaluation.admission.enabled: false`` turns admission checks off."""
    if not policy.admission:
        return None
    if policy.namespace is not None and request.namespace != policy.namespace:
        return None
    unknown = (
        policy.match_constraints.namespace_selector is not None
        and bool(request.namespace)
        and not request.namespace_labels_known
    )
    if constraints_match(policy.match_constraints, request):
        return Applicable(policy.name, labels_unknown=unknown)
    controller = CONTROLLER_RESOURCES.get(request.kind)
    if (
        request.kind not in policy.autogen_controllers
        or controller is None
        or (request.group, request.resource) != (controller[0], controller[2])
        or request.subresource
    ):
        return None
    path = template_path(request.kind)
    if not constraints_match(policy.match_constraints, _as_pod(request, _template_labels(obj, path))):
        return None
    prefix = "autogen-cronjob" if request.kind == CRONJOB else "autogen"
    return Applicable(f"{prefix}-{policy.name}", path, labels_unknown=unknown)
