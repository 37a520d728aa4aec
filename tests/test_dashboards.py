"""The Grafana dashboards: current with their generator, well-formed, and reading only defined metrics."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from exporter.metrics import ALL_METRICS, MetricSpec
from tests.support.admission import prepare_walkthrough, review_body, workload
from tests.support.prometheus import PrometheusQueryError, PrometheusServer
from tests.support.promql import DashboardQuery, dashboard_queries, metric_names
from tests.support.registry import RegistryServer, registry_available
from tests.support.serve import ServeProcess, poll

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
CHART_DASHBOARD_DIR = ROOT / "deploy" / "helm" / "trustwatch" / "dashboards"
EXAMPLE_REPORTS = ROOT / "exporter" / "defaults" / "reports"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "trustwatch-rules.yaml"
DEFINED_SERIES = {name for spec in ALL_METRICS for name in spec.series_names()}
EXPECTED = {
    "trustwatch-policy-reports.json",
    "trustwatch-admission.json",
    "trustwatch-health.json",
}


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard_build", DASHBOARD_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_all_panels(panel.get("panels", [])))
    return found


def _all_queries() -> list[DashboardQuery]:
    return [query for board in _dashboards().values() for query in dashboard_queries(board)]


def test_committed_dashboards_match_the_generator_in_both_places() -> None:
    rendered = _builder().render()
    assert set(rendered) == EXPECTED
    for directory in (DASHBOARD_DIR, CHART_DASHBOARD_DIR):
        for name, text in rendered.items():
            assert (directory / name).read_text() == text, (
                f"{directory / name} is stale: run python3 dashboards/build.py"
            )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_is_current_grafana_json_with_unique_ids(name: str) -> None:
    board = _dashboards()[name]
    assert board["schemaVersion"] >= 39
    assert board["uid"] and len(board["uid"]) <= 40
    panels = _all_panels(board["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} overflows the grid"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_panel_and_target_uses_the_datasource_variable(name: str) -> None:
    board = _dashboards()[name]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "cluster" in variables
    for panel in _all_panels(board["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"


def test_policy_report_dashboard_offers_every_filter_and_uses_it() -> None:
    board = _dashboards()["trustwatch-policy-reports.json"]
    names = {variable["name"] for variable in board["templating"]["list"]}
    assert {"datasource", "cluster", "namespace", "policy", "source", "severity"} <= names
    exprs = " ".join(query.expr for query in dashboard_queries(board))
    for variable in ("$cluster", "$namespace", "$policy", "$source", "$severity"):
        assert variable in exprs


def test_every_metric_a_dashboard_reads_is_defined_in_exporter_metrics() -> None:
    used: dict[str, list[str]] = {}
    for query in _all_queries():
        for name in metric_names(query.series_query()):
            used.setdefault(name, []).append(str(query))
    assert used, "no metric found in any dashboard"
    undefined = {name: where for name, where in used.items() if name not in DEFINED_SERIES}
    assert not undefined, f"dashboards read metrics not defined in exporter/metrics.py: {undefined}"


def test_each_dashboard_has_its_documented_panels() -> None:
    """Each dashboard shows the panels docs/deploy.md describes (titles are what users look for)."""
    titles = {
        name: {panel["title"] for panel in _all_panels(board["panels"])}
        for name, board in _dashboards().items()
    }
    assert {
        "Results by status",
        "New violations per hour",
        "Failing results by namespace",
        "Failing results by policy and rule",
        "Oldest unresolved failure",
        "Results by source",
    } <= titles["trustwatch-policy-reports.json"]
    assert {
        "Admission reviews by decision",
        "Enforcement denials by namespace and policy",
        "Unsigned images admitted (Audit)",
        "Verification latency (uncached)",
        "Cache hit ratio",
        "Registry error ratio",
        "Fail-open admissions",
        "Verified-image coverage",
        "Report queue",
    } <= titles["trustwatch-admission.json"]
    assert {
        "Report watch up",
        "Watch restarts",
        "Time since last report event",
        "Reports held",
        "Policy load errors",
        "Certificate expires in",
        "Event loop lag (p99)",
        "Connections closed at the cap",
    } <= titles["trustwatch-health.json"]


def test_report_gauges_are_deduplicated_across_replicas() -> None:
    """Replicas export identical report series; summing them raw would double every count."""
    replicated = {
        "trustwatch_policy_report_results",
        "trustwatch_cluster_policy_report_results",
        "trustwatch_policy_report_result_transitions_total",
    }
    for query in _all_queries():
        if query.is_variable or not metric_names(query.expr) & replicated:
            continue
        assert "max without (instance, pod)" in query.expr, str(query)


@pytest.mark.prometheus
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as a recording rule expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus); .ci/run installs it")
    queries = _all_queries()
    rules = [{"record": f"dashboard:query_{i}", "expr": query.evaluable()} for i, query in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_names_ignores_labels_functions_keywords_and_durations() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, webhook) (rate(a_bucket{le!="+Inf", x=~"by|on"}[5m])))'
        " > on (webhook) group_left (policy) 2 * b offset 1h or vector(0) unless c:recorded"
        ' and time() - max without (instance, pod) (d{namespace=~"$namespace"}[$__rate_interval:1m])'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c:recorded", "d"}
    assert metric_names('label_replace(up, "x", "$1", "job", "(.*)")') == {"up"}
    assert metric_names("1e3 + 0x1F + Inf") == set()


def test_dashboard_query_substitutes_grafana_variables() -> None:
    query = DashboardQuery("d", "p", 'rate(m{a=~"$namespace", b="${policy}"}[$__rate_interval])')
    assert query.evaluable() == 'rate(m{a=~".*", b=".*"}[1m])'
    assert query.evaluable({"__rate_interval": "30s", "namespace": "dev"}) == 'rate(m{a=~"dev", b=".*"}[30s])'
    variable = DashboardQuery("d", "v", 'label_values(m{c=~"$cluster"}, namespace)', is_variable=True)
    assert variable.evaluable() == 'm{c=~".*"}'


# --- every query against a real Prometheus ---------------------------------------------------------------
# One or two values per label, chosen so that every filter a panel applies (status="fail", verified="true",
# result=~"hit|shared", non-2xx registry status, ...) matches something.
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "status": ("pass", "fail", "500"),
    "result": ("pass", "fail", "hit", "error"),
    "decision": ("allowed", "denied"),
    "verified": ("true", "false"),
    "cached": ("true", "false"),
    "namespace": ("dev", "prod"),
    "webhook": ("mutate",),
    "api": ("wgpolicyk8s.io/v1alpha2/PolicyReport",),
}


class SyntheticExporter:
    """Every family of exporter.metrics.ALL_METRICS with plausible samples; counters grow on each scrape."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        for spec in ALL_METRICS:
            yield self._family(spec)

    def _family(self, spec: MetricSpec) -> Metric:
        choices = [LABEL_VALUES.get(label, ("x",)) for label in spec.labels]
        combos = [dict(zip(spec.labels, values, strict=True)) for values in itertools.product(*choices)]
        grow = float(self.scrapes)
        if spec.type == "counter":
            counter = CounterMetricFamily(spec.name, spec.documentation, labels=spec.labels)
            for labels in combos:
                counter.add_metric(list(labels.values()), grow)
            return counter
        if spec.type == "histogram":
            histogram = HistogramMetricFamily(spec.name, spec.documentation, labels=spec.labels)
            for labels in combos:
                buckets = [("0.01", grow), ("1.0", 2 * grow), ("+Inf", 3 * grow)]
                histogram.add_metric(list(labels.values()), buckets, sum_value=grow)
            return histogram
        if spec.type == "info":
            info = InfoMetricFamily(spec.name.removesuffix("_info"), spec.documentation, labels=())
            info.add_metric([], {"version": "0.0.0-test"})
            return info
        gauge = GaugeMetricFamily(spec.name, spec.documentation, labels=spec.labels)
        value = time.time() + 30 * 86400 if spec.name.endswith("_timestamp_seconds") else 1.0
        for labels in combos:
            gauge.add_metric(list(labels.values()), value)
        return gauge


