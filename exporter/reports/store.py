"""Every report the watcher holds, and the aggregates kept up to date as reports change.

Sources (Kubernetes watch, local directory) call :meth:`ReportStore.apply`, :meth:`ReportStore.delete`
and :meth:`ReportStore.replace_all`; collectors read aggregates at scrape time. One lock serialises the
two, because sources may apply from worker threads while Prometheus scrapes from another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from exporter.reports.aggregate import ReportAggregate
from exporter.reports.config import ReportsConfig
from exporter.reports.model import Report, ReportKey


class ReportStore:
    """Reports keyed by (api, namespace, name), plus one :class:`ReportAggregate` per label config."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._reports: dict[ReportKey, Report] = {}
        self._aggregates: dict[ReportsConfig, ReportAggregate] = {}
        self._held_per_api: dict[str, int] = {}
        self._results_held = 0
        self._lock = threading.RLock()

    def aggregate_for(self, config: ReportsConfig) -> ReportAggregate:
        """The aggregate for ``config``, created (and filled from the reports held) on first use."""
        with self._lock:
            aggregate = self._aggregates.get(config)
            if aggregate is None:
                aggregate = ReportAggregate(config)
                now = self._clock()
                for key, report in self._reports.items():
                    aggregate.update(key, report, now, count_transitions=False)
                self._aggregates[config] = aggregate
            return aggregate

    def apply(self, report: Report, *, count_transitions: bool = True) -> None:
        """Add or replace one report; costs O(results of the old and new versions).

        Pass ``count_transitions=False`` for the initial sync of a source: what already fails is not new.
        """
        key = report.key
        with self._lock:
            old = self._reports.get(key)
            self._reports[key] = report
            self._count(old, -1)
            self._count(report, 1)
            self._update(key, report, count_transitions)

    def delete(self, key: ReportKey) -> bool:
        """Forget one report; returns whether it was held."""
        with self._lock:
            old = self._reports.pop(key, None)
            if old is None:
                return False
            self._count(old, -1)
            self._update(key, None)
            return True

    def replace_all(self, api: str, reports: Iterable[Report], *, count_transitions: bool = True) -> int:
        """Make the reports of ``api`` exactly ``reports`` (a relist): apply each, delete those not listed.

        ``reports`` may be a lazy iterable; the lock is taken per report, so scrapes are not blocked while
        it is produced. Returns how many held reports were deleted because they were not listed.
        """
        listed: set[ReportKey] = set()
        for report in reports:
            if report.api.name != api:
                raise ValueError(f"replace_all({api!r}) got a {report.api.name} report")
            self.apply(report, count_transitions=count_transitions)
            listed.add(report.key)
        stale = [key for key in self.keys(api) if key not in listed]
        for key in stale:
            self.delete(key)
        return len(stale)

    def get(self, key: ReportKey) -> Report | None:
        with self._lock:
            return self._reports.get(key)

    def keys(self, api: str | None = None) -> list[ReportKey]:
        with self._lock:
            return [key for key in self._reports if api is None or key[0] == api]

    def __len__(self) -> int:
        return len(self._reports)

    @property
    def results_held(self) -> int:
        return self._results_held

    def held_per_api(self) -> dict[str, int]:
        with self._lock:
            return {api: count for api, count in self._held_per_api.items() if count}

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the store still while a collector reads an aggregate."""
        with self._lock:
            yield

    def _count(self, report: Report | None, sign: int) -> None:
        if report is None:
            return
        api = report.api.name
        self._held_per_api[api] = self._held_per_api.get(api, 0) + sign
        self._results_held += sign * len(report.results)

    def _update(self, key: ReportKey, report: Report | None, count_transitions: bool = True) -> None:
        if not self._aggregates:
            return
        now = self._clock()
        for aggregate in self._aggregates.values():
            aggregate.update(key, report, now, count_transitions)
