"""Writes audit results from the admission path into PolicyReports, off that path.

The webhook calls :meth:`ReportWriter.submit` (never blocks, never raises); a background task drains the
bounded queue in batches, groups results by report (``cpol-<policy>``/``pol-<policy>`` per namespace, the
cluster-scoped kind for cluster-scoped resources) and read-merge-writes each report through a backend:

* merging replaces only the results with the same resource identity (uid, else kind/namespace/name),
  policy and rule, so replicas writing the same report never erase each other's results;
* a write conflict (another replica updated the report since it was read) re-reads and merges again;
* other failures are retried later with backoff (other reports are written meanwhile, so one report
  that cannot be written delays no other), then counted as errors and logged.

Backends: the Kubernetes API (:mod:`exporter.reports.writer_kube`) and a local directory of YAML files
(:mod:`exporter.reports.writer_local`) that the local report source reads back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.metrics import ServiceMetrics
from exporter.reports.model import (
    CLUSTER_POLICY_REPORT,
    OPENREPORTS_CLUSTER_REPORT,
    OPENREPORTS_REPORT,
    POLICY_REPORT,
    STATUSES,
    ReportApi,
)

log = logging.getLogger(__name__)

MANAGED_BY = {"app.kubernetes.io/managed-by": "trustwatch"}
# A report is one API object (etcd caps objects near 1.5 MiB): keep the newest results beyond this many.
MAX_RESULTS_PER_REPORT = 2000
ADMISSION_PROCESS = {"process": "admission review"}

# The API written to, by the --report-api value.
REPORT_FAMILIES: Mapping[str, tuple[ReportApi, ReportApi]] = {
    "wgpolicyk8s.io/v1alpha2": (POLICY_REPORT, CLUSTER_POLICY_REPORT),
    "openreports.io/v1alpha1": (OPENREPORTS_REPORT, OPENREPORTS_CLUSTER_REPORT),
}


@dataclass(frozen=True)
class ResultResource:
    """The object a result is about, as it appears in ``results[].resources[]``."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str = ""

    def identity(self) -> str:
        """The uid when known (it is not on CREATE), else kind/namespace/name."""
        return self.uid or f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class AuditResult:
    """One rule result about one resource, destined for report ``report_name`` in ``namespace``.

    ``namespace`` is empty for cluster-scoped resources, whose results go to the cluster-scoped kind.
    """

    namespace: str
    report_name: str
    policy: str
    rule: str
    result: str
    message: str
    resource: ResultResource
    timestamp: float
    severity: str = ""
    category: str = ""
    scored: bool = True
    source: str = "kyverno"
    properties: Mapping[str, str] = field(default_factory=lambda: dict(ADMISSION_PROCESS))

    def key(self) -> tuple[str, str, str]:
        """What a newer result replaces: same resource, policy and rule."""
        return (self.resource.identity(), self.policy, self.rule)

    def document(self) -> dict[str, Any]:
        """The result as Kyverno writes it into a PolicyReport."""
        resource = {
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
            "name": self.resource.name,
        }
        if self.resource.namespace:
            resource["namespace"] = self.resource.namespace
        if self.resource.uid:
            resource["uid"] = self.resource.uid
        document: dict[str, Any] = {
            "message": self.message,
            "policy": self.policy,
            "rule": self.rule,
            "result": self.result,
            "scored": self.scored,
            "source": self.source,
            "resources": [resource],
            "timestamp": {"seconds": int(self.timestamp), "nanos": int(self.timestamp % 1 * 1e9)},
            "properties": dict(self.properties),
        }
        if self.severity:
            document["severity"] = self.severity
        if self.category:
            document["category"] = self.category
        return document


@dataclass(frozen=True)
class ReportTarget:
    """Which report object a group of results belongs in."""

    api: ReportApi
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.api.kind} {where}{self.name}"


def target_of(result: AuditResult, report_api: str = "wgpolicyk8s.io/v1alpha2") -> ReportTarget:
    """The report a result is written to, in the chosen API family."""
    namespaced, cluster = REPORT_FAMILIES[report_api]
    api = namespaced if result.namespace else cluster
    return ReportTarget(api, result.namespace, result.report_name)


def result_identity(entry: Mapping[str, Any]) -> str:
    """The resource a written result is about: its uid, else kind/namespace/name (as ResultResource)."""
    resources = entry.get("resources") or [{}]
    first = resources[0] if isinstance(resources[0], Mapping) else {}
    return str(
        first.get("uid") or f"{first.get('kind', '')}/{first.get('namespace', '')}/{first.get('name', '')}"
    )


