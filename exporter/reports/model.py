"""Compact, validated form of PolicyReports and openreports Reports.

Four report kinds share one shape: ``wgpolicyk8s.io/v1alpha2`` PolicyReport/ClusterPolicyReport and
``openreports.io/v1alpha1`` Report/ClusterReport. The watcher holds every report in the cluster, so results
are slotted objects whose repeated strings (policy, rule, namespace, kind, ...) are interned: at 10 000
reports x 50 results the same few hundred strings are shared instead of copied half a million times.

Parsing is defensive: a report without a name or with ``results`` that is not a list raises
:class:`ReportParseError` naming the problem; a single bad result is dropped and named in
``Report.problems`` while the rest of the report still counts.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("pass", "fail", "warn", "error", "skip")
# Statuses whose arrival is a new violation worth counting in the transitions counter.
VIOLATION_STATUSES = frozenset({"fail", "warn", "error"})
_STATUS_SET = frozenset(STATUSES)
# Bound on how many dropped-result reasons one report keeps; the count of dropped results is exact.
MAX_PROBLEMS = 5

_intern = sys.intern


@dataclass(frozen=True)
class ReportApi:
    """One watched report kind: where it lives in the API and whether it is namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def name(self) -> str:
        """The ``api`` label value: group/version/kind."""
        return f"{self.group}/{self.version}/{self.kind}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


POLICY_REPORT = ReportApi("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports", True)
CLUSTER_POLICY_REPORT = ReportApi(
    "wgpolicyk8s.io", "v1alpha2", "ClusterPolicyReport", "clusterpolicyreports", False
)
OPENREPORTS_REPORT = ReportApi("openreports.io", "v1alpha1", "Report", "reports", True)
OPENREPORTS_CLUSTER_REPORT = ReportApi("openreports.io", "v1alpha1", "ClusterReport", "clusterreports", False)
REPORT_APIS: tuple[ReportApi, ...] = (
    POLICY_REPORT,
    CLUSTER_POLICY_REPORT,
    OPENREPORTS_REPORT,
    OPENREPORTS_CLUSTER_REPORT,
)
_APIS_BY_TYPE = {(api.api_version, api.kind): api for api in REPORT_APIS}

# (api name, namespace or "" for cluster scope, report name)
ReportKey = tuple[str, str, str]


class ReportParseError(ValueError):
    """A document is not a usable report; the message says what is wrong with it."""


class ResourceRef:
    """The Kubernetes object a result is about."""

    __slots__ = ("api_version", "kind", "name", "namespace", "uid")

    def __init__(self, api_version: str, kind: str, name: str, namespace: str, uid: str) -> None:
        self.api_version = api_version
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.uid = uid

    def identity(self) -> str:
        """Stable identity across report updates: the uid, else kind/namespace/name."""
        return self.uid or f"{self.kind}/{self.namespace}/{self.name}"

    def __repr__(self) -> str:
        return f"ResourceRef({self.kind}/{self.namespace}/{self.name})"


_NO_RESOURCE = ResourceRef("", "", "", "", "")
_EMPTY: Mapping[str, str] = {}


class Result:
    """One policy result. ``resources`` is never empty: a result about no object gets the report's scope,
    or a blank reference, so every result counts exactly once per resource it names."""

    __slots__ = (
        "category",
        "policy",
        "properties",
        "resources",
        "rule",
        "scored",
        "severity",
        "source",
        "status",
        "timestamp",
    )

    def __init__(
        self,
        *,
        policy: str,
        rule: str,
        status: str,
        severity: str,
        category: str,
        source: str,
        scored: bool,
        timestamp: tuple[int, int] | None,
        resources: tuple[ResourceRef, ...],
        properties: Mapping[str, str],
    ) -> None:
        self.policy = policy
        self.rule = rule
        self.status = status
        self.severity = severity
        self.category = category
        self.source = source
        self.scored = scored
        self.timestamp = timestamp
        self.resources = resources
        self.properties = properties

    def __repr__(self) -> str:
        return f"Result({self.policy}/{self.rule}={self.status} {self.resources!r})"


