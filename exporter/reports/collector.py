"""Scrape-time collector: turns the store's aggregates into the report metric families.

Nothing is counted here: every family is a walk over already-aggregated label sets, so a scrape costs
O(series), and series of deleted reports are simply absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.metrics import MetricSpec
from exporter.reports.config import ReportsConfig
from exporter.reports.model import STATUSES
from exporter.reports.store import ReportStore


class ReportCollector(Collector):
    """The report metrics of one store, labelled per ``config``; register it on the caller's registry."""

    def __init__(self, store: ReportStore, config: ReportsConfig) -> None:
        self._store = store
        self._aggregate = store.aggregate_for(config)
        self._summaries = config.report_summaries

    def describe(self) -> list[Metric]:
        """Families without samples, so registering never runs a full collection."""
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        aggregate = self._aggregate
        families = self._families()
        with self._store.reading():
            _fill(families.results, aggregate.namespaced_results.items())
            _fill(families.cluster_results, aggregate.cluster_results.items())
            for (namespace, report), counts in aggregate.summaries.items() if self._summaries else ():
                if namespace:
                    for status, count in zip(STATUSES, counts[1:], strict=True):
                        families.summary.add_metric((namespace, report, status), count)
                else:
                    for status, count in zip(STATUSES, counts[1:], strict=True):
                        families.cluster_summary.add_metric((report, status), count)
            for labels, count in aggregate.transitions.items():
                families.transitions.add_metric(labels, count)
            _fill(families.oldest_failure, aggregate.oldest_failures())
            for api, count in sorted(self._store.held_per_api().items()):
                families.reports_held.add_metric((api,), count)
            families.results_held.add_metric((), self._store.results_held)
        yield from families

    def _families(self) -> _Families:
        scheme = self._aggregate.scheme
        transitions = metrics.POLICY_REPORT_TRANSITIONS
        return _Families(
            _gauge(metrics.POLICY_REPORT_RESULTS, scheme.namespaced_names),
            _gauge(metrics.CLUSTER_POLICY_REPORT_RESULTS, scheme.cluster_names),
            _gauge(metrics.POLICY_REPORT_SUMMARY),
            _gauge(metrics.CLUSTER_POLICY_REPORT_SUMMARY),
            CounterMetricFamily(transitions.name, transitions.documentation, labels=transitions.labels),
            _gauge(metrics.POLICY_REPORT_OLDEST_FAILURE),
            _gauge(metrics.REPORTS_HELD),
            _gauge(metrics.REPORT_RESULTS_HELD),
        )


class _Families(NamedTuple):
    results: GaugeMetricFamily
    cluster_results: GaugeMetricFamily
    summary: GaugeMetricFamily
    cluster_summary: GaugeMetricFamily
    transitions: CounterMetricFamily
    oldest_failure: GaugeMetricFamily
    reports_held: GaugeMetricFamily
    results_held: GaugeMetricFamily


def _gauge(spec: MetricSpec, labels: tuple[str, ...] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.documentation, labels=spec.labels if labels is None else labels)


def _fill(family: GaugeMetricFamily, samples: Iterable[tuple[tuple[str, ...], float]]) -> None:
    add = family.add_metric
    for labels, value in samples:
        add(labels, value)
