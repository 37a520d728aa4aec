"""Label selectors evaluated the way Kyverno does for ``selector``, ``namespaceSelector`` and overrides.

Kyverno extends Kubernetes selectors in one way: ``matchLabels`` keys and values may contain wildcards. A
wildcard entry is replaced by the first actual label matching both key and value (so it matches), else by a
value no label has (so it does not). ``matchExpressions`` are plain Kubernetes semantics.
"""

from __future__ import annotations

from collections.abc import Mapping

from exporter.policy.model import LabelSelector, SelectorRequirement
from exporter.policy.wildcard import has_wildcard, wildcard_match


def _label_matches(key: str, value: str, labels: Mapping[str, str]) -> bool:
    if has_wildcard(key) or has_wildcard(value):
        return any(wildcard_match(key, k) and wildcard_match(value, v) for k, v in labels.items())
    return labels.get(key) == value


def _requirement_matches(requirement: SelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = requirement.key in labels
    if requirement.operator == "Exists":
        return present
    if requirement.operator == "DoesNotExist":
        return not present
    if requirement.operator == "In":
        return present and labels[requirement.key] in requirement.values
    # NotIn also selects objects that do not have the label at all.
    return not present or labels[requirement.key] not in requirement.values


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every term of ``selector`` (an empty selector matches everything)."""
    return all(_label_matches(key, value, labels) for key, value in selector.match_labels) and all(
        _requirement_matches(requirement, labels) for requirement in selector.match_expressions
    )
