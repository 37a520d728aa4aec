"""Does a rule's ``match``/``exclude`` select a resource? Kyverno's semantics, without the API server.

Within one ``resources`` filter every given attribute must match (AND) and any value of a list attribute
may (OR). ``match.any`` needs one matching filter, ``match.all`` every filter; ``exclude.any`` excludes when
one filter matches, ``exclude.all`` only when every filter does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from exporter.policy.model import MatchBlock, ResourceFilter, Rule, frozen_mapping
from exporter.policy.selector import selector_matches
from exporter.policy.wildcard import wildcard_match

# The label the API server sets on every Namespace: all that is known of a namespace not seen yet.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d+)?|\*")


@dataclass(frozen=True)
class ResourceInfo:
    """What matching needs to know about the object under review.

    ``name`` is the object's name, or its ``generateName`` when it has none (as Kyverno does). ``namespace``
    is None for cluster-scoped objects. ``namespace_labels`` are the labels of the object's namespace (empty
    when cluster-scoped); ``namespace_labels_known`` is False while they are not loaded yet, and then a
    decision that needs them cannot be made (see :func:`exporter.policy.plan.plan_review`).
    ``subresource`` is the admission request's subresource, if any.
    """

    kind: str
    group: str
    version: str
    name: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    operation: str = "CREATE"
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    subresource: str = ""
    namespace_labels_known: bool = True

    @classmethod
    def from_object(
        cls,
        obj: Mapping[str, Any],
        operation: str = "CREATE",
        namespace_labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
        namespace_labels_known: bool = True,
    ) -> ResourceInfo:
        """Build from a Kubernetes object; ``namespace`` overrides ``metadata.namespace`` (admission
        requests carry the namespace separately from the object)."""
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        metadata = obj.get("metadata")
        meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
        return cls(
            kind=str(obj.get("kind", "")),
            group=group,
            version=version,
            name=str(meta.get("name") or meta.get("generateName") or ""),
            namespace=namespace if namespace is not None else (meta.get("namespace") or None),
            labels=frozen_mapping(_string_map(meta.get("labels"))),
            annotations=frozen_mapping(_string_map(meta.get("annotations"))),
            operation=operation,
            namespace_labels=frozen_mapping(namespace_labels),
            namespace_labels_known=namespace_labels_known,
        )


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


@lru_cache(maxsize=1024)
def parse_kind_selector(selector: str) -> tuple[str, str, str, str]:
    """Split a ``kinds`` entry into (group, version, kind, subresource) patterns, as Kyverno does:
    ``Pod`` -> any group/version; ``v1/Pod`` -> version v1, any group; ``apps/v1/Deployment``;
    ``Pod/exec`` or ``Pod.exec`` -> a subresource; ``*`` -> everything. Cached: every review of every
    policy asks again for the same few selectors."""
    parts = selector.split("/")
    parts = parts[:-1] + parts[-1].split(".")
    if len(parts) == 1:
        return "*", "*", parts[0], ""
    if len(parts) == 2:
        first, second = parts
        if first == "*" and second == "*":
            return "*", "*", "*", "*"
        if first == "*" and second.lower() == second:
            return "*", "*", "*", second
        if _VERSION.fullmatch(first):
            return "*", first, second, ""
        return "*", "*", first, second
    if len(parts) == 3:
        if _VERSION.fullmatch(parts[0]):
            return "*", parts[0], parts[1], parts[2]
        return parts[0], parts[1], parts[2], ""
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    return "", "", "", ""


def kind_matches(kinds: tuple[str, ...], resource: ResourceInfo) -> bool:
    """Whether any ``kinds`` entry selects the resource's group/version/kind (and subresource).

    A selector without a subresource matches the resource and all its subresources; Pod ephemeral
    containers are matched by Pod selectors either way.
    """
    for selector in kinds:
        group, version, kind, subresource = parse_kind_selector(selector)
        if not (
            wildcard_match(group, resource.group)
            and wildcard_match(version, resource.version)
            and wildcard_match(kind, resource.kind)
        ):
            continue
        if not subresource or wildcard_match(subresource, resource.subresource):
            return True
        if (resource.group, resource.version, resource.kind, resource.subresource) == (
            "",
            "v1",
            "Pod",
            "ephemeralcontainers",
        ):
            return True
    return False


def _annotations_match(expected: tuple[tuple[str, str], ...], actual: Mapping[str, str]) -> bool:
    return all(
        any(wildcard_match(key, k) and wildcard_match(value, v) for k, v in actual.items())
        for key, value in expected
    )


def filter_matches(flt: ResourceFilter, resource: ResourceInfo) -> bool:
    """Whether one ``resources`` filter selects the resource (every given attribute must match)."""
    if flt.kinds and not kind_matches(flt.kinds, resource):
        return False
    if flt.names and not any(wildcard_match(pattern, resource.name) for pattern in flt.names):
        return False
    if flt.namespaces:
        # For a Namespace object, Kyverno compares namespace patterns with the object's own name.
        namespace = resource.name if resource.kind == "Namespace" else (resource.namespace or "")
        if not any(wildcard_match(pattern, namespace) for pattern in flt.namespaces):
            return False
    if flt.operations and resource.operation not in flt.operations:
        return False
    if flt.annotations and not _annotations_match(flt.annotations, resource.annotations):
        return False
    if flt.selector is not None and not selector_matches(flt.selector, resource.labels):
        return False
    return not (
        flt.namespace_selector is not None
        and resource.kind != "Namespace"
        and not selector_matches(flt.namespace_selector, resource.namespace_labels)
    )


def _block_selects(block: MatchBlock, resource: ResourceInfo) -> bool:
    if block.any:
        return any(filter_matches(flt, resource) for flt in block.any)
    return bool(block.all) and all(filter_matches(flt, resource) for flt in block.all)


def uses_namespace_selector(block: MatchBlock | None) -> bool:
    """Whether a ``match``/``exclude`` block looks at namespace labels."""
    return block is not None and any(flt.namespace_selector is not None for flt in block.filters)


def rule_could_match(rule: Rule, resource: ResourceInfo) -> bool:
    """Whether ``rule`` applies to the resource for SOME labels of its namespace: ``match`` with its
    namespace selectors taken as matching, ``exclude`` ignored when it looks at namespace labels. For
    deciding while those labels are unknown."""
    match = MatchBlock(
        any=tuple(replace(flt, namespace_selector=None) for flt in rule.match.any),
        all=tuple(replace(flt, namespace_selector=None) for flt in rule.match.all),
    )
    if not _block_selects(match, resource):
        return False
    exclude = rule.exclude
    return exclude is None or uses_namespace_selector(exclude) or not _block_selects(exclude, resource)


def rule_matches(rule: Rule, resource: ResourceInfo) -> bool:
    """Whether ``rule`` applies to the resource: its ``match`` selects it and its ``exclude`` does not.

    Scoping a namespaced ``Policy`` to its own namespace is done by :func:`exporter.policy.plan.plan_review`.
    """
    if not _block_selects(rule.match, resource):
        return False
    return rule.exclude is None or not _block_selects(rule.exclude, resource)
