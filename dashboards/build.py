#!/usr/bin/env python3
"""Generate trustwatch's Grafana dashboards (JSON) from one description, so the three stay consistent.

Why code and not hand-edited JSON: every panel shares the same datasource variable, label filters and the
replica de-duplication, and a reviewer reads forty lines of queries instead of two thousand lines of JSON.

    python3 dashboards/build.py          # rewrite dashboards/*.json and the Helm chart's copies
    python3 dashboards/build.py --check  # exit 1 when a committed file differs from what this generates

De-duplication: every replica aggregates the same PolicyReports, so report gauges are identical across
replicas and are reduced with ``max without (instance, pod)`` before summing. Admission counters are per
request (each request reaches one replica), so they are summed across replicas.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy import derived  # noqa: E402

OUTPUT_DIRS = (ROOT / "dashboards", ROOT / "deploy" / "helm" / "trustwatch" / "dashboards")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24

CLUSTER = 'cluster=~"$cluster"'
NAMESPACE = 'namespace=~"$namespace"'
POLICY = 'policy=~"$policy"'
REPORT_FILTER = f'{CLUSTER}, {NAMESPACE}, {POLICY}, source=~"$source", severity=~"$severity"'
CLUSTER_REPORT_FILTER = f'{CLUSTER}, {POLICY}, source=~"$source", severity=~"$severity"'
ADMISSION_FILTER = f"{CLUSTER}, {NAMESPACE}, {POLICY}"
RATE = "$__rate_interval"
RANGE = "$__range"


def dedup(selector: str) -> str:
    """Collapse the identical copies every replica exports of a report-store series."""
    return f"max without (instance, pod) ({selector})"


def report_status(status: str, *, cluster: bool = False) -> str:
    """Report results with one status, namespaced or cluster-scoped, under the dashboard's filters."""
    if cluster:
        return f'trustwatch_cluster_policy_report_results{{status="{status}", {CLUSTER_REPORT_FILTER}}}'
    return f'trustwatch_policy_report_results{{status="{status}", {REPORT_FILTER}}}'


def quantile(q: float, metric: str, filters: str, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{filters}}}[{RATE}])))"


def ratio_or_zero(part: str, whole: str, by: str) -> str:
    """part / whole that shows 0 (not "No data") when ``part`` never happened."""
    return f"(sum by ({by}) ({part}) or 0 * sum by ({by}) ({whole})) / sum by ({by}) ({whole})"


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass
class Panel:
    """A panel before layout: ids and grid positions are assigned when the dashboard is assembled."""

    kind: str
    title: str
    description: str
    targets: list[Target]
    width: int = 12
    height: int = 8
    unit: str = "short"
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)
    stack: bool = False


def row(title: str) -> Panel:
    return Panel("row", title, "", [], width=GRID_WIDTH, height=1)


def _target_json(target: Target, ref: str) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": target.expr,
        "legendFormat": target.legend or "__auto",
        "instant": target.instant or target.table,
        "range": not (target.instant or target.table),
        "format": "table" if target.table else "time_series",
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    grid = {"x": x, "y": y, "w": panel.width, "h": panel.height}
    if panel.kind == "row":
        return {
            "type": "row",
            "id": panel_id,
            "title": panel.title,
            "gridPos": grid,
            "collapsed": False,
            "panels": [],
        }
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries":
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stack else 0,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "showPoints": "never",
        }
    steps = [{"color": color, "value": value} for value, color in panel.thresholds]
    options_by_kind: dict[str, dict[str, Any]] = {
        "timeseries": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "stat": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
        },
        "bargauge": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
        },
        "table": {"showHeader": True, "cellHeight": "sm"},
    }
    refs = "ABCDEFGHIJ"
    result: dict[str, Any] = {
        "type": panel.kind,
        "id": panel_id,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": custom,
                "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds" if panel.kind in ("stat", "bargauge") else "palette-classic"},
            },
            "overrides": [],
        },
        "options": options_by_kind[panel.kind],
        "targets": [_target_json(target, refs[i]) for i, target in enumerate(panel.targets)],
    }
    if panel.kind == "table":
        result["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True}}},
            {"id": "sortBy", "options": {"sort": [{"field": "Value", "desc": True}]}},
        ]
    return result