@dataclass(frozen=True, slots=True)
class Report:
    """One report, reduced to what metrics need."""

    api: ReportApi
    namespace: str  # "" for cluster-scoped reports
    name: str
    labels: Mapping[str, str]
    summary: tuple[int, int, int, int, int]  # in STATUSES order
    scope: ResourceRef | None
    results: tuple[Result, ...]
    problems: tuple[str, ...] = ()  # why results were dropped (at most MAX_PROBLEMS)
    dropped_results: int = 0

    @property
    def key(self) -> ReportKey:
        return (self.api.name, self.namespace, self.name)


def api_for(api_version: str, kind: str) -> ReportApi | None:
    """The watched kind a document's apiVersion/kind names, or None if it is not a report."""
    return _APIS_BY_TYPE.get((api_version, kind))


def parse_report(document: Any, api: ReportApi | None = None) -> Report:
    """Turn one decoded report into a :class:`Report`.

    ``api`` is given when the caller knows the kind (a watch of one resource); otherwise it is read from the
    document's ``apiVersion`` and ``kind``.
    """
    if not isinstance(document, Mapping):
        raise ReportParseError(f"a report must be a mapping, got {type(document).__name__}")
    if api is None:
        api = api_for(str(document.get("apiVersion", "")), str(document.get("kind", "")))
        if api is None:
            raise ReportParseError(
                f"apiVersion {document.get('apiVersion')!r} kind {document.get('kind')!r} is not a report "
                f"kind (expected one of {', '.join(f'{a.api_version} {a.kind}' for a in REPORT_APIS)})"
            )
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ReportParseError(f"{api.kind} has no metadata mapping")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ReportParseError(f"{api.kind} has no metadata.name")
    namespace = metadata.get("namespace") or ""
    if not isinstance(namespace, str):
        raise ReportParseError(f"{api.kind} {name}: metadata.namespace is not a string")
    if api.namespaced and not namespace:
        raise ReportParseError(f"{api.kind} {name} is namespaced but has no metadata.namespace")
    if not api.namespaced:
        namespace = ""
    where = f"{api.kind} {namespace + '/' if namespace else ''}{name}"
    raw_results = document.get("results")
    if raw_results is None:
        raw_results = []
    if not isinstance(raw_results, list):
        raise ReportParseError(f"{where}: results must be a list, got {type(raw_results).__name__}")
    parser = _ResultParser(namespace, document.get("source"))
    raw_scope = document.get("scope")
    scope = parser.resource(raw_scope) if isinstance(raw_scope, Mapping) else None
    if scope is not None:
        parser.default_resources = (scope,)
    results: list[Result] = []
    problems: list[str] = []
    dropped = 0
    for index, raw in enumerate(raw_results):
        try:
            results.append(parser.result(raw))
        except ReportParseError as error:
            dropped += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(f"results[{index}]: {error}")
    return Report(
        api=api,
        namespace=_intern(namespace),
        name=name,
        labels=_string_map(metadata.get("labels")),
        summary=_summary(document.get("summary")),
        scope=scope,
        results=tuple(results),
        problems=tuple(problems),
        dropped_results=dropped,
    )