@pytest.fixture
def synthetic_target() -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(SyntheticExporter())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.prometheus
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    tmp_path: Path, synthetic_target: str
) -> None:
    """With every defined metric exposed, each panel query and variable query returns data.

    This proves the queries are coherent with the metric names, label names and label values; the
    end-to-end test against `trustwatch serve` proves the service really exposes them.
    """
    with PrometheusServer(tmp_path, [synthetic_target]) as prometheus:
        prometheus.wait_for_targets_up()
        prometheus.wait_for_data("increase(trustwatch_admission_requests_total[10s]) > 0")
        empty = [
            str(query)
            for query in _all_queries()
            if not prometheus.query(query.evaluable({"__rate_interval": "10s", "__range": "1m"}))
        ]
    assert not empty, "queries without data:\n" + "\n".join(empty)


@pytest.mark.prometheus
def test_prometheus_helper_scrapes_keeps_target_labels_and_reports_bad_queries(
    tmp_path: Path, synthetic_target: str
) -> None:
    with PrometheusServer(tmp_path, [synthetic_target], job="helper-test") as prometheus:
        assert prometheus.url.startswith("http://127.0.0.1:")
        prometheus.wait_for_targets_up()
        (up,) = prometheus.wait_for_data('up{job="helper-test"}')
        assert up["value"][1] == "1"
        namespaces = prometheus.query("count by (namespace) (trustwatch_policy_report_summary)")
        assert {row["metric"]["namespace"] for row in namespaces} == {"dev", "prod"}, "honor_labels lost"
        assert prometheus.query("1 + 1")[0]["value"][1] == "2"
        with pytest.raises(PrometheusQueryError, match="parse error"):
            prometheus.query("sum by (namespace (broken")
    assert prometheus.log() is not None


