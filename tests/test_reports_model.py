"""Parsing of PolicyReports and openreports Reports: real field layouts, defensive about bad input."""

from __future__ import annotations

import pytest

from exporter.reports.model import (
    CLUSTER_POLICY_REPORT,
    OPENREPORTS_REPORT,
    POLICY_REPORT,
    ReportParseError,
    parse_report,
)
from tests.support.fake_kube import report_document, report_result


def test_policy_report_fields_are_kept() -> None:
    document = report_document(
        "polr-1",
        "dev",
        [
            report_result(
                "require-signed-images",
                "fail",
                rule="verify-cosign",
                resource=("Pod", "dev", "app"),
                severity="high",
                category="Supply Chain",
                scored=True,
                timestamp={"seconds": 1_700_000_000, "nanos": 500_000_000},
                properties={"image": "registry.local/app:1"},
            )
        ],
        labels={"app.kubernetes.io/managed-by": "kyverno"},
    )
    document["results"][0]["resources"][0]["uid"] = "uid-1"
    report = parse_report(document)
    assert report.api is POLICY_REPORT
    assert report.key == ("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "polr-1")
    assert report.labels == {"app.kubernetes.io/managed-by": "kyverno"}
    assert report.summary == (0, 1, 0, 0, 0)
    (result,) = report.results
    assert (result.policy, result.rule, result.status, result.severity, result.category, result.source) == (
        "require-signed-images",
        "verify-cosign",
        "fail",
        "high",
        "Supply Chain",
        "kyverno",
    )
    assert result.scored is True
    assert result.timestamp == (1_700_000_000, 500_000_000)
    assert result.properties == {"image": "registry.local/app:1"}
    (resource,) = result.resources
    assert (resource.kind, resource.namespace, resource.name, resource.uid) == ("Pod", "dev", "app", "uid-1")
    assert resource.identity() == "uid-1"


def test_openreports_report_source_and_scope_fill_gaps() -> None:
    """openreports puts `source` on the report and (per-resource reports) the object in `scope`."""
    document = report_document(
        "pod-app",
        "prod",
        [{"policy": "no-latest", "result": "pass"}, {"policy": "trivy", "result": "warn", "source": "trivy"}],
        api_version="openreports.io/v1alpha1",
        source="kyverno",
        scope={"apiVersion": "v1", "kind": "Pod", "name": "app", "namespace": "prod"},
    )
    report = parse_report(document)
    assert report.api is OPENREPORTS_REPORT
    assert [r.source for r in report.results] == ["kyverno", "trivy"]
    assert [r.resources[0].kind for r in report.results] == ["Pod", "Pod"]
    assert report.results[0].resources[0] is report.results[1].resources[0]  # shared, not copied


def test_cluster_report_ignores_namespace_and_string_timestamps_parse() -> None:
    document = report_document("cluster", "", [report_result("p", "fail", resource=None)])
    document["metadata"]["namespace"] = "ignored"
    document["results"][0]["timestamp"] = "2024-05-01T10:00:00Z"
    report = parse_report(document, CLUSTER_POLICY_REPORT)
    assert report.namespace == ""
    assert report.results[0].timestamp == (1_714_557_600, 0)
    assert report.results[0].resources[0].kind == ""


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "must be a mapping"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, "is not a report kind"),
        ({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport"}, "no metadata"),
        (
            {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "metadata": {}},
            "no metadata.name",
        ),
        (
            {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "metadata": {"name": "x"}},
            "namespaced but has no metadata.namespace",
        ),
        (
            {
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": "PolicyReport",
                "metadata": {"name": "x", "namespace": "d"},
                "results": {"policy": "p"},
            },
            "results must be a list",
        ),
    ],
)
def test_malformed_reports_name_the_problem(document: object, reason: str) -> None:
    with pytest.raises(ReportParseError, match=reason):
        parse_report(document)


def test_bad_results_are_dropped_alone_with_reasons() -> None:
    document = report_document(
        "mixed",
        "dev",
        [
            report_result("good", "pass"),
            "not a result",
            {"result": "fail"},
            {"policy": "p", "result": "maybe"},
            report_result("also-good", "fail"),
        ],
    )
    report = parse_report(document)
    assert [r.policy for r in report.results] == ["good", "also-good"]
    assert report.dropped_results == 3
    assert report.problems == (
        "results[1]: not a mapping but str",
        "results[2]: no policy",
        "results[3]: policy p: result 'maybe' is not one of pass, fail, warn, error, skip",
    )


def test_strings_are_interned_across_reports() -> None:
    first = parse_report(report_document("a", "dev", [report_result("".join(["pol", "icy"]), "pass")]))
    second = parse_report(report_document("b", "dev", [report_result("".join(["poli", "cy"]), "pass")]))
    assert first.results[0].policy is second.results[0].policy
