"""The fast report exposition and /metrics against prometheus_client's own output of the same collector.

Both exposition formats are parsed with prometheus_client's parsers; the fast path must yield exactly the
families and samples (names, help, types, labels, values, order) that the collector does today.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import metrics
from exporter.metrics import ServiceMetrics
from exporter.reports.config import ReportsConfig
from exporter.reports.exposition import ReportExposition, format_value
from exporter.reports.filters import GlobFilter, ResultFilters
from exporter.reports.model import parse_report
from exporter.reports.store import ReportStore
from exporter.status_server import render_metrics
from tests.support.fake_kube import report_document, report_result

TEXT = ""  # what Prometheus < 2.5 and curl send: the 0.0.4 text format
OPENMETRICS = "application/openmetrics-text; version=1.0.0"  # Prometheus 2.42 asks for this first

# prometheus_client leaves its OpenMetrics parser unannotated; it yields families as its text parser does.
parse_openmetrics: Callable[[str], Iterable[Metric]] = openmetrics_parser.text_string_to_metric_families

AWKWARD = 'quote " backslash \\ newline \n tab \t ünïcødé ☃ end\\'
CONFIGS = {
    "default": ReportsConfig(),
    "no summaries": ReportsConfig(report_summaries=False),
    "detailed": ReportsConfig(label_mode="detailed"),
    "custom": ReportsConfig(
        label_mode="custom",
        custom_labels=("status", "namespace", "label:app.kubernetes.io/team", "property:image", "policy"),
    ),
    "custom, cluster family without labels": ReportsConfig(label_mode="custom", custom_labels=("namespace",)),
    "filters": ReportsConfig(
        filters=ResultFilters(
            namespaces=GlobFilter.of(exclude=["kube-*"]),
            statuses=GlobFilter.of(exclude=["skip"]),
            kinds=GlobFilter.of(exclude=["Event"]),
        )
    ),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.25

    def __call__(self) -> float:
        return self.now


OPENREPORTS = "openreports.io/v1alpha1"


def apply(store: ReportStore, document: dict[str, Any], count_transitions: bool = True) -> None:
    store.apply(parse_report(document), count_transitions=count_transitions)


def populate(store: ReportStore, clock: Clock) -> None:
    """Awkward label values everywhere, both scopes, both APIs, transitions and both kinds of failure age."""
    awkward = report_result(
        f"policy {AWKWARD}",
        "fail",
        rule=AWKWARD,
        resource=("Pod", "dev", f"pod {AWKWARD}"),
        severity="high",
        category=AWKWARD,
        properties={"image": f"registry/app:{AWKWARD}"},
    )
    stamped = report_result("require-signed", "fail", timestamp={"seconds": 1_714_557_600, "nanos": 5})
    labels = {"app.kubernetes.io/team": AWKWARD}
    apply(
        store,
        report_document(f"report {AWKWARD}", "dev", [awkward, stamped], labels=labels),
        count_transitions=False,
    )
    apply(
        store,
        report_document(
            "polr-mixed",
            f"ns-{AWKWARD}",
            [
                report_result("require-signed", "pass"),
                report_result("require-signed", "skip", resource=("Event", "ns", "e")),
                report_result("require-labels", "warn", resource=None),
                report_result("require-labels", "error", resource=("Pod", "default", "x")),
            ],
        ),
    )
    apply(store, report_document("shared-name", "dev", [report_result("p", "pass")]))
    apply(store, report_document("shared-name", "dev", [report_result("p", "fail")], api_version=OPENREPORTS))
    apply(store, report_document("sys", "kube-system", [report_result("p", "fail")]))
    cluster = [report_result(AWKWARD, "warn", resource=("Namespace", "", AWKWARD), category="Quota")]
    apply(store, report_document(f"cluster {AWKWARD}", "", cluster))
    apply(store, report_document("cluster-or", "", [report_result("c", "fail")], api_version=OPENREPORTS))
    clock.now += 3_600.125  # a new failure first seen later: a fractional, exponent-formatted timestamp
    apply(store, report_document("later", "dev", [report_result("require-signed", "fail")]))
    apply(
        store, report_document("big", "prod", [report_result("many", "pass")] * 5000)
    )  # count beyond tables


def families(registry: CollectorRegistry | ReportExposition, accept: str) -> list[Metric]:
    """Parsed families of what prometheus_client's encoder, or the fast path, writes for ``accept``."""
    if isinstance(registry, ReportExposition):
        body = registry.render(openmetrics=accept == OPENMETRICS).decode()
    else:
        body = choose_encoder(accept)[0](registry).decode().removesuffix("# EOF\n")
    if accept == OPENMETRICS:
        return list(parse_openmetrics(body + "# EOF\n"))
    return list(parse_text(body))


def reference(exposition: ReportExposition) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(exposition.collector)
    return registry


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS], ids=["text 0.0.4", "openmetrics"])
def test_fast_path_parses_into_exactly_the_collectors_families(config: ReportsConfig, accept: str) -> None:
    clock = Clock()
    store = ReportStore(clock=clock)
    exposition = ReportExposition(store, config)
    populate(store, clock)
    expected = families(reference(exposition), accept)
    assert families(exposition, accept) == expected
    sample_labels = {
        value for family in expected for sample in family.samples for value in sample.labels.values()
    }
    if config is CONFIGS["default"]:
        assert {f"policy {AWKWARD}", AWKWARD, f"ns-{AWKWARD}", f"report {AWKWARD}"} <= sample_labels
    names = {family.name for family in expected}
    assert len(names) == len(expected)  # each family once
    assert families(exposition, accept) == expected  # the second render, from cached prefixes, too


