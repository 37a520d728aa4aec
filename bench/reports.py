"""Benchmark of the PolicyReport watcher at cluster scale (default: 10 000 reports x 50 results).

The fake Kubernetes API server runs in a child process (so its memory and CPU are not counted) and serves
the reports through the real protocol. In this process:

1. initial sync: ``KubeReportSource`` until ``ready`` (discovery, paged lists through the kubernetes client,
   parsing, store and default-mode aggregates), against a baseline measured in the same run: plain
   ``json.loads`` of the very same list page bodies (target: sync <= 3x baseline);
2. peak RSS of this process after the sync (target <= 400 MB);
3. scrape: the /metrics body as the status server builds it (``render_metrics``: instrumented metrics
   through prometheus_client, report families through ``ReportExposition``'s cached series prefixes), in
   OpenMetrics (what Prometheus asks for first) and text 0.0.4, default and detailed mode (target: default
   <= 100 ms), against a baseline in the same run: ``generate_latest`` of the very same samples collected
   beforehand (prometheus_client's text formatting alone, the floor of the previous path); plus that
   previous path itself (``generate_latest`` of a registry holding the collector), the collector's own
   share, the first render (which makes every prefix) and the one-time cost of adding a label mode;
4. one report update (50 results, statuses flipped) applied to stores holding 1 000 .. N reports, with
   the three label configurations of step 3 registered: the cost should stay flat as the total grows.

Run: ``python3 bench/reports.py [--reports 10000] [--results 50]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kubernetes.client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from exporter.metrics import ServiceMetrics
from exporter.reports.collector import ReportCollector
from exporter.reports.config import ReportsConfig, WatchTuning
from exporter.reports.exposition import ReportExposition
from exporter.reports.model import POLICY_REPORT, Report, parse_report
from exporter.reports.sources.kube import KubeReportSource
from exporter.reports.store import ReportStore
from exporter.status_server import render_metrics
from tests.support.fake_kube import FakeKubeServer

NAMESPACES = 100
POLICIES = 25  # x 2 rules = 50 results per report by default
KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "Job")
PAGE = 500
OPENMETRICS = "application/openmetrics-text;version=1.0.0"  # what Prometheus 2.42 asks for first


def make_report(index: int, results: int, flip: bool = False) -> dict[str, Any]:
    """A Kyverno-style per-resource PolicyReport: one workload, every policy/rule evaluated against it."""
    namespace = f"team-{index % NAMESPACES:03d}"
    kind = KINDS[index % len(KINDS)]
    name = f"workload-{index:05d}"
    uid = f"00000000-0000-0000-0000-{index:012d}"
    entries = []
    for number in range(results):
        policy, rule = f"policy-{number // 2 % POLICIES:02d}", f"rule-{number % 2}"
        roll = (index * 7 + number * 13 + (5 if flip else 0)) % 100
        status = "fail" if roll < 9 else "warn" if roll < 15 else "pass"
        entries.append(
            {
                "policy": policy,
                "rule": rule,
                "result": status,
                "severity": ("low", "medium", "high")[number % 3],
                "category": "Pod Security Standards (Baseline)",
                "source": "kyverno",
                "scored": True,
                "message": f"validation rule '{rule}' {'passed' if status == 'pass' else 'failed'}.",
                "timestamp": {"seconds": 1_714_557_600 + index, "nanos": 0},
                "resources": [
                    {"apiVersion": "apps/v1", "kind": kind, "name": name, "namespace": namespace, "uid": uid}
                ],
            }
        )
    statuses = [entry["result"] for entry in entries]
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": uid,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "kyverno"},
        },
        "scope": {"apiVersion": "apps/v1", "kind": kind, "name": name, "namespace": namespace, "uid": uid},
        "summary": {s: statuses.count(s) for s in ("pass", "fail", "warn", "error", "skip")},
        "results": entries,
    }


def serve(connection: Connection, reports: int, results: int) -> None:
    """Child process: a fake API server holding the reports until told to stop."""

    async def main() -> None:
        async with FakeKubeServer(groups_present=["wgpolicyk8s.io"]) as server:
            for index in range(reports):
                server.put_object(make_report(index, results))
            connection.send(server.url)
            await asyncio.to_thread(connection.recv)

    asyncio.run(main())


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fetch_pages(url: str) -> list[bytes]:
    bodies, token = [], ""
    while True:
        query = f"?limit={PAGE}" + (f"&continue={token}" if token else "")
        with urllib.request.urlopen(f"{url}/apis/wgpolicyk8s.io/v1alpha2/policyreports{query}") as response:
            body = response.read()
        bodies.append(body)
        token = json.loads(body)["metadata"].get("continue", "")
        if not token:
            return bodies


async def initial_sync(url: str, store: ReportStore, config: ReportsConfig) -> float:
    def client() -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(kubernetes.client.Configuration(host=url))

    source = KubeReportSource(client, store, ServiceMetrics(), config)
    started = time.perf_counter()
    task = asyncio.create_task(source.run())
    await source.ready.wait()
    elapsed = time.perf_counter() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed


def json_baseline(url: str) -> tuple[float, float]:
    """Seconds to json.loads every list page body (downloaded first, not timed), and their total MB."""
    bodies = fetch_pages(url)
    started = time.perf_counter()
    for body in bodies:
        json.loads(body)
    return time.perf_counter() - started, sum(map(len, bodies)) / 1e6


def timed(function: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def update_cost(
    store: ReportStore, sizes: list[int], results: int, count: int = 200
) -> list[tuple[int, float]]:
    """Median cost of applying one changed report, measured with the store shrunk to each size."""
    keys = sorted(store.keys())
    rows = []
    for size in sorted(sizes, reverse=True):
        for key in keys[size:]:
            store.delete(key)
        keys = keys[:size]
        versions: list[tuple[Report, Report]] = []
        for index in range(count):
            original = store.get(keys[index % len(keys)])
            assert original is not None
            number = int(original.name.rsplit("-", 1)[1])
            changed = parse_report(make_report(number, results, flip=True), POLICY_REPORT)
            versions.append((changed, original))
        samples = []
        for changed, original in versions:
            started = time.perf_counter()
            store.apply(changed)
            samples.append(time.perf_counter() - started)
            store.apply(original)
        rows.append((size, statistics.median(samples)))
    return sorted(rows)


Row = tuple[str, str, str]  # measurement, value, target


class _Prebuilt(CollectorRegistry):
    """Baseline: the same samples collected once up front, so a scrape is prometheus_client's text
    formatting alone: the floor of any collector that goes through prometheus_client)."""

    def __init__(self, collector: ReportCollector) -> None:
        super().__init__(auto_describe=False)
        self._families = list(collector.collect())

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def scrape_rows(store: ReportStore, tuning: WatchTuning) -> list[Row]:
    """Scrape time per label mode (median of 5, detailed: of 3) against the floor of the previous path."""
    rows: list[Row] = []
    modes = [
        ("default mode", ReportsConfig(tuning=tuning), "<= 100 ms"),
        ("default, no per-report summaries", ReportsConfig(report_summaries=False, tuning=tuning), ""),
        ("detailed mode", ReportsConfig(label_mode="detailed", tuning=tuning), ""),
    ]
    instrumented = ServiceMetrics().registry
    for label, config, target in modes:
        started = time.perf_counter()
        exposition = ReportExposition(store, config)  # a new mode fills its aggregate once, here
        fill = time.perf_counter() - started
        collector = exposition.collector
        registry = CollectorRegistry()  # the previous path: the collector on the registry
        registry.register(instrumented)
        registry.register(collector)
        repeat = 3 if config.label_mode == "detailed" else 5
        first = timed(lambda: render_metrics(instrumented, exposition, OPENMETRICS), 1)  # noqa: B023
        scrape = timed(lambda: render_metrics(instrumented, exposition, OPENMETRICS), repeat)  # noqa: B023
        text = timed(lambda: render_metrics(instrumented, exposition, ""), repeat)  # noqa: B023
        lines = render_metrics(instrumented, exposition, OPENMETRICS)[0].count(b"\n")
        collect = timed(lambda: list(collector.collect()), repeat)  # noqa: B023 - used within the iteration
        previous = timed(lambda: generate_latest(registry), repeat)  # noqa: B023 - used within the iteration
        floor = timed(lambda: generate_latest(_Prebuilt(collector)), repeat)  # noqa: B023
        value = (
            f"{scrape * 1000:.0f} ms OpenMetrics, {text * 1000:.0f} ms text = {scrape / floor:.2f}x / "
            f"{text / floor:.2f}x the previous path's exposition floor of {floor * 1000:.0f} ms "
            f"(previous path {previous * 1000:.0f} ms; collector alone {collect * 1000:.0f} ms; "
            f"first render {first * 1000:.0f} ms for {exposition.cached_prefixes} prefixes; "
            f"first fill {fill * 1000:.0f} ms)"
        )
        rows.append((f"scrape, {label} ({lines} lines)", value, target))
    return rows


async def run(reports: int, results: int) -> list[Row]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve, args=(child, reports, results), daemon=True)
    server.start()
    try:
        url = parent.recv()
        tuning = WatchTuning(list_page_size=PAGE)
        store = ReportStore()
        store.aggregate_for(
            ReportsConfig(tuning=tuning)
        )  # the default-mode aggregate is kept during the sync
        rss_before = rss_mb()
        sync = await initial_sync(url, store, ReportsConfig(tuning=tuning))
        rss_after_sync = rss_mb()
        baseline, body_mb = json_baseline(url)
        rows: list[Row] = [
            ("list bodies", f"{body_mb:.0f} MB in pages of {PAGE}", ""),
            ("baseline: json.loads of the same list bodies", f"{baseline:.2f} s", ""),
            (
                "initial sync (discovery, list, parse, store)",
                f"{sync:.2f} s ({sync / baseline:.2f}x)",
                "<= 3x",
            ),
            ("RSS after sync", f"{rss_after_sync:.0f} MB (before: {rss_before:.0f} MB)", "<= 400 MB"),
        ]
        rows += scrape_rows(store, tuning)
        rows.append(("peak RSS after the detailed scrape", f"{rss_mb():.0f} MB", ""))
        sizes = [size for size in (1_000, 2_500, 5_000, 10_000) if size <= reports] or [reports]
        for size, cost in update_cost(store, sizes, results):
            rows.append((f"one {results}-result report update, {size} held", f"{cost * 1e6:.0f} us", "flat"))
        return rows
    finally:
        parent.send("stop")
        server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--results", type=int, default=50)
    args = parser.parse_args()
    rows = asyncio.run(run(args.reports, args.results))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"{machine}; {args.reports} reports x {args.results} results\n")
    print("| measurement | value | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
