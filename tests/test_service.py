"""The serve lifecycle in process: a component that dies takes the process down with exit code 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes.client import ApiClient

from exporter import service
from exporter.cluster import ClusterConnection
from exporter.config import ServeConfig
from exporter.reports.sources.local import LocalReportSource


class CrashingSource(LocalReportSource):
    """A report source whose loop fails after its first scan, like a bug would make it."""

    async def run(self) -> None:
        self.scan_once()
        self.ready.set()
        await asyncio.sleep(0)
        raise RuntimeError("simulated bug in the report source")


async def test_a_crashed_component_stops_the_process_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "LocalReportSource", CrashingSource)
    config = ServeConfig(
        metrics_address="127.0.0.1:0",
        state_dir=tmp_path,
        kubernetes="off",
        webhook="off",
        reports_dir=(tmp_path / "reports",),
    )
    (tmp_path / "reports").mkdir()
    assert await asyncio.wait_for(service.run(config), 30) == 1
    crash = next(r for r in caplog.records if r.getMessage().startswith("component stopped unexpectedly"))
    assert vars(crash)["component"] == "local-report-source"
    assert "simulated bug" in vars(crash)["error"]


def test_report_output_kubernetes_without_a_cluster_writes_locally_where_it_is_watched(
    tmp_path: Path,
) -> None:
    plan = service.make_plan(
        ServeConfig(state_dir=tmp_path, report_output="kubernetes", reports_dir=(tmp_path / "r",)), None
    )
    assert plan.report_output == "local"
    assert plan.report_dirs == (tmp_path / "r", tmp_path / "reports")
    assert any("--report-output kubernetes but no cluster" in note for note in plan.notes)


def test_your_own_policies_turn_the_example_reports_off(tmp_path: Path) -> None:
    examples = service.make_plan(ServeConfig(state_dir=tmp_path), None)
    assert examples.report_dirs == (service.embedded_defaults() / "reports", tmp_path / "reports")
    own = service.make_plan(ServeConfig(state_dir=tmp_path, policies=(tmp_path / "p.yaml",)), None)
    assert own.policies == (tmp_path / "p.yaml",)
    assert own.report_dirs == (tmp_path / "reports",)  # only what the webhook writes


def test_a_kubeconfig_alone_never_writes_reports_into_the_cluster(tmp_path: Path) -> None:
    def no_client() -> ApiClient:
        raise AssertionError("planning must not connect to the cluster")

    def cluster(in_cluster: bool) -> ClusterConnection:
        return ClusterConnection("test", no_client, in_cluster=in_cluster)

    laptop = service.make_plan(ServeConfig(state_dir=tmp_path), cluster(in_cluster=False))
    assert laptop.report_output == "local"
    assert any("--report-output kubernetes writes them into the cluster" in note for note in laptop.notes)
    explicit = service.make_plan(ServeConfig(state_dir=tmp_path, report_output="kubernetes"), cluster(False))
    assert explicit.report_output == "kubernetes"
    assert (
        service.make_plan(ServeConfig(state_dir=tmp_path), cluster(in_cluster=True)).report_output
        == "kubernetes"
    )