@pytest.mark.parametrize("accept", [TEXT, OPENMETRICS], ids=["text 0.0.4", "openmetrics"])
def test_vanished_series_vanish_and_new_ones_appear(accept: str) -> None:
    clock = Clock()
    store = ReportStore(clock=clock)
    config = ReportsConfig(label_mode="detailed")
    exposition = ReportExposition(store, config)
    populate(store, clock)
    exposition.render(openmetrics=accept == OPENMETRICS)
    for key in store.keys()[::2]:
        store.delete(key)
    apply(store, report_document("new", "qa", [report_result("fresh", "fail")]))
    expected = families(reference(exposition), accept)
    assert families(exposition, accept) == expected
    results = next(family for family in expected if family.name == metrics.POLICY_REPORT_RESULTS.name)
    assert "qa" in {sample.labels["namespace"] for sample in results.samples}
    for key in list(store.keys()):
        store.delete(key)
    empty = families(exposition, accept)
    assert empty == families(reference(exposition), accept)
    transitions = metrics.POLICY_REPORT_TRANSITIONS.name
    counters = {f"{transitions}_total"}  # counters never go back
    assert {sample.name for family in empty for sample in family.samples} - counters == {
        metrics.REPORT_RESULTS_HELD.name
    }
    assert exposition.cached_prefixes == 1 + len(store.aggregate_for(config).transitions)


def test_values_are_formatted_like_prometheus_client() -> None:
    assert [
        format_value(value) for value in (0, 7, 4095, 4096, 12_345_678, 1.5, 1_714_557_600.000000005)
    ] == [
        "0.0",
        "7.0",
        "4095.0",
        "4096.0",
        "1.2345678e+07",
        "1.5",
        "1.7145576e+09",
    ]


def instrumented() -> ServiceMetrics:
    service = ServiceMetrics()
    service.admission_requests.labels("validate", "CREATE", "Pod", "denied").inc()
    service.watch_up.labels("local").set(1)
    return service


ACCEPTS = {
    "none (text 0.0.4)": "",
    "Prometheus 2.42": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "openmetrics allow-utf-8": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    "text 1.0.0 underscores": "text/plain;version=1.0.0;escaping=underscores",
}
# Escapings that rewrite even legal names: prometheus_client writes everything, byte for byte as before.
FALLBACK_ACCEPTS = {
    "text 1.0.0 dots": "text/plain;version=1.0.0;escaping=dots",
    "openmetrics values": "application/openmetrics-text;version=1.0.0;escaping=values",
}


def endpoint(accept: str) -> tuple[bytes, str, bytes]:
    """/metrics' body and content type, and prometheus_client's body with the collector registered."""
    clock = Clock()
    store = ReportStore(clock=clock)
    exposition = ReportExposition(store, ReportsConfig())
    populate(store, clock)
    service = instrumented()
    body, content_type = render_metrics(service.registry, exposition, accept)
    today = CollectorRegistry()  # the registry as it was: instrumented metrics plus the collector
    today.register(service.registry)
    today.register(exposition.collector)
    encoder, expected_type = choose_encoder(accept)
    assert content_type == expected_type
    return body, content_type, encoder(today)


@pytest.mark.parametrize("accept", ACCEPTS.values(), ids=ACCEPTS.keys())
def test_metrics_endpoint_body_equals_prometheus_clients_with_the_collector_registered(accept: str) -> None:
    body, content_type, expected = endpoint(accept)
    parse = parse_openmetrics if "openmetrics" in content_type else parse_text
    assert list(parse(body.decode())) == list(parse(expected.decode()))
    text = body.decode()
    if "openmetrics" in content_type:
        assert text.count("# EOF") == 1 and text.endswith("\n# EOF\n")
    else:
        assert "# EOF" not in text
    help_lines = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert len(help_lines) == len(set(help_lines))  # no family twice
    assert any(metrics.POLICY_REPORT_RESULTS.name in line for line in help_lines)
    assert any(metrics.ADMISSION_REQUESTS.name in line for line in help_lines)


def test_without_reports_the_endpoint_is_prometheus_clients_output() -> None:
    service = instrumented()
    for accept in (TEXT, OPENMETRICS):
        encoder, content_type = choose_encoder(accept)
        assert render_metrics(service.registry, None, accept) == (encoder(service.registry), content_type)


@pytest.mark.parametrize("accept", FALLBACK_ACCEPTS.values(), ids=FALLBACK_ACCEPTS.keys())
def test_escapings_that_rename_legal_names_fall_back_to_prometheus_client(accept: str) -> None:
    body, _content_type, expected = endpoint(accept)
    assert body == expected
    assert f"\n{metrics.POLICY_REPORT_RESULTS.name}{{".encode() not in body  # sample names were rewritten
