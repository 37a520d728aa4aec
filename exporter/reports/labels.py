"""Label modes: which labels the result families carry, and how a result's label values are read.

Modelled on Policy Reporter's metric modes: ``default`` aggregates by namespace, policy, rule, status,
severity, category, source and resource kind; ``detailed`` adds the resource ``name`` and the ``report``
(one series per result: high cardinality, opt in knowingly); ``custom`` takes a list of fields, including
``label:<key>`` (a label of the report object) and ``property:<key>`` (a result property). Custom names are
sanitised to Prometheus label rules (``label:app.kubernetes.io/name`` -> ``label_app_kubernetes_io_name``);
two entries that sanitise to the same name get ``_2``, ``_3`` ... suffixes so no series is silently merged.

The cluster-scoped family never has a ``namespace`` label.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from exporter.metrics import CLUSTER_POLICY_REPORT_RESULTS, POLICY_REPORT_RESULTS
from exporter.reports.model import Report, ResourceRef, Result

LabelMode = Literal["default", "detailed", "custom"]
LABEL_MODES: tuple[LabelMode, ...] = ("default", "detailed", "custom")

Getter = Callable[[Report, Result, ResourceRef], str]
Extractor = Callable[[Report, Result, ResourceRef], tuple[str, ...]]

# Plain fields a custom label list may name, and where each value comes from.
FIELDS: dict[str, Getter] = {
    "namespace": lambda rep, res, ref: rep.namespace,
    "policy": lambda rep, res, ref: res.policy,
    "rule": lambda rep, res, ref: res.rule,
    "status": lambda rep, res, ref: res.status,
    "severity": lambda rep, res, ref: res.severity,
    "category": lambda rep, res, ref: res.category,
    "source": lambda rep, res, ref: res.source,
    "kind": lambda rep, res, ref: ref.kind,
    "name": lambda rep, res, ref: ref.name,
    "resource_namespace": lambda rep, res, ref: ref.namespace,
    "resource_api_version": lambda rep, res, ref: ref.api_version,
    "report": lambda rep, res, ref: rep.name,
    "scored": lambda rep, res, ref: "true" if res.scored else "false",
}
REPORT_LABEL_PREFIX = "label:"
PROPERTY_PREFIX = "property:"
# Bound on custom labels: every extra label multiplies cardinality.
MAX_CUSTOM_LABELS = 16

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class LabelConfigError(ValueError):
    """A custom label list names something that cannot become a label."""


def sanitize_label_name(raw: str) -> str:
    """Map any text to a valid Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``, no ``__`` prefix)."""
    name = _INVALID_LABEL_CHARS.sub("_", raw)
    if not name or name[0].isdigit():
        name = "_" + name
    while name.startswith("__"):
        name = name[1:]
    return name if name != "_" else "label"


@dataclass(frozen=True)
class LabelScheme:
    """Label names of the two result families and the functions that read their values."""

    namespaced_names: tuple[str, ...]
    cluster_names: tuple[str, ...]
    namespaced: Extractor
    cluster: Extractor


def build_scheme(mode: LabelMode, custom_labels: Sequence[str] = ()) -> LabelScheme:
    """The label scheme for a mode; raises :class:`LabelConfigError` for an unusable custom list."""
    if mode == "default":
        return LabelScheme(
            POLICY_REPORT_RESULTS.labels, CLUSTER_POLICY_REPORT_RESULTS.labels, _default, _default_cluster
        )
    if mode == "detailed":
        return LabelScheme(
            (*POLICY_REPORT_RESULTS.labels, "name", "report"),
            (*CLUSTER_POLICY_REPORT_RESULTS.labels, "name", "report"),
            _detailed,
            _detailed_cluster,
        )
    if mode == "custom":
        return _custom(custom_labels)
    raise LabelConfigError(f"label mode {mode!r} is not one of {', '.join(LABEL_MODES)}")


def _default(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
    return (rep.namespace, res.policy, res.rule, res.status, res.severity, res.category, res.source, ref.kind)


def _default_cluster(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
    return (res.policy, res.rule, res.status, res.severity, res.category, res.source, ref.kind)


def _detailed(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
    return (*_default(rep, res, ref), ref.name, rep.name)


def _detailed_cluster(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
    return (*_default_cluster(rep, res, ref), ref.name, rep.name)


def _custom(custom_labels: Sequence[str]) -> LabelScheme:
    entries = list(dict.fromkeys(label.strip() for label in custom_labels if label.strip()))
    if not entries:
        raise LabelConfigError(
            f"label mode 'custom' needs at least one label: any of {', '.join(FIELDS)}, "
            f"{REPORT_LABEL_PREFIX}<key> or {PROPERTY_PREFIX}<key>"
        )
    if len(entries) > MAX_CUSTOM_LABELS:
        raise LabelConfigError(f"at most {MAX_CUSTOM_LABELS} custom labels are allowed, got {len(entries)}")
    names: list[str] = []
    getters: list[Getter] = []
    for entry in entries:
        names.append(_unique(sanitize_label_name(entry.replace(":", "_", 1)), names))
        getters.append(_getter(entry))
    cluster = [i for i, name in enumerate(entries) if name != "namespace"]
    cluster_getters = [getters[i] for i in cluster]

    def namespaced(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
        return tuple([get(rep, res, ref) for get in getters])

    def cluster_values(rep: Report, res: Result, ref: ResourceRef) -> tuple[str, ...]:
        return tuple([get(rep, res, ref) for get in cluster_getters])

    return LabelScheme(tuple(names), tuple(names[i] for i in cluster), namespaced, cluster_values)


def _unique(name: str, taken: list[str]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate = f"{name}_{suffix}"
        suffix += 1
    return candidate


def _getter(entry: str) -> Getter:
    if entry.startswith(REPORT_LABEL_PREFIX) and len(entry) > len(REPORT_LABEL_PREFIX):
        key = entry[len(REPORT_LABEL_PREFIX) :]
        return lambda rep, res, ref: rep.labels.get(key, "")
    if entry.startswith(PROPERTY_PREFIX) and len(entry) > len(PROPERTY_PREFIX):
        key = entry[len(PROPERTY_PREFIX) :]
        return lambda rep, res, ref: res.properties.get(key, "")
    getter = FIELDS.get(entry)
    if getter is None:
        raise LabelConfigError(
            f"unknown custom label {entry!r}: use one of {', '.join(FIELDS)}, "
            f"{REPORT_LABEL_PREFIX}<key> or {PROPERTY_PREFIX}<key>"
        )
    return getter
