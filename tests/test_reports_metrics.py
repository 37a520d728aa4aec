"""The /metrics text of the report collector, parsed with prometheus_client's parser, value by value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import metrics
from exporter.reports.collector import ReportCollector
from exporter.reports.config import ReportsConfig
from exporter.reports.model import parse_report
from exporter.reports.store import ReportStore
from tests.support.fake_kube import report_document, report_result

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Series:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def named(series: Series, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in series.items() if sample == name}


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def build(config: ReportsConfig) -> tuple[ReportStore, CollectorRegistry]:
    store = ReportStore(clock=lambda: 1_000.0)
    registry = CollectorRegistry()
    registry.register(ReportCollector(store, config))
    store.apply(
        parse_report(
            report_document(
                "polr-app",
                "dev",
                [
                    report_result("require-signed", "fail", resource=("Pod", "dev", "app"), severity="high"),
                    report_result("require-signed", "fail", resource=("Pod", "dev", "web"), severity="high"),
                    report_result("require-labels", "pass", resource=("Pod", "dev", "app")),
                ],
            )
        )
    )
    store.apply(
        parse_report(
            report_document(
                "cpolr",
                "",
                [report_result("ns-quota", "warn", resource=("Namespace", "", "dev"), category="Quota")],
            )
        )
    )
    return store, registry


def test_default_mode_exposes_every_family_with_exact_values() -> None:
    store, registry = build(ReportsConfig())
    series = scrape(registry)
    common = {"rule": "check", "source": "kyverno", "category": "", "kind": "Pod", "namespace": "dev"}
    assert named(series, metrics.POLICY_REPORT_RESULTS.name) == {
        labels(**common, policy="require-signed", status="fail", severity="high"): 2.0,
        labels(**common, policy="require-labels", status="pass", severity=""): 1.0,
    }
    assert named(series, metrics.CLUSTER_POLICY_REPORT_RESULTS.name) == {
        labels(
            policy="ns-quota",
            rule="check",
            status="warn",
            severity="",
            category="Quota",
            source="kyverno",
            kind="Namespace",
        ): 1.0
    }
    summary = named(series, metrics.POLICY_REPORT_SUMMARY.name)
    assert summary == {
        labels(namespace="dev", report="polr-app", status=status): count
        for status, count in {"pass": 1.0, "fail": 2.0, "warn": 0.0, "error": 0.0, "skip": 0.0}.items()
    }
    assert (
        named(series, metrics.CLUSTER_POLICY_REPORT_SUMMARY.name)[labels(report="cpolr", status="warn")]
        == 1.0
    )
    assert named(series, metrics.POLICY_REPORT_TRANSITIONS.name + "_total") == {
        labels(namespace="dev", policy="require-signed", status="fail"): 2.0,
        labels(namespace="", policy="ns-quota", status="warn"): 1.0,
    }
    assert named(series, metrics.POLICY_REPORT_OLDEST_FAILURE.name) == {
        labels(namespace="dev", policy="require-signed"): 1_000.0
    }
    assert named(series, metrics.REPORTS_HELD.name) == {
        labels(api="wgpolicyk8s.io/v1alpha2/ClusterPolicyReport"): 1.0,
        labels(api="wgpolicyk8s.io/v1alpha2/PolicyReport"): 1.0,
    }
    assert named(series, metrics.REPORT_RESULTS_HELD.name) == {(): 4.0}

    # deleting the report makes its series vanish; the transitions counter keeps its history
    store.delete(("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "polr-app"))
    after = scrape(registry)
    assert named(after, metrics.POLICY_REPORT_RESULTS.name) == {}
    assert named(after, metrics.POLICY_REPORT_SUMMARY.name) == {}
    assert named(after, metrics.POLICY_REPORT_OLDEST_FAILURE.name) == {}
    assert (
        named(after, metrics.POLICY_REPORT_TRANSITIONS.name + "_total")[
            labels(namespace="dev", policy="require-signed", status="fail")
        ]
        == 2.0
    )


def test_detailed_mode_adds_resource_name_and_report() -> None:
    _store, registry = build(ReportsConfig(label_mode="detailed"))
    results = named(scrape(registry), metrics.POLICY_REPORT_RESULTS.name)
    failing = {dict(key)["name"]: value for key, value in results.items() if dict(key)["status"] == "fail"}
    assert failing == {"app": 1.0, "web": 1.0}
    assert {dict(key)["report"] for key in results} == {"polr-app"}
    cluster = named(scrape(registry), metrics.CLUSTER_POLICY_REPORT_RESULTS.name)
    assert [dict(key)["name"] for key in cluster] == ["dev"]


def test_custom_mode_uses_exactly_the_configured_labels() -> None:
    _store, registry = build(ReportsConfig(label_mode="custom", custom_labels=("namespace", "status")))
    series = scrape(registry)
    assert named(series, metrics.POLICY_REPORT_RESULTS.name) == {
        labels(namespace="dev", status="fail"): 2.0,
        labels(namespace="dev", status="pass"): 1.0,
    }
    assert named(series, metrics.CLUSTER_POLICY_REPORT_RESULTS.name) == {labels(status="warn"): 1.0}


def test_collector_describes_without_collecting() -> None:
    store = ReportStore()
    collector = ReportCollector(store, ReportsConfig())
    assert [family.name for family in collector.describe()] == [
        metrics.POLICY_REPORT_RESULTS.name,
        metrics.CLUSTER_POLICY_REPORT_RESULTS.name,
        metrics.POLICY_REPORT_SUMMARY.name,
        metrics.CLUSTER_POLICY_REPORT_SUMMARY.name,
        metrics.POLICY_REPORT_TRANSITIONS.name,
        metrics.POLICY_REPORT_OLDEST_FAILURE.name,
        metrics.REPORTS_HELD.name,
        metrics.REPORT_RESULTS_HELD.name,
    ]
    assert all(not family.samples for family in collector.describe())


def test_per_report_summaries_can_be_turned_off() -> None:
    _store, registry = build(ReportsConfig(report_summaries=False))
    series = scrape(registry)
    assert named(series, metrics.POLICY_REPORT_SUMMARY.name) == {}
    assert named(series, metrics.CLUSTER_POLICY_REPORT_SUMMARY.name) == {}
    assert named(series, metrics.POLICY_REPORT_RESULTS.name)  # everything else stays