@pytest.mark.prometheus
@pytest.mark.registry
def test_every_dashboard_query_returns_data_from_trustwatch_serve(tmp_path: Path) -> None:
    """End to end: a real Prometheus scrapes a real `trustwatch serve` that watches the
    shipped example reports and answers walkthrough admission traffic (signed and unsigned images from a real
    registry, Enforce in prod, Audit in dev); then every panel and variable query returns data, and the alert
    rules fire on the real label sets: a denial in prod, an unsigned image admitted in dev, nothing else."""
    if not registry_available():
        pytest.skip("needs Debian's docker-registry (/usr/bin/docker-registry)")
    with RegistryServer(tmp_path / "registry") as registry:
        walkthrough = prepare_walkthrough(registry, tmp_path)
        serve_args = ("--policies", str(walkthrough.policy_file), "--reports-dir", str(EXAMPLE_REPORTS))
        with (
            ServeProcess(tmp_path, *serve_args, "--insecure-registry", registry.host) as serve,
            PrometheusServer(tmp_path, [serve.metrics_url], rule_files=[ALERT_RULES]) as prometheus,
        ):
            prometheus.wait_for_targets_up()

            def traffic(round_: int) -> None:
                for namespace in ("prod", "dev"):
                    for tag, image in (("signed", walkthrough.signed), ("unsigned", walkthrough.unsigned)):
                        body = review_body(workload("Deployment", f"{tag}-{round_}", namespace, image))
                        serve.review(body)
                        serve.review(body, path="/validate")

            # Counter series appear at their first value; rate()/increase() need traffic on both sides of a
            # scrape, so send a second round once the first one has been scraped.
            traffic(1)
            prometheus.wait_for_data("trustwatch_admission_denials_total")
            traffic(2)
            prometheus.wait_for_data(
                'increase(trustwatch_admission_requests_total{webhook="mutate"}[10s]) > 0'
            )
            empty = _queries_still_without_data(prometheus)
            firing = poll(
                lambda: _firing(
                    prometheus, {"TrustwatchEnforcementDenied", "TrustwatchUnsignedImageAdmitted"}
                )
            )
            active = {alert["labels"]["alertname"] for alert in prometheus.alerts()}
    assert not empty, "queries without data:\n" + "\n".join(empty)
    routing = {"policy": "check-image-signature", "rule": "autogen-verify-image"}
    assert firing["TrustwatchEnforcementDenied"] == {**routing, "namespace": "prod", "severity": "warning"}
    assert firing["TrustwatchUnsignedImageAdmitted"] == {**routing, "namespace": "dev", "severity": "warning"}
    assert active == set(firing), "alerts active on a healthy trustwatch"


def _queries_still_without_data(prometheus: PrometheusServer, timeout: float = 30.0) -> list[str]:
    """Dashboard queries that return nothing, re-asking the empty ones until ``timeout``: report files are
    written and re-read asynchronously, and increase() needs two scrapes of a series to answer."""
    pending = {
        str(query): query.evaluable({"__rate_interval": "10s", "__range": "1m"}) for query in _all_queries()
    }

    def all_answered() -> bool:
        for name, expr in list(pending.items()):
            if prometheus.query(expr):
                del pending[name]
        return not pending

    with contextlib.suppress(AssertionError):
        poll(all_answered, timeout=timeout, interval=0.5)
    return sorted(pending)


def _firing(prometheus: PrometheusServer, names: set[str]) -> dict[str, dict[str, str]] | None:
    """Labels (without alertname) of each named alert once all of them fire, else None."""
    firing = {
        alert["labels"]["alertname"]: {k: v for k, v in alert["labels"].items() if k != "alertname"}
        for alert in prometheus.alerts()
        if alert["state"] == "firing"
    }
    return firing if names <= set(firing) else None