def _layout(panels: Iterable[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at the grid width; rows always start a new line."""
    placed = []
    x = y = line_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if panel.kind == "row" or x + panel.width > GRID_WIDTH:
            y += line_height
            x = line_height = 0
        placed.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
        line_height = max(line_height, panel.height)
    return placed


def _variable(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {
            "selected": True,
            "text": ["All"] if multi else "All",
            "value": ["$__all"] if multi else "$__all",
        },
        "options": [],
        "hide": 0,
    }


def _templating(variables: Iterable[str]) -> dict[str, Any]:
    """The datasource picker plus the requested label filters, each scoped by the ones before it."""
    report = "trustwatch_policy_report_results"
    queries = {
        "cluster": ("Cluster", "label_values(trustwatch_build_info, cluster)"),
        "namespace": ("Namespace", f"label_values({report}{{{CLUSTER}}}, namespace)"),
        "policy": ("Policy", f"label_values({report}{{{CLUSTER}, {NAMESPACE}}}, policy)"),
        "source": ("Source", f"label_values({report}{{{CLUSTER}}}, source)"),
        "severity": ("Severity", f"label_values({report}{{{CLUSTER}}}, severity)"),
        "admission_namespace": (
            "Namespace",
            f"label_values(trustwatch_admission_policy_results_total{{{CLUSTER}}}, namespace)",
        ),
        "admission_policy": (
            "Policy",
            f"label_values(trustwatch_admission_policy_results_total{{{CLUSTER}, {NAMESPACE}}}, policy)",
        ),
    }
    items: list[dict[str, Any]] = [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "options": [],
            "refresh": 1,
        }
    ]
    for variable in variables:
        label, query = queries[variable]
        name = variable.removeprefix("admission_")
        items.append(_variable(name, label, query, multi=name != "cluster"))
    return {"list": items}


def dashboard(
    uid: str, title: str, description: str, variables: Iterable[str], panels: list[Panel]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["trustwatch"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["trustwatch"],
                "title": "trustwatch",
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": _templating(variables),
        "panels": _layout(panels),
    }


# --- the dashboards -----------------------------------------------------------------------------------
def policy_reports() -> dict[str, Any]:
    results = dedup(f"trustwatch_policy_report_results{{{REPORT_FILTER}}}")
    failing = dedup(report_status("fail"))
    cluster_results = dedup(f"trustwatch_cluster_policy_report_results{{{CLUSTER_REPORT_FILTER}}}")
    transitions = f"trustwatch_policy_report_result_transitions_total{{{CLUSTER}, {NAMESPACE}, {POLICY}}}"
    oldest = f"trustwatch_policy_report_oldest_failure_timestamp_seconds{{{CLUSTER}, {NAMESPACE}, {POLICY}}}"
    status_colors = [(None, "green"), (1, "red")]
    panels = [
        row("Overview"),
        *[
            Panel(
                "stat",
                f"{status.capitalize()} results",
                f"Namespaced results with status {status} now.",
                [Target(f"sum({dedup(report_status(status))}) or vector(0)", instant=True)],
                width=4,
                height=4,
                thresholds=colors,
            )
            for status, colors in (
                ("pass", [(None, "green")]),
                ("fail", status_colors),
                ("warn", [(None, "green"), (1, "orange")]),
                ("error", status_colors),
                ("skip", [(None, "blue")]),
            )
        ],
        Panel(
            "stat",
            "Cluster-scoped failures",
            "Failing results in ClusterPolicyReports/ClusterReports now.",
            [Target(f"sum({dedup(report_status('fail', cluster=True))}) or vector(0)", instant=True)],
            width=4,
            height=4,
            thresholds=status_colors,
        ),
        Panel(
            "timeseries",
            "Results by status",
            "Namespaced results over time, per status.",
            [Target(f"sum by (status) ({results})", "{{status}}")],
            width=12,
            stack=True,
        ),
        Panel(
            "timeseries",
            "New violations per hour",
            "Results that entered fail, warn or error in the past hour (new or changed), per status.",
            [Target(f"sum by (status) ({dedup(f'increase({transitions}[1h])')})", "{{status}}")],
            width=12,
        ),
        row("Failures"),
        Panel(
            "bargauge",
            "Failing results by namespace",
            "Top 20 namespaces by failing results now.",
            [Target(f"topk(20, sum by (namespace) ({failing}))", "{{namespace}}", instant=True)],
            width=8,
            height=10,
            thresholds=status_colors,
        ),
        Panel(
            "table",
            "Failing results by policy and rule",
            "Failing results now, per policy and rule.",
            [Target(f"sum by (policy, rule) ({failing})", table=True)],
            width=8,
            height=10,
        ),
        Panel(
            "table",
            "Oldest unresolved failure",
            "How long the oldest still-failing result of each policy has been failing, per namespace.",
            [Target(f"topk(20, time() - min by (namespace, policy) ({oldest}))", table=True)],
            width=8,
            height=10,
            unit="dtdurations",
        ),
        row("Sources"),
        Panel(
            "timeseries",
            "Results by source",
            "Namespaced results per reporting engine and status.",
            [Target(f"sum by (source, status) ({results})", "{{source}} {{status}}")],
            width=12,
        ),
        Panel(
            "timeseries",
            "Cluster-scoped results by source",
            "ClusterPolicyReport/ClusterReport results per reporting engine and status.",
            [Target(f"sum by (source, status) ({cluster_results})", "{{source}} {{status}}")],
            width=12,
        ),
    ]
    return dashboard(
        "trustwatch-policy-reports",
        "trustwatch / Policy reports",
        "Pass/fail/warn trends of every PolicyReport and ClusterPolicyReport, from any engine.",
        ("cluster", "namespace", "policy", "source", "severity"),
        panels,
    )


def admission() -> dict[str, Any]:
    requests = f"trustwatch_admission_requests_total{{{CLUSTER}}}"
    denials = f"trustwatch_admission_denials_total{{{ADMISSION_FILTER}}}"
    audit = f"trustwatch_admission_audit_failures_admitted_total{{{ADMISSION_FILTER}}}"
    fail_open = f"trustwatch_admission_fail_open_total{{{ADMISSION_FILTER}}}"
    workloads = f"trustwatch_admitted_workloads_total{{{CLUSTER}, {NAMESPACE}}}"
    verified = f'trustwatch_admitted_workloads_total{{verified="true", {CLUSTER}, {NAMESPACE}}}'
    lookups = f"trustwatch_verification_cache_lookups_total{{{CLUSTER}}}"
    verifications = f"trustwatch_image_verifications_total{{{CLUSTER}, {POLICY}}}"
    results = f"trustwatch_admission_policy_results_total{{{ADMISSION_FILTER}}}"
    hits = f'trustwatch_verification_cache_lookups_total{{result=~"hit|shared", {CLUSTER}}}'
    registry = f"trustwatch_registry_requests_total{{{CLUSTER}}}"
    registry_errors = f'trustwatch_registry_requests_total{{status!~"2..|3..", {CLUSTER}}}'
    red = [(None, "green"), (1, "red")]
    panels = [
        row("Admission"),
        Panel(
            "timeseries",
            "Admission reviews by decision",
            "Reviews answered per second, by decision.",
            [Target(f"sum by (decision) (rate({requests}[{RATE}]))", "{{decision}}")],
            width=12,
            unit="reqps",
            stack=True,
        ),
        Panel(
            "timeseries",
            "Enforcement denials by namespace and policy",
            "Requests denied by Enforce rules per minute.",
            [
                Target(
                    f"60 * sum by (namespace, policy) (rate({denials}[{RATE}]))", "{{namespace}} {{policy}}"
                )
            ],
            width=12,
        ),
        Panel(
            "stat",
            "Denials in range",
            "Requests denied by Enforce rules in the selected time range.",
            [Target(f"sum(increase({denials}[{RANGE}])) or vector(0)", instant=True)],
            width=6,
            height=5,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "stat",
            "Unsigned images admitted (Audit)",
            "Workloads admitted in Audit namespaces although a rule failed, in the selected time range.",
            [Target(f"sum(increase({audit}[{RANGE}])) or vector(0)", instant=True)],
            width=6,
            height=5,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "stat",
            "Fail-open admissions",
            "Requests admitted although verification could not finish (failurePolicy Ignore), in range.",
            [Target(f"sum(increase({fail_open}[{RANGE}])) or vector(0)", instant=True)],
            width=6,
            height=5,
            thresholds=red,
        ),
        Panel(
            "stat",
            "Verified-image coverage",
            "Share of admitted workloads whose every image verified, in the selected time range.",
            [
                Target(
                    ratio_or_zero(f"increase({verified}[{RANGE}])", f"increase({workloads}[{RANGE}])", ""),
                    instant=True,
                )
            ],
            width=6,
            height=5,
            unit="percentunit",
            thresholds=[(None, "red"), (0.9, "orange"), (0.99, "green")],
        ),
        Panel(
            "table",
            "Unsigned images admitted by namespace and policy",
            "Audit failures admitted in the selected time range.",
            [Target(f"sum by (namespace, policy, rule) (increase({audit}[{RANGE}]))", table=True)],
            width=12,
        ),
        Panel(
            "timeseries",
            "Verified-image coverage by namespace",
            "Share of admitted workloads whose every image verified.",
            [
                Target(
                    ratio_or_zero(f"rate({verified}[{RATE}])", f"rate({workloads}[{RATE}])", "namespace"),
                    "{{namespace}}",
                )
            ],
            width=12,
            unit="percentunit",
        ),
        Panel(
            "timeseries",
            "Rule results by policy type",
            "Admission results per second by policy type (ClusterPolicy, Policy, ImageValidatingPolicy, "
            "NamespacedImageValidatingPolicy) and result: how far the move to ImageValidatingPolicies got.",
            [
                Target(
                    f"sum by (policy_type, result) (rate({results}[{RATE}]))", "{{policy_type}} {{result}}"
                )
            ],
            width=24,
            unit="ops",
            stack=True,
        ),
        row("Verification"),
        Panel(
            "timeseries",
            "Webhook latency",
            "Review latency p50/p95/p99 across replicas.",
            [
                Target(
                    quantile(q, "trustwatch_admission_review_duration_seconds", CLUSTER), f"p{int(q * 100)}"
                )
                for q in (0.5, 0.95, 0.99)
            ],
            width=8,
            unit="s",
            thresholds=[(None, "green"), (1, "orange"), (5, "red")],
        ),
        Panel(
            "timeseries",
            "Verification latency (uncached)",
            "Registry round trips plus signature checks, p50/p95/p99.",
            [
                Target(
                    quantile(q, "trustwatch_image_verification_duration_seconds", CLUSTER), f"p{int(q * 100)}"
                )
                for q in (0.5, 0.95, 0.99)
            ],
            width=8,
            unit="s",
        ),
        Panel(
            "timeseries",
            "Verifications by result",
            "Image verifications per second by result and whether the cache answered.",
            [
                Target(
                    f"sum by (result, cached) (rate({verifications}[{RATE}]))",
                    "{{result}} cached={{cached}}",
                )
            ],
            width=8,
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Cache hit ratio",
            "Lookups answered by the cache or by a verification already in flight.",
            [Target(ratio_or_zero(f"rate({hits}[{RATE}])", f"rate({lookups}[{RATE}])", ""), "hit ratio")],
            width=8,
            unit="percentunit",
        ),
        Panel(
            "timeseries",
            "Registry requests by status",
            "Requests to OCI registries per second.",
            [Target(f"sum by (registry, status) (rate({registry}[{RATE}]))", "{{registry}} {{status}}")],
            width=8,
            unit="reqps",
        ),
        Panel(
            "timeseries",
            "Registry error ratio",
            "Share of registry requests that failed (no response, or a non-2xx/3xx status).",
            [
                Target(
                    ratio_or_zero(
                        f"rate({registry_errors}[{RATE}])", f"rate({registry}[{RATE}])", "registry"
                    ),
                    "{{registry}}",
                )
            ],
            width=8,
            unit="percentunit",
        ),
        row("Audit reports"),
        Panel(
            "timeseries",
            "Report queue",
            "Audit results waiting to be written, per replica.",
            [Target(f"trustwatch_report_queue_depth{{{CLUSTER}}}", "{{instance}}")],
            width=8,
        ),
        Panel(
            "timeseries",
            "Report writes by result",
            "PolicyReport writes per second.",
            [
                Target(
                    f"sum by (result) (rate(trustwatch_report_writes_total{{{CLUSTER}}}[{RATE}]))",
                    "{{result}}",
                )
            ],
            width=8,
            unit="ops",
        ),
        Panel(
            "timeseries",
            "Audit results dropped",
            "Results dropped because the report queue was full.",
            [Target(f"sum(increase(trustwatch_report_queue_dropped_total{{{CLUSTER}}}[{RATE}]))", "dropped")],
            width=8,
            thresholds=red,
        ),
    ]
    return dashboard(
        "trustwatch-admission",
        "trustwatch / Image verification & admission",
        "Admission decisions, enforcement denials, audit failures admitted, verification latency and cache.",
        ("cluster", "admission_namespace", "admission_policy"),
        panels,
    )


def health() -> dict[str, Any]:
    watch_up = f"trustwatch_report_watch_up{{{CLUSTER}}}"
    restarts = f"trustwatch_report_watch_restarts_total{{{CLUSTER}}}"
    expiry = f"trustwatch_serving_certificate_expiry_timestamp_seconds{{{CLUSTER}}}"
    closed = f"trustwatch_http_connections_closed_total{{{CLUSTER}}}"
    panels = [
        row("Report watch"),
        Panel(
            "stat",
            "Report watch up",
            "1 while the list+watch of each report API is healthy, per replica.",
            [Target(watch_up, "{{instance}} {{api}}", instant=True)],
            width=8,
            height=6,
            thresholds=[(None, "red"), (1, "green")],
        ),
        Panel(
            "timeseries",
            "Watch restarts",
            "Restarts per replica and API in each interval (0: none).",
            [
                Target(
                    f"sum by (instance, api) (increase({restarts}[{RATE}]))"
                    f" or 0 * max by (instance, api) ({watch_up})",
                    "{{instance}} {{api}}",
                )
            ],
            width=8,
            height=6,
        ),
        Panel(
            "timeseries",
            "Time since last report event",
            "Seconds since the last watch event or bookmark, per replica and API.",
            [
                Target(
                    f"time() - trustwatch_report_watch_last_event_timestamp_seconds{{{CLUSTER}}}",
                    "{{instance}} {{api}}",
                )
            ],
            width=8,
            height=6,
            unit="s",
        ),
        Panel(
            "timeseries",
            "Reports held",
            "Reports held by each replica, per API.",
            [Target(f"trustwatch_reports{{{CLUSTER}}}", "{{instance}} {{api}}")],
            width=8,
        ),
        Panel(
            "timeseries",
            "Results held",
            "Results held by each replica across all reports.",
            [Target(f"trustwatch_report_results{{{CLUSTER}}}", "{{instance}}")],
            width=8,
        ),
        Panel(
            "stat",
            "Report files skipped",
            "Local report files skipped as unreadable, per replica.",
            [Target(f"trustwatch_report_files_skipped{{{CLUSTER}}}", "{{instance}}", instant=True)],
            width=8,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        row("Policies and serving"),
        Panel(
            "stat",
            "Policies loaded",
            "Kyverno policies in force per replica and kind.",
            [Target(f"trustwatch_policies_loaded{{{CLUSTER}}}", "{{instance}} {{kind}}", instant=True)],
            width=6,
            height=6,
            thresholds=[(None, "blue")],
        ),
        Panel(
            "stat",
            "Last policy load",
            "1: the most recent (re)load succeeded; 0: the last good set is in force.",
            [Target(f"trustwatch_policy_last_load_success{{{CLUSTER}}}", "{{instance}}", instant=True)],
            width=6,
            height=6,
            thresholds=[(None, "red"), (1, "green")],
        ),
        Panel(
            "stat",
            "Policy load errors",
            "Rejected policy (re)loads in the selected time range.",
            [
                Target(
                    f"sum(increase(trustwatch_policy_load_errors_total{{{CLUSTER}}}[{RANGE}]))", instant=True
                )
            ],
            width=6,
            height=6,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "stat",
            "Certificate expires in",
            "Time left on the webhook serving certificate, per replica.",
            [Target(f"({expiry} > 0) - time()", "{{instance}}", instant=True)],
            width=6,
            height=6,
            unit="dtdurations",
            thresholds=[(None, "red"), (3 * 86400, "orange"), (14 * 86400, "green")],
        ),
        Panel(
            "timeseries",
            "Event loop lag (p99)",
            "How late each replica's main event loop ran a timer due every 0.25 s: admission reviews, "
            "watches and report writes waited this long. Above 1 s for 10 minutes, "
            "TrustwatchEventLoopLagging fires.",
            [
                Target(
                    quantile(0.99, "trustwatch_event_loop_lag_seconds", CLUSTER, by="le, instance"),
                    "{{instance}}",
                )
            ],
            width=12,
            unit="s",
        ),
        Panel(
            "timeseries",
            "Connections closed at the cap",
            "Connections closed per interval to hold the connection cap, per replica and listener: "
            "evicted_idle made room for a new connection, refused_at_cap turned one away (0: none).",
            [
                Target(
                    f"sum by (instance, site, reason) (increase({closed}[{RATE}]))"
                    f" or 0 * max by (instance) (trustwatch_build_info{{{CLUSTER}}})",
                    "{{instance}} {{site}} {{reason}}",
                )
            ],
            width=12,
        ),
        Panel(
            "table",
            "Versions",
            "trustwatch version per replica.",
            [Target(f"trustwatch_build_info{{{CLUSTER}}}", table=True)],
            width=24,
            height=6,
        ),
    ]
    return dashboard(
        "trustwatch-health",
        "trustwatch / Health",
        "Is trustwatch itself healthy: report watches, reports held, policy loads, serving certificate, "
        "event loop, connections.",
        ("cluster",),
        panels,
    )


DASHBOARDS = {
    "trustwatch-policy-reports.json": policy_reports,
    "trustwatch-admission.json": admission,
    "trustwatch-health.json": health,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def outputs() -> dict[Path, str]:
    """Every committed copy: the repository's dashboards/ and the Helm chart's."""
    return {directory / name: text for name, text in render().items() for directory in OUTPUT_DIRS}


def main(argv: list[str] | None = None) -> int:
    return derived.run(__file__, outputs, argv)


if __name__ == "__main__":
    sys.exit(main())
