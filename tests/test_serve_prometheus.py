"""A real Prometheus scraping a real `trustwatch serve` on loopback: PromQL answers with the exact numbers
the example reports hold, and follows a report that changes and one that vanishes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.prometheus import PrometheusServer, requires_prometheus
from tests.support.serve import ServeProcess, poll

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "reports"

pytestmark = [pytest.mark.prometheus, *requires_prometheus]


def values(prometheus: PrometheusServer, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Result of ``expr`` keyed by the given labels' values."""
    return {
        tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
        for sample in prometheus.query(expr)
    }


def test_prometheus_sees_the_numbers_the_reports_hold(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    shutil.copytree(EXAMPLES, reports)
    with (
        ServeProcess(tmp_path, "--reports-dir", str(reports), "--webhook", "off") as serve,
        PrometheusServer(tmp_path / "prometheus", [serve.metrics_url]) as prometheus,
    ):
        prometheus.wait_for_targets_up()
        prometheus.wait_for_data("trustwatch_policy_report_results")

        by_namespace = values(
            prometheus,
            "sum by (namespace, status) (trustwatch_policy_report_results)",
            "namespace", "status",
        )  # fmt: skip
        assert by_namespace == {
            ("dev", "pass"): 1, ("dev", "fail"): 2, ("dev", "warn"): 1,
            ("prod", "pass"): 1, ("prod", "fail"): 2, ("prod", "warn"): 1,
            ("payments", "pass"): 1, ("payments", "fail"): 1,
        }  # fmt: skip
        assert values(
            prometheus,
            'trustwatch_policy_report_summary{report="cpol-check-image-signature"}',
            "namespace", "status",
        ) == {
            ("dev", "pass"): 0, ("dev", "fail"): 1, ("dev", "warn"): 0,
            ("dev", "error"): 0, ("dev", "skip"): 0,
            ("prod", "pass"): 1, ("prod", "fail"): 0, ("prod", "warn"): 0,
            ("prod", "error"): 0, ("prod", "skip"): 0,
        }  # fmt: skip
        assert values(prometheus, "sum by (source) (trustwatch_cluster_policy_report_results)", "source") == {
            ("kube-bench-adapter",): 2
        }
        assert values(prometheus, 'sum(trustwatch_reports{api=~"openreports.io/.*"})') == {(): 1}

        # A report changes: the unsigned Deployment in dev is fixed (now passes).
        walkthrough = reports / "walkthrough.yaml"
        walkthrough.write_text(
            walkthrough.read_text()
            .replace("result: fail", "result: pass", 1)
            .replace("{pass: 0, fail: 1,", "{pass: 1, fail: 0,", 1)
        )
        image_results = (
            'sum by (namespace, status) (trustwatch_policy_report_results{policy="check-image-signature"})'
        )
        poll(lambda: values(prometheus, image_results, "namespace", "status") == {
            ("dev", "pass"): 1, ("prod", "pass"): 1,
        })  # fmt: skip

        # A report vanishes: its series go with it.
        (reports / "trivy-vulnerabilities.yaml").unlink()
        poll(lambda: not prometheus.query('trustwatch_policy_report_results{source="Trivy Vulnerability"}'))
        assert values(prometheus, 'count(trustwatch_policy_report_results{namespace="prod"})') == {(): 1}
