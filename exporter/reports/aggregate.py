"""Incrementally maintained counts behind the report metrics, for one label scheme and filter set.

Every report keeps its own contribution (counts per label tuple, summary, failing pairs), the way Policy
Reporter caches label sets per report. Replacing or deleting a report subtracts its old contribution and adds
the new one, so an event costs O(results of that report) and a scrape only walks distinct label sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from exporter.reports.config import ReportsConfig
from exporter.reports.model import STATUSES, VIOLATION_STATUSES, Report, ReportKey

LabelValues = tuple[str, ...]
# (policy, rule, resource identity, source): the same result across updates of one report.
ResultIdentity = tuple[str, str, str, str]
PolicyPair = tuple[str, str]  # (namespace or "" for cluster scope, policy)
# (namespace or "", report name) -> [reports sharing that name, then summary counts in STATUSES order]
SummaryTotals = dict[tuple[str, str], list[int]]
_K = TypeVar("_K")


@dataclass
class _Contribution:
    """What one report adds to the totals, kept so it can be taken back exactly."""

    namespaced: bool
    counts: dict[LabelValues, int] = field(default_factory=dict)
    summary: tuple[int, ...] = ()
    violations: dict[ResultIdentity, str] = field(default_factory=dict)
    failing_since: dict[PolicyPair, float] = field(default_factory=dict)  # oldest failure per pair
    first_seen: dict[ResultIdentity, float] = field(default_factory=dict)  # failing, without timestamp


class ReportAggregate:
    """Totals for one :class:`ReportsConfig`; fed by :class:`ReportStore`, read by the collector.

    Not thread-safe on its own: the store serialises updates and reads with its lock.
    """

    def __init__(self, config: ReportsConfig) -> None:
        self.config = config
        self.scheme = config.scheme()
        self._filters = config.filters
        self._contributions: dict[ReportKey, _Contribution] = {}
        # Equal label tuples of different reports share one object: 10 000 reports, a few thousand sets.
        self._label_pool: dict[LabelValues, LabelValues] = {}
        self.namespaced_results: dict[LabelValues, int] = {}
        self.cluster_results: dict[LabelValues, int] = {}
        # A PolicyReport and an openreports Report of the same name add up in one summary series.
        self.summaries: SummaryTotals = {}
        self.transitions: dict[tuple[str, str, str], int] = {}
        self._failing: dict[PolicyPair, dict[ReportKey, float]] = {}
        self._oldest: dict[PolicyPair, float] = {}
        self._stale_pairs: set[PolicyPair] = set()

    def update(self, key: ReportKey, new: Report | None, now: float, count_transitions: bool = True) -> None:
        """Replace the contribution of report ``key`` with that of ``new`` (None: the report is gone).

        ``count_transitions`` is False while an API is first synced: failures that existed before trustwatch
        started are state, not new violations, and counting them would spike ``increase()`` at each restart.
        """
        old = self._contributions.pop(key, None)
        if old is not None:
            self._withdraw(key, old)
        if new is not None and self._filters.allows_report(new):
            contribution = self._contribution(new, old, now, count_transitions)
            self._contributions[key] = contribution
            self._add(key, new, contribution)

    def oldest_failures(self) -> Iterator[tuple[PolicyPair, float]]:
        """(namespace, policy) -> since when its oldest still-failing result fails."""
        for pair in self._stale_pairs:
            reports = self._failing.get(pair)
            if reports:
                self._oldest[pair] = min(reports.values())
            else:
                self._failing.pop(pair, None)
                self._oldest.pop(pair, None)
        self._stale_pairs.clear()
        return iter(self._oldest.items())

    def _contribution(
        self, report: Report, previous: _Contribution | None, now: float, count_transitions: bool
    ) -> _Contribution:
        filters = self._filters
        scheme = self.scheme
        extract = scheme.namespaced if report.api.namespaced else scheme.cluster
        namespace = report.namespace
        contribution = _Contribution(namespaced=report.api.namespaced, summary=report.summary)
        counts = contribution.counts
        pool = self._label_pool
        old_violations = previous.violations if previous is not None else {}
        old_first_seen = previous.first_seen if previous is not None else {}
        for result in report.results:
            if not filters.allows_result(result):
                continue
            status = result.status
            violation = status in VIOLATION_STATUSES
            for resource in result.resources:
                if not filters.allows_resource(resource):
                    continue
                labels = extract(report, result, resource)
                labels = pool.setdefault(labels, labels)
                counts[labels] = counts.get(labels, 0) + 1
                if not violation:
                    continue
                identity = (result.policy, result.rule, resource.identity(), result.source)
                contribution.violations[identity] = status
                if count_transitions and old_violations.get(identity) != status:
                    transition = (namespace, result.policy, status)
                    self.transitions[transition] = self.transitions.get(transition, 0) + 1
                if status != "fail":
                    continue
                if result.timestamp is not None:
                    since = result.timestamp[0] + result.timestamp[1] / 1e9
                else:
                    since = old_first_seen.get(identity, now)
                    contribution.first_seen[identity] = since
                pair = (namespace, result.policy)
                current = contribution.failing_since.get(pair)
                if current is None or since < current:
                    contribution.failing_since[pair] = since
        return contribution

    def _add(self, key: ReportKey, report: Report, contribution: _Contribution) -> None:
        totals = self.namespaced_results if contribution.namespaced else self.cluster_results
        for labels, count in contribution.counts.items():
            totals[labels] = totals.get(labels, 0) + count
        summary = self.summaries.setdefault((key[1], key[2]), [0] * (len(STATUSES) + 1))
        summary[0] += 1
        for index, count in enumerate(contribution.summary, start=1):
            summary[index] += count
        for pair, since in contribution.failing_since.items():
            self._failing.setdefault(pair, {})[key] = since
            self._stale_pairs.add(pair)

    def _withdraw(self, key: ReportKey, contribution: _Contribution) -> None:
        totals = self.namespaced_results if contribution.namespaced else self.cluster_results
        for labels, count in contribution.counts.items():
            if _decrement(totals, labels, count):
                self._label_pool.pop(labels, None)
        summary = self.summaries[(key[1], key[2])]
        if summary[0] == 1:
            del self.summaries[(key[1], key[2])]
        else:
            summary[0] -= 1
            for index, count in enumerate(contribution.summary, start=1):
                summary[index] -= count
        for pair in contribution.failing_since:
            self._failing.get(pair, {}).pop(key, None)
            self._stale_pairs.add(pair)


def _decrement(totals: dict[_K, int], key: _K, count: int) -> bool:
    """Subtract ``count``; drop the entry at zero so its series vanishes. Returns whether it was dropped."""
    remaining = totals[key] - count
    if remaining:
        totals[key] = remaining
        return False
    del totals[key]
    return True
