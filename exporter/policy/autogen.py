"""Kyverno's rule auto-generation for Pod controllers.

A rule written for Pods also covers the Pod templates of controllers: ``autogen-<rule>`` matches
Deployment, StatefulSet, DaemonSet, Job, ReplicaSet and ReplicationController, ``autogen-cronjob-<rule>``
matches CronJob. As in Kyverno:

* the ``pod-policies.kyverno.io/autogen-controllers`` annotation selects the controllers (absent: all seven;
  ``none``: no autogen; ``all`` is accepted as in older Kyverno);
* the whole policy gets no autogen rules if any rule's filter uses ``names``/``name``, ``selector`` or
  ``annotations`` (they describe Pods, not their controllers), mixes ``Pod`` with other kinds in one filter,
  or if no filter names ``Pod`` or a controller kind at all;
* only rules whose ``match`` names ``Pod`` (and whose ``exclude``, if it has kinds, names ``Pod``) are copied;
  in the copy, filters naming ``Pod`` get the controller kinds (``apps/v1/Deployment`` ...); in the CronJob
  copy every filter gets ``batch/v1/CronJob``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from exporter.policy.match import parse_kind_selector
from exporter.policy.model import MatchBlock, ResourceFilter, Rule

CRONJOB = "CronJob"
CONTROLLER_GVKS: dict[str, str] = {
    "DaemonSet": "apps/v1/DaemonSet",
    "Deployment": "apps/v1/Deployment",
    "Job": "batch/v1/Job",
    "StatefulSet": "apps/v1/StatefulSet",
    "ReplicaSet": "apps/v1/ReplicaSet",
    "ReplicationController": "v1/ReplicationController",
    CRONJOB: "batch/v1/CronJob",
}
DEFAULT_CONTROLLERS = frozenset(CONTROLLER_GVKS)
_POD_OR_CONTROLLER = DEFAULT_CONTROLLERS | {"Pod"}
_MAX_RULE_NAME = 63


def parse_controllers_annotation(value: str | None) -> frozenset[str]:
    """The controllers requested by the annotation value (None: absent). Raises ValueError for values Kyverno
    would silently turn into useless rules (unknown kinds, spaces, empty)."""
    if value is None or value == "all":
        return DEFAULT_CONTROLLERS
    if value == "none":
        return frozenset()
    requested = value.split(",")
    unknown = [kind for kind in requested if kind not in DEFAULT_CONTROLLERS]
    if unknown:
        raise ValueError(
            f"unknown controller kind(s) {', '.join(repr(k) for k in unknown)}; use a comma-separated list "
            f"without spaces of {', '.join(sorted(DEFAULT_CONTROLLERS))}, or 'all' or 'none'"
        )
    return frozenset(requested)


def _kind_of(selector: str) -> str:
    """The kind part of a ``kinds`` entry without subresource (Kyverno's ContainsKind)."""
    return parse_kind_selector(selector)[2]


def _names_pod(kinds: Iterable[str]) -> bool:
    return any(_kind_of(kind) == "Pod" for kind in kinds)


def _filters(rule: Rule) -> tuple[ResourceFilter, ...]:
    return rule.match.filters + (rule.exclude.filters if rule.exclude else ())


def policy_supports_autogen(rules: Iterable[Rule]) -> bool:
    """Kyverno's CanAutoGen: whether the policy's rules allow generating controller rules at all."""
    needed = False
    for rule in rules:
        for flt in _filters(rule):
            if flt.names or flt.selector is not None or flt.annotations:
                return False
            if len(flt.kinds) > 1 and _names_pod(flt.kinds):
                return False
            needed = needed or any(kind in _POD_OR_CONTROLLER for kind in flt.kinds)
    return needed


def _autogen_name(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"[:_MAX_RULE_NAME]


def _retarget(block: MatchBlock, kinds: tuple[str, ...], only_pod_filters: bool) -> MatchBlock:
    def convert(flt: ResourceFilter) -> ResourceFilter:
        if only_pod_filters and not _names_pod(flt.kinds):
            return flt
        return replace(flt, kinds=kinds)

    return MatchBlock(any=tuple(map(convert, block.any)), all=tuple(map(convert, block.all)))


def _eligible(rule: Rule) -> bool:
    if not _names_pod(flt_kind for flt in rule.match.filters for flt_kind in flt.kinds):
        return False
    exclude_kinds = [kind for flt in rule.exclude.filters for kind in flt.kinds] if rule.exclude else []
    return not exclude_kinds or _names_pod(exclude_kinds)


def _autogen_rule(rule: Rule, prefix: str, kinds: tuple[str, ...], only_pod_filters: bool) -> Rule:
    """``rule`` retargeted from Pods to ``kinds``, named ``<prefix>-<rule>``."""
    return replace(
        rule,
        name=_autogen_name(prefix, rule.name),
        match=_retarget(rule.match, kinds, only_pod_filters=only_pod_filters),
        exclude=_retarget(rule.exclude, kinds, only_pod_filters=only_pod_filters) if rule.exclude else None,
        is_autogen=True,
        autogen_of=rule.name,
    )


def _controller_rule(rule: Rule, controllers: frozenset[str]) -> Rule:
    kinds = tuple(CONTROLLER_GVKS[kind] for kind in sorted(controllers - {CRONJOB}))
    return _autogen_rule(rule, "autogen", kinds, only_pod_filters=True)


def _cronjob_rule(rule: Rule) -> Rule:
    return _autogen_rule(rule, "autogen-cronjob", (CONTROLLER_GVKS[CRONJOB],), only_pod_filters=False)


def with_autogen_rules(rules: tuple[Rule, ...], controllers: frozenset[str]) -> tuple[Rule, ...]:
    """``rules`` followed by the generated rules: for each eligible rule, ``autogen-<rule>`` (unless only
    CronJob is requested) then ``autogen-cronjob-<rule>`` (when CronJob is requested)."""
    if not controllers or not policy_supports_autogen(rules):
        return rules
    generated: list[Rule] = []
    for rule in filter(_eligible, rules):
        if controllers - {CRONJOB}:
            generated.append(_controller_rule(rule, controllers))
        if CRONJOB in controllers:
            generated.append(_cronjob_rule(rule))
    return rules + tuple(generated)
