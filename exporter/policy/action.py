"""Which failure action (Audit or Enforce) applies to a rule for a resource in a given namespace.

Kyverno's resolution order, per rule:

1. the rule's own action: for a ``verifyImages`` rule, Enforce if any of its entries says
   ``failureAction: Enforce``, else the first entry's explicit ``failureAction``;
2. the first matching ``spec.validationFailureActionOverrides`` entry;
3. ``spec.validationFailureAction`` (default Audit).
"""

from __future__ import annotations

from collections.abc import Mapping

from exporter.policy.model import Action, ActionOverride, ImageVerification, KyvernoPolicy, Rule
from exporter.policy.selector import selector_matches
from exporter.policy.wildcard import wildcard_match


def rule_action(rule: Rule) -> Action | None:
    """The action the rule sets itself through its ``verifyImages[].failureAction`` fields, if any."""
    explicit = [v.failure_action for v in rule.verify_images if v.failure_action is not None]
    if "Enforce" in explicit:
        return "Enforce"
    return explicit[0] if explicit else None


def override_applies(
    override: ActionOverride, namespace: str | None, namespace_labels: Mapping[str, str]
) -> bool:
    """Whether a ``validationFailureActionOverrides`` entry covers the namespace.

    With ``namespaces``: one pattern must match and, when also given, the ``namespaceSelector`` too.
    Without: the ``namespaceSelector`` alone decides. Cluster-scoped resources have namespace ``""``.
    """
    if not override.namespaces:
        return override.namespace_selector is not None and selector_matches(
            override.namespace_selector, namespace_labels
        )
    if not any(wildcard_match(pattern, namespace or "") for pattern in override.namespaces):
        return False
    return override.namespace_selector is None or selector_matches(
        override.namespace_selector, namespace_labels
    )


def effective_action(
    policy: KyvernoPolicy,
    rule: Rule,
    verification: ImageVerification | None,
    namespace: str | None,
    namespace_labels: Mapping[str, str],
) -> Action:
    """The action for ``rule`` of ``policy`` on a resource in ``namespace``.

    Kyverno decides per rule, not per ``verifyImages`` entry, so ``verification`` only has to belong to
    ``rule``: an entry's own ``failureAction`` counts through :func:`rule_action` (any Enforce entry makes
    the whole rule Enforce). It is accepted so call sites can pass the check they are deciding about.
    """
    if verification is not None and verification not in rule.verify_images:
        raise ValueError(f"verification does not belong to rule {rule.name!r}")
    own = rule_action(rule)
    if own is not None:
        return own
    for override in policy.overrides:
        if override_applies(override, namespace, namespace_labels):
            return override.action
    return policy.validation_failure_action


def possible_actions(policy: KyvernoPolicy, rule: Rule, namespace: str | None) -> set[Action]:
    """Every action :func:`effective_action` could return for ``rule`` in ``namespace`` whatever the
    namespace's labels are: one action when labels do not matter, both when a ``namespaceSelector``
    override decides. For deciding while the labels are not loaded."""
    own = rule_action(rule)
    if own is not None:
        return {own}
    possible: set[Action] = set()
    for override in policy.overrides:
        names_match = not override.namespaces or any(
            wildcard_match(pattern, namespace or "") for pattern in override.namespaces
        )
        if not names_match:
            continue
        if override.namespace_selector is None:
            return possible | {override.action}
        possible.add(override.action)
    return possible | {policy.validation_failure_action}
