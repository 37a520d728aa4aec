"""The audit report writer: merging, the bounded queue, the local directory and the Kubernetes API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.metrics import ServiceMetrics
from exporter.reports.model import POLICY_REPORT, parse_report
from exporter.reports.writer import (
    AuditResult,
    Merge,
    ReportConflictError,
    ReportTarget,
    ReportWriter,
    ResultResource,
    merge_report,
    target_of,
)
from exporter.reports.writer_kube import KubernetesReportBackend
from exporter.reports.writer_local import LocalReportBackend, report_path
from tests.support.fake_kube import FakeKubeServer


def result(
    name: str, status: str = "pass", namespace: str = "prod", uid: str = "", rule: str = "r"
) -> AuditResult:
    return AuditResult(
        namespace=namespace,
        report_name="cpol-check-image-signature",
        policy="check-image-signature",
        rule=rule,
        result=status,
        message="image verified" if status == "pass" else "failed to verify image x: y",
        resource=ResultResource("apps/v1", "Deployment", name, namespace, uid),
        timestamp=1764153600.0,
        severity="high",
        category="Software Supply Chain Security",
    )


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


TARGET = ReportTarget(POLICY_REPORT, "prod", "cpol-check-image-signature")


def test_merge_replaces_a_resources_results_of_that_policy_and_nothing_else() -> None:
    """An admission yields every rule of a policy at once; an update may leave a rule out (its images no
    longer match), and that rule's old result must not linger."""
    first = merge_report(TARGET, None, [result("a", "fail"), result("b"), result("a", rule="other")])
    assert first["summary"] == {"pass": 2, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    first["metadata"]["resourceVersion"] = "7"
    second = merge_report(TARGET, first, [result("a", "pass")])
    assert second["metadata"]["resourceVersion"] == "7"
    assert second["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "trustwatch"}
    assert sorted((r["resources"][0]["name"], r["rule"], r["result"]) for r in second["results"]) == [
        ("a", "r", "pass"),
        ("b", "r", "pass"),
    ]
    assert second["summary"]["fail"] == 0
    # What the writer produces is a report the watcher's parser accepts.
    parsed = parse_report(second)
    assert (parsed.namespace, parsed.name, len(parsed.results)) == ("prod", "cpol-check-image-signature", 2)


def test_results_go_to_namespaced_or_cluster_reports_of_the_chosen_api() -> None:
    assert target_of(result("a")).api.kind == "PolicyReport"
    assert target_of(result("a", namespace="")).api.kind == "ClusterPolicyReport"
    assert target_of(result("a"), "openreports.io/v1alpha1").api.kind == "Report"
    with pytest.raises(ValueError, match="report API"):
        ReportWriter(LocalReportBackend(Path("/nonexistent")), ServiceMetrics(), report_api="v9")


async def test_local_backend_writes_files_the_watcher_reads(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    writer = ReportWriter(LocalReportBackend(tmp_path), metrics)
    writer.submit([result("signed"), result("unsigned", "fail", namespace="dev")])
    assert sample(metrics, "trustwatch_report_queue_depth") == 2
    await writer.flush()
    prod = yaml.safe_load(report_path(tmp_path, TARGET).read_text())
    assert prod["kind"] == "PolicyReport"
    assert prod["summary"]["pass"] == 1
    dev = yaml.safe_load((tmp_path / "policyreport-dev-cpol-check-image-signature.yaml").read_text())
    assert dev["results"][0]["result"] == "fail"
    assert sample(metrics, "trustwatch_report_writes_total", result="success") == 2
    assert sample(metrics, "trustwatch_report_queue_depth") == 0
    # Re-evaluation replaces the resource's result instead of appending.
    writer.submit([result("unsigned", "pass", namespace="dev")])
    await writer.flush()
    dev = yaml.safe_load((tmp_path / "policyreport-dev-cpol-check-image-signature.yaml").read_text())
    assert [r["result"] for r in dev["results"]] == ["pass"]


async def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    writer = ReportWriter(LocalReportBackend(tmp_path), metrics, queue_size=3)
    writer.submit([result(f"d{i}") for i in range(5)])
    assert writer.pending == 3
    assert sample(metrics, "trustwatch_report_queue_dropped_total") == 2


class FlakyBackend:
    """Fails ``failures`` times, then conflicts ``conflicts`` times, then stores in memory."""

    def __init__(self, failures: int = 0, conflicts: int = 0) -> None:
        self.failures = failures
        self.conflicts = conflicts
        self.stored: dict[ReportTarget, dict[str, Any]] = {}

    def update(self, target: ReportTarget, merge: Merge) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("API unreachable")
        document = merge(self.stored.get(target))
        if self.conflicts:
            self.conflicts -= 1
            raise ReportConflictError(str(target))
        self.stored[target] = document


async def drain(writer: ReportWriter) -> None:
    """Flush until nothing is pending (each final flush retries every deferred write once)."""
    await writer.flush()
    for _attempt in range(10):
        if not writer.pending:
            return
        await writer.flush(final=True)
    raise AssertionError("the writer never drained")


class PartlyBrokenBackend(FlakyBackend):
    """Never writes reports of namespace ``broken``; stores the others."""

    def update(self, target: ReportTarget, merge: Merge) -> None:
        if target.namespace == "broken":
            raise OSError("File name too long")
        super().update(target, merge)


async def test_an_unwritable_report_delays_no_other() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    backend = PartlyBrokenBackend()
    writer = ReportWriter(backend, metrics, retry_delay=3600)
    for number in range(30):
        writer.submit([result(f"bad{number}", namespace="broken"), result(f"good{number}")])
    started = asyncio.get_running_loop().time()
    await writer.flush()
    assert asyncio.get_running_loop().time() - started < 5  # no backoff slept inline
    assert len(backend.stored[TARGET]["results"]) == 30
    assert writer.pending == 30  # the broken report's results wait for their retry


async def test_errors_are_retried_then_given_up_and_counted() -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    backend = FlakyBackend(failures=2, conflicts=1)
    writer = ReportWriter(backend, metrics, retry_delay=0.001)
    writer.submit([result("a")])
    await writer.flush()
    assert writer.pending == 1  # failed once: deferred, not retried inline
    await drain(writer)
    assert len(backend.stored[TARGET]["results"]) == 1
    assert sample(metrics, "trustwatch_report_writes_total", result="error") == 2
    assert sample(metrics, "trustwatch_report_writes_total", result="conflict") == 1
    assert sample(metrics, "trustwatch_report_writes_total", result="success") == 1
    hopeless = FlakyBackend(failures=10)
    writer = ReportWriter(hopeless, metrics, retry_delay=0.001, max_attempts=3)
    writer.submit([result("a")])
    await drain(writer)
    assert hopeless.stored == {}
    assert sample(metrics, "trustwatch_report_writes_total", result="error") == 5


async def test_run_writes_in_the_background_until_cancelled(tmp_path: Path) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    writer = ReportWriter(LocalReportBackend(tmp_path), metrics, flush_interval=0.01)
    task = asyncio.create_task(writer.run())
    writer.submit([result("a")])
    deadline = asyncio.get_running_loop().time() + 5
    while not report_path(tmp_path, TARGET).exists():
        assert asyncio.get_running_loop().time() < deadline, "the writer never wrote the report"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_kubernetes_backend_creates_then_merges_with_another_replica() -> None:
    async with FakeKubeServer() as server:
        metrics = ServiceMetrics(CollectorRegistry())
        writer = ReportWriter(KubernetesReportBackend(server.api_client()), metrics)
        writer.submit([result("signed", uid="uid-1")])
        await writer.flush()
        stored = server.get_object("wgpolicyk8s.io/v1alpha2", "PolicyReport", TARGET.name, "prod")
        assert stored is not None
        assert stored["summary"]["pass"] == 1
        # Another replica's writer on the same report: every replica's results survive. (The forced
        # conflict is covered below; the fake server reads resourceVersion before the body arrives, so
        # truly simultaneous PUTs can both pass its check and are not raced here.)
        other = ReportWriter(KubernetesReportBackend(server.api_client()), metrics)
        other.submit([result(f"b{i}", "fail", uid=f"b{i}") for i in range(5)])
        await other.flush()
        writer.submit([result(f"a{i}", uid=f"a{i}") for i in range(5)])
        await writer.flush()
        stored = server.get_object("wgpolicyk8s.io/v1alpha2", "PolicyReport", TARGET.name, "prod")
        assert stored is not None
        assert stored["summary"] == {"pass": 6, "fail": 5, "warn": 0, "error": 0, "skip": 0}


async def test_kubernetes_backend_rereads_after_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeKubeServer() as server:
        loop = asyncio.get_running_loop()
        metrics = ServiceMetrics(CollectorRegistry())
        backend = KubernetesReportBackend(server.api_client())
        writer = ReportWriter(backend, metrics)
        writer.submit([result("mine", uid="m")])
        await writer.flush()
        interfered = False

        async def other_replica_writes() -> None:
            current = server.get_object("wgpolicyk8s.io/v1alpha2", "PolicyReport", TARGET.name, "prod")
            assert current is not None
            server.put_object(merge_report(TARGET, current, [result("theirs", "fail", uid="t")]))

        original = backend.update

        def update_with_interference(target: ReportTarget, merge: Merge) -> None:
            nonlocal interfered

            def merge_then_interfere(existing: Mapping[str, Any] | None) -> dict[str, Any]:
                nonlocal interfered
                document = merge(existing)
                if not interfered:
                    interfered = True
                    asyncio.run_coroutine_threadsafe(other_replica_writes(), loop).result(5)
                return document

            original(target, merge_then_interfere)

        monkeypatch.setattr(backend, "update", update_with_interference)
        writer.submit([result("mine2", uid="m2")])
        await writer.flush()
        stored = server.get_object("wgpolicyk8s.io/v1alpha2", "PolicyReport", TARGET.name, "prod")
        assert stored is not None
        assert sorted(r["resources"][0]["name"] for r in stored["results"]) == ["mine", "mine2", "theirs"]
        assert sample(metrics, "trustwatch_report_writes_total", result="conflict") == 1


async def test_kubernetes_backend_writes_cluster_reports_and_counts_errors() -> None:
    async with FakeKubeServer() as server:
        metrics = ServiceMetrics(CollectorRegistry())
        writer = ReportWriter(KubernetesReportBackend(server.api_client()), metrics, retry_delay=0.001)
        server.fail_next(1, status=500)
        writer.submit([result("node-thing", namespace="")])
        await drain(writer)
        stored = server.get_object("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport", TARGET.name)
        assert stored is not None
        assert stored["results"][0]["resources"][0] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "node-thing",
        }
        assert sample(metrics, "trustwatch_report_writes_total", result="error") == 1


async def test_openreports_output() -> None:
    async with FakeKubeServer() as server:
        metrics = ServiceMetrics(CollectorRegistry())
        writer = ReportWriter(
            KubernetesReportBackend(server.api_client()), metrics, report_api="openreports.io/v1alpha1"
        )
        writer.submit([result("signed"), result("node-thing", namespace="")])
        await writer.flush()
        namespaced = server.get_object("openreports.io/v1alpha1", "Report", TARGET.name, "prod")
        cluster = server.get_object("openreports.io/v1alpha1", "ClusterReport", TARGET.name)
        assert namespaced is not None
        assert cluster is not None
        assert namespaced["results"][0]["message"] == "image verified"
        assert parse_report(cluster).api.kind == "ClusterReport"
