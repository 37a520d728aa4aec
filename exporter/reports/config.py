"""Settings of the report watcher and its metrics, validated once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.reports.filters import ALLOW_ALL, GlobFilter, ResultFilters
from exporter.reports.labels import LabelMode, LabelScheme, build_scheme


@dataclass(frozen=True)
class WatchTuning:
    """Timing of the Kubernetes source; tests shrink these, production keeps the defaults."""

    rediscover_interval: float = 60.0  # how often missing report APIs are looked for again
    backoff_initial: float = 0.5  # first retry delay after an error, doubled up to backoff_max, with jitter
    backoff_max: float = 30.0
    watch_timeout_seconds: int = 300  # server-side watch timeout; the watch is then resumed from its RV
    request_timeout: float = 60.0  # client-side read timeout for lists and watch streams
    list_page_size: int = 500  # limit per list page, so a big cluster is never one huge body


@dataclass(frozen=True)
class ReportsConfig:
    """What the watcher keeps and how its metrics are labelled.

    ``namespaces`` (include/exclude globs) decides which namespaced reports are held at all (cluster-scoped
    reports always are); ``filters`` decides which held results become metrics.
    """

    label_mode: LabelMode = "default"
    custom_labels: tuple[str, ...] = ()
    filters: ResultFilters = field(default_factory=ResultFilters)
    namespaces: GlobFilter = ALLOW_ALL
    # Per-report summary series: 5 per report, so at 10 000 reports they are most of a default scrape.
    report_summaries: bool = True
    tuning: WatchTuning = field(default_factory=WatchTuning)

    def scheme(self) -> LabelScheme:
        """The label scheme of ``label_mode``; raises LabelConfigError with the fix for a bad custom list."""
        return build_scheme(self.label_mode, self.custom_labels)

    def holds_namespace(self, namespace: str) -> bool:
        """Whether reports of ``namespace`` ("" for cluster scope) are held at all."""
        return not namespace or self.namespaces.allows(namespace)
