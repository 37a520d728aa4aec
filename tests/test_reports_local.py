"""The local directory source: good, bad, changing and vanishing files (driven by scan_once, no sleeps)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import yaml

from exporter.metrics import ServiceMetrics
from exporter.reports.config import ReportsConfig
from exporter.reports.sources.local import LocalReportSource
from exporter.reports.store import ReportStore

DATA = Path(__file__).parent / "data" / "reports"
POLR = "wgpolicyk8s.io/v1alpha2/PolicyReport"


def source_for(*directories: Path) -> tuple[LocalReportSource, ReportStore, ServiceMetrics]:
    store = ReportStore()
    metrics = ServiceMetrics()
    return LocalReportSource(list(directories), store, metrics, interval=0.01), store, metrics


def gauge(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_every_good_file_layout_is_read(tmp_path: Path) -> None:
    for name in ("kubectl-list.yaml", "multi-document.yaml", "single.json"):
        shutil.copy(DATA / name, tmp_path / name)
    source, store, metrics = source_for(tmp_path)
    aggregate = store.aggregate_for(ReportsConfig())
    outcome = source.scan_once()
    assert len(outcome.read) == 3
    assert set(store.keys()) == {
        ("openreports.io/v1alpha1/Report", "prod", "trivy-vuln-shop"),
        (POLR, "dev", "pol-verify-images"),
        (POLR, "kube-system", "kube-bench"),
        (POLR, "prod", "pol-verify-images"),
        ("wgpolicyk8s.io/v1alpha2/ClusterPolicyReport", "", "cpol-require-ns-labels"),
    }
    trivy = store.get(("openreports.io/v1alpha1/Report", "prod", "trivy-vuln-shop"))
    assert trivy is not None
    assert [(r.source, r.resources[0].kind) for r in trivy.results] == [("trivy", "ReplicaSet")] * 2
    assert gauge(metrics, "trustwatch_report_files_skipped") == 0
    assert gauge(metrics, "trustwatch_report_watch_up", api="local") == 1
    assert source.scan_once().read == ()  # nothing changed: nothing read again
    assert aggregate.transitions == {}  # the first scan is state, not news
    assert aggregate.namespaced_results  # ... while the results themselves count


def test_bad_file_is_named_and_skipped_while_the_rest_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copy(DATA / "single.json", tmp_path / "single.json")
    shutil.copy(DATA / "broken.yaml", tmp_path / "broken.yaml")
    shutil.copy(DATA / "mixed-validity.yaml", tmp_path / "mixed-validity.yaml")
    source, store, metrics = source_for(tmp_path)
    outcome = source.scan_once()
    assert outcome.skipped == (tmp_path / "broken.yaml",)
    assert sorted(store.keys()) == [(POLR, "kube-system", "kube-bench"), (POLR, "qa", "good")]
    assert gauge(metrics, "trustwatch_report_files_skipped") == 1
    assert str(tmp_path / "broken.yaml") in source.problems
    assert "not valid YAML" in source.problems[str(tmp_path / "broken.yaml")]
    reasons = [getattr(record, "reason", "") for record in caplog.records]
    assert any("ConfigMap" in reason and "is not a report kind" in reason for reason in reasons)
    assert any("has no metadata.name" in reason for reason in reasons)

    # fixing the file brings it in and clears the skip count
    shutil.copy(DATA / "kubectl-list.yaml", tmp_path / "broken.yaml")
    source.scan_once()
    assert gauge(metrics, "trustwatch_report_files_skipped") == 0
    assert store.get((POLR, "dev", "pol-verify-images")) is not None


def test_a_file_turning_bad_keeps_its_last_good_reports(tmp_path: Path) -> None:
    target = tmp_path / "reports.yaml"
    shutil.copy(DATA / "kubectl-list.yaml", target)
    source, store, metrics = source_for(tmp_path)
    source.scan_once()
    target.write_text((DATA / "broken.yaml").read_text())  # an editor mid-save: invalid YAML
    outcome = source.scan_once()
    assert outcome.skipped == (target,)
    assert len(store) == 2
    assert gauge(metrics, "trustwatch_report_files_skipped") == 1


def test_changed_and_vanishing_files_update_the_store(tmp_path: Path) -> None:
    listing = tmp_path / "nested" / "list.yaml"
    listing.parent.mkdir()
    shutil.copy(DATA / "kubectl-list.yaml", listing)
    shutil.copy(DATA / "single.json", tmp_path / "single.json")
    source, store, _metrics = source_for(tmp_path)
    source.scan_once()
    assert len(store) == 3

    # the prod report disappears from the list file: only that report goes
    document = yaml.safe_load(listing.read_text())
    document["items"] = [item for item in document["items"] if item["metadata"]["namespace"] != "prod"]
    listing.write_text(yaml.safe_dump(document))
    os.utime(listing, ns=(1, 1))  # a distinct mtime even on coarse clocks
    outcome = source.scan_once()
    assert outcome.read == (listing,)
    assert sorted(store.keys()) == [(POLR, "dev", "pol-verify-images"), (POLR, "kube-system", "kube-bench")]

    (tmp_path / "single.json").unlink()
    outcome = source.scan_once()
    assert outcome.removed == (tmp_path / "single.json",)
    assert store.keys() == [(POLR, "dev", "pol-verify-images")]


def test_missing_directory_is_reported_not_fatal(tmp_path: Path) -> None:
    shutil.copy(DATA / "single.json", tmp_path / "single.json")
    missing = tmp_path / "does-not-exist"
    source, store, metrics = source_for(tmp_path, missing)
    source.scan_once()
    assert len(store) == 1
    assert source.problems == {str(missing): "directory not found"}
    assert gauge(metrics, "trustwatch_report_watch_up", api="local") == 0


async def test_run_sets_ready_after_the_first_scan(tmp_path: Path) -> None:
    shutil.copy(DATA / "single.json", tmp_path / "single.json")
    source, store, _metrics = source_for(tmp_path)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.ready.wait(), 10)
        assert len(store) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