def _seconds(entry: Mapping[str, Any]) -> float:
    stamp = entry.get("timestamp")
    return float(stamp.get("seconds", 0)) if isinstance(stamp, Mapping) else 0.0


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``summary`` counts per status, all five always present."""
    counts = dict.fromkeys(STATUSES, 0)
    for entry in results:
        status = entry.get("result")
        if status in counts:
            counts[str(status)] += 1
    return counts


def merge_report(
    target: ReportTarget, existing: Mapping[str, Any] | None, results: Sequence[AuditResult]
) -> dict[str, Any]:
    """The report after ``results`` replaced their older versions in ``existing`` (None: a new report).

    A resource's new results for a policy replace all its older ones for that policy (an update may have
    changed which rules apply). Results of other resources, policies, and other writers are kept as they
    are; metadata the API server owns (resourceVersion, uid) is carried over so the update is conditional
    on it.
    """
    fresh = {result.key(): result.document() for result in results}
    replaced = {(identity, policy) for identity, policy, _rule in fresh}
    kept: list[Mapping[str, Any]] = []
    metadata: dict[str, Any] = {}
    if existing is not None:
        metadata = dict(existing.get("metadata") or {})
        kept = [
            entry
            for entry in existing.get("results") or []
            if isinstance(entry, Mapping)
            and (result_identity(entry), str(entry.get("policy", ""))) not in replaced
        ]
    merged = [*kept, *fresh.values()]
    if len(merged) > MAX_RESULTS_PER_REPORT:
        merged = sorted(merged, key=_seconds)[-MAX_RESULTS_PER_REPORT:]
        log.warning(
            "report is full; dropped its oldest results",
            extra={"report": str(target), "limit": MAX_RESULTS_PER_REPORT},
        )
    metadata["name"] = target.name
    if target.namespace:
        metadata["namespace"] = target.namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **MANAGED_BY}
    return {
        "apiVersion": target.api.api_version,
        "kind": target.api.kind,
        "metadata": metadata,
        "results": merged,
        "summary": summarize(merged),
    }


class ReportConflictError(Exception):
    """The report changed since it was read (HTTP 409); read it again and re-merge."""


Merge = Callable[[Mapping[str, Any] | None], dict[str, Any]]


class ReportBackend(Protocol):
    """Somewhere reports live. ``update`` is blocking and runs in a worker thread."""

    def update(self, target: ReportTarget, merge: Merge) -> None:
        """Read the report (None if absent), write ``merge(read)``; ReportConflictError on a lost race."""


class ReportWriter:
    """A bounded queue of audit results and the task that writes them (see the module docstring)."""

    def __init__(
        self,
        backend: ReportBackend,
        metrics: ServiceMetrics,
        *,
        report_api: str = "wgpolicyk8s.io/v1alpha2",
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_attempts: int = 5,
        retry_delay: float = 0.2,
    ) -> None:
        if report_api not in REPORT_FAMILIES:
            raise ValueError(f"report API {report_api!r} is not one of {', '.join(REPORT_FAMILIES)}")
        self._backend = backend
        self._metrics = metrics
        self._report_api = report_api
        self._queue: deque[AuditResult] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()
        # Failed writes wait here for their retry (loop time, target, results), so one report that cannot
        # be written never delays the others; failures counts consecutive failed attempts per report.
        self._deferred: list[tuple[float, ReportTarget, Sequence[AuditResult]]] = []
        self._failures: dict[ReportTarget, int] = {}

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(len(results) for _due, _target, results in self._deferred)

    def submit(self, results: Iterable[AuditResult]) -> None:
        """Queue results for writing; when the queue is full they are dropped and counted, never blocking."""
        for result in results:
            if len(self._queue) >= self._queue_size:
                self._metrics.report_queue_dropped.inc()
                continue
            self._queue.append(result)
        self._metrics.report_queue_depth.set(len(self._queue))
        if len(self._queue) >= self._batch_size:
            self._wakeup.set()

    async def run(self) -> None:
        """Write batches until cancelled: when a batch is full, else every ``flush_interval`` seconds."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
                self._wakeup.clear()
                await self.flush()
        finally:
            if self.pending:
                log.warning("report writer stopped with results unwritten", extra={"pending": self.pending})

    async def flush(self, final: bool = False) -> None:
        """Write everything queued right now (in batches), and the failed writes whose retry is due (all of
        them, once more, when ``final``: at shutdown); used by run(), at shutdown, and by tests."""
        async with self._write_lock:
            now = asyncio.get_running_loop().time()
            due = [entry for entry in self._deferred if final or entry[0] <= now]
            self._deferred = [entry for entry in self._deferred if not (final or entry[0] <= now)]
            for _due, target, results in due:
                await self._write(target, results)
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                self._metrics.report_queue_depth.set(len(self._queue))
                groups: dict[ReportTarget, list[AuditResult]] = {}
                for result in batch:
                    groups.setdefault(target_of(result, self._report_api), []).append(result)
                for target, results in groups.items():
                    await self._write(target, results)

    async def _write(self, target: ReportTarget, results: Sequence[AuditResult]) -> None:
        def merge(existing: Mapping[str, Any] | None) -> dict[str, Any]:
            return merge_report(target, existing, results)

        for _conflict in range(self._max_attempts):
            try:
                await asyncio.to_thread(self._backend.update, target, merge)
            except ReportConflictError:
                self._metrics.report_writes.labels(result="conflict").inc()
                continue  # someone else wrote it: re-read and merge again straight away
            except Exception as exc:
                self._metrics.report_writes.labels(result="error").inc()
                self._retry_later(target, results, exc)
                return
            self._metrics.report_writes.labels(result="success").inc()
            self._failures.pop(target, None)
            return
        log.error(
            "giving up writing audit results after repeated conflicts",
            extra={"report": str(target), "results": len(results)},
        )

    def _retry_later(self, target: ReportTarget, results: Sequence[AuditResult], error: Exception) -> None:
        """Schedule another attempt with exponential backoff, or give up after ``max_attempts``."""
        attempt = self._failures.get(target, 0) + 1
        if attempt >= self._max_attempts:
            self._failures.pop(target, None)
            log.error(
                "giving up writing audit results",
                extra={"report": str(target), "results": len(results), "error": str(error)[:500]},
            )
            return
        self._failures[target] = attempt
        delay = self._retry_delay * 2 ** (attempt - 1) * (1 + random.random())
        self._deferred.append((asyncio.get_running_loop().time() + delay, target, results))
        log.warning(
            "writing audit results failed; will retry",
            extra={"report": str(target), "attempt": attempt, "error": str(error)[:500]},
        )