class _ResultParser:
    """Parses the results of one report, sharing equal resource references and timestamps between them.

    Per-resource reports (Kyverno's layout) name the same object in every result, so sharing turns 50
    reference objects per report into one.
    """

    def __init__(self, namespace: str, report_source: Any) -> None:
        self.namespace = namespace
        self.default_source = _intern(report_source) if isinstance(report_source, str) else ""
        self.default_resources: tuple[ResourceRef, ...] = (_NO_RESOURCE,)
        self._resources: dict[tuple[Any, ...], tuple[ResourceRef, ...]] = {}
        self._timestamps: dict[Any, tuple[int, int] | None] = {}

    def result(self, raw: Any) -> Result:
        if not isinstance(raw, Mapping):
            raise ReportParseError(f"not a mapping but {type(raw).__name__}")
        policy = raw.get("policy")
        if not isinstance(policy, str) or not policy:
            raise ReportParseError("no policy")
        status = raw.get("result")
        if not isinstance(status, str) or status not in _STATUS_SET:
            shown = repr(status)[:40]
            raise ReportParseError(f"policy {policy}: result {shown} is not one of {', '.join(STATUSES)}")
        source = raw.get("source")
        properties = raw.get("properties")
        return Result(
            policy=_intern(policy),
            rule=_text(raw.get("rule")),
            status=_intern(status),
            severity=_text(raw.get("severity")),
            category=_text(raw.get("category")),
            source=_intern(source) if isinstance(source, str) and source else self.default_source,
            scored=bool(raw.get("scored", False)),
            timestamp=self._timestamp(raw.get("timestamp")),
            resources=self._result_resources(raw.get("resources"), policy),
            properties=_string_map(properties) if properties else _EMPTY,
        )

    def resource(self, raw: Mapping[str, Any]) -> ResourceRef:
        return self._shared((raw,))[0]

    def _result_resources(self, raw: Any, policy: str) -> tuple[ResourceRef, ...]:
        if not isinstance(raw, list) or not raw:
            return self.default_resources
        items = tuple(item for item in raw if isinstance(item, Mapping))
        if not items:
            raise ReportParseError(f"policy {policy}: resources holds no object references")
        return self._shared(items)

    def _shared(self, items: tuple[Mapping[str, Any], ...]) -> tuple[ResourceRef, ...]:
        key = tuple(
            (
                item.get("apiVersion"),
                item.get("kind"),
                item.get("name"),
                item.get("namespace"),
                item.get("uid"),
            )
            for item in items
        )
        try:
            return self._resources[key]
        except KeyError:
            shared = self._resources[key] = tuple(self._new_resource(item) for item in items)
            return shared
        except TypeError:  # an unhashable value where a string belongs: no sharing for this one
            return tuple(self._new_resource(item) for item in items)

    def _new_resource(self, raw: Mapping[str, Any]) -> ResourceRef:
        return ResourceRef(
            api_version=_text(raw.get("apiVersion")),
            kind=_text(raw.get("kind")),
            name=str(raw.get("name") or ""),
            namespace=_text(raw.get("namespace") or self.namespace),
            uid=str(raw.get("uid") or ""),
        )

    def _timestamp(self, raw: Any) -> tuple[int, int] | None:
        key = (raw.get("seconds"), raw.get("nanos")) if isinstance(raw, Mapping) else raw
        try:
            return self._timestamps[key]
        except KeyError:
            value = self._timestamps[key] = _timestamp(raw)
            return value
        except TypeError:
            return _timestamp(raw)


def _text(value: Any) -> str:
    """An interned string; anything that is not a string becomes ''."""
    return _intern(value) if isinstance(value, str) else ""


def _string_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        return _EMPTY
    return {_intern(str(key)): _intern(str(item)) for key, item in value.items()}


def _summary(value: Any) -> tuple[int, int, int, int, int]:
    if not isinstance(value, Mapping):
        return (0, 0, 0, 0, 0)
    passed, failed, warned, errored, skipped = (_count(value.get(status, 0)) for status in STATUSES)
    return (passed, failed, warned, errored, skipped)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _timestamp(value: Any) -> tuple[int, int] | None:
    """Result timestamps are ``{seconds, nanos}``; some tools write an RFC 3339 string instead."""
    if isinstance(value, Mapping):
        seconds = value.get("seconds")
        nanos = value.get("nanos", 0)
        if isinstance(seconds, int) and seconds > 0:
            return (seconds, nanos if isinstance(nanos, int) else 0)
        return None
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            seconds = int(moment.timestamp())
        except (ValueError, OverflowError, OSError):  # 0001-01-01 without a zone is before the epoch
            return None
        return (seconds, moment.microsecond * 1000) if seconds > 0 else None
    return None
