"""Fast text exposition of the report families: the same series as :class:`ReportCollector`, rendered
without building prometheus_client sample objects.

At cluster scale a scrape is tens of thousands of series, and prometheus_client spends about 10 µs on each
(sample object, label sorting and escaping, float formatting). Like Policy Reporter's label-set cache, each
family here keeps the escaped ``name{label="value",...}`` prefix of every label set, made the first time
the set is rendered and dropped at the first scrape after it disappears, so a series costs a dictionary
lookup and a concatenation. Label order, escaping and number formatting are prometheus_client's own, so
its parsers read exactly the families that :class:`ReportCollector` yields (tests/test_reports_exposition.py).

Names are legal Prometheus names (custom label names are sanitised), which the ``underscores`` and
``allow-utf-8`` escaping schemes leave alone; for the others the status server falls back to
prometheus_client with :attr:`ReportExposition.collector`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import cast

from prometheus_client.utils import floatToGoString

from exporter import metrics
from exporter.metrics import MetricSpec
from exporter.reports.collector import ReportCollector
from exporter.reports.config import ReportsConfig
from exporter.reports.model import STATUSES
from exporter.reports.store import ReportStore

LabelValues = tuple[str, ...]
_float_text = cast(Callable[[float], str], floatToGoString)  # untyped upstream
# Counts are small non-negative integers: their text is looked up instead of formatted per series.
_SMALL_COUNTS = tuple(_float_text(count) for count in range(4096))


def format_value(value: float) -> str:
    """A sample value exactly as prometheus_client writes it (``floatToGoString``)."""
    if type(value) is int and 0 <= value < len(_SMALL_COUNTS):
        return _SMALL_COUNTS[value]
    return _float_text(value)


def escape_label_value(value: str) -> str:
    """Backslash, newline and double quote escaped, as both text formats require."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Prefixes:
    """The escaped series prefix of every label set of one sample name, made once per label set.

    ``open_label`` names a last label whose value the caller appends (the summary's status), so one prefix
    serves all five statuses of a report.
    """

    def __init__(self, sample_name: str, label_names: tuple[str, ...], open_label: str = "") -> None:
        if open_label and any(name > open_label for name in label_names):
            raise ValueError(f"{open_label!r} must sort after {label_names}: labels are written sorted")
        self._sample_name = sample_name
        self._label_names = label_names
        self._order = sorted(range(len(label_names)), key=label_names.__getitem__)
        self._open = f'{open_label}="' if open_label else ""
        self.cache: dict[LabelValues, str] = {}

    def make(self, values: LabelValues) -> str:
        names = self._label_names
        pairs = [f'{names[i]}="{escape_label_value(values[i])}"' for i in self._order]
        if self._open:
            return f"{self._sample_name}{{{','.join([*pairs, self._open])}"
        return f"{self._sample_name}{{{','.join(pairs)}}}" if pairs else self._sample_name

    def of(self, values: LabelValues) -> str:
        prefix = self.cache.get(values)
        if prefix is None:
            prefix = self.cache[values] = self.make(values)
        return prefix

    def prune(self, current: Collection[LabelValues]) -> None:
        """Forget label sets that vanished; after a render the cache holds a superset of ``current``."""
        if len(self.cache) > len(current):
            live = current if isinstance(current, dict) else set(current)
            self.cache = {values: prefix for values, prefix in self.cache.items() if values in live}


def _series(out: list[str], prefixes: _Prefixes, samples: Iterable[tuple[LabelValues, float]]) -> None:
    """``prefix value`` lines, making the prefixes of label sets seen for the first time (the hot loop)."""
    cache, make, append = prefixes.cache, prefixes.make, out.append
    for values, value in samples:
        prefix = cache.get(values)
        if prefix is None:
            prefix = cache[values] = make(values)
        append(f"{prefix} {format_value(value)}\n")


def _help_and_type(name: str, documentation: str, type_: str) -> str:
    return f"# HELP {name} {documentation}\n# TYPE {name} {type_}\n"


class ReportExposition:
    """Renders the report families of one store and label config as exposition text.

    :meth:`render` may be called from any thread: it runs entirely under the store's lock, which also
    serialises it with other renders and with the sources' updates.
    """

    def __init__(self, store: ReportStore, config: ReportsConfig) -> None:
        self.collector = ReportCollector(store, config)
        self._store = store
        self._aggregate = aggregate = store.aggregate_for(config)
        self._summaries = config.report_summaries
        scheme = aggregate.scheme
        transitions = metrics.POLICY_REPORT_TRANSITIONS
        self._results = _Prefixes(metrics.POLICY_REPORT_RESULTS.name, scheme.namespaced_names)
        self._cluster_results = _Prefixes(metrics.CLUSTER_POLICY_REPORT_RESULTS.name, scheme.cluster_names)
        self._summary = _Prefixes(metrics.POLICY_REPORT_SUMMARY.name, ("namespace", "report"), "status")
        self._cluster_summary = _Prefixes(metrics.CLUSTER_POLICY_REPORT_SUMMARY.name, ("report",), "status")
        self._transitions = _Prefixes(f"{transitions.name}_total", transitions.labels)
        self._oldest = _Prefixes(metrics.POLICY_REPORT_OLDEST_FAILURE.name, ("namespace", "policy"))
        self._held = _Prefixes(metrics.REPORTS_HELD.name, metrics.REPORTS_HELD.labels)
        self._results_held = _Prefixes(metrics.REPORT_RESULTS_HELD.name, ())
        self._prefixes = (
            self._results,
            self._cluster_results,
            self._summary,
            self._cluster_summary,
            self._transitions,
            self._oldest,
            self._held,
            self._results_held,
        )
        self._status_tails = tuple(f'{status}"}} ' for status in STATUSES)
        specs = (
            metrics.POLICY_REPORT_RESULTS,
            metrics.CLUSTER_POLICY_REPORT_RESULTS,
            metrics.POLICY_REPORT_SUMMARY,
            metrics.CLUSTER_POLICY_REPORT_SUMMARY,
            transitions,
            metrics.POLICY_REPORT_OLDEST_FAILURE,
            metrics.REPORTS_HELD,
            metrics.REPORT_RESULTS_HELD,
        )
        # 0.0.4 names a counter family after its _total samples and escapes only \\ and newline in help;
        # OpenMetrics keeps the family name and escapes help like a label value.
        self._text_headers = {
            spec.name: _help_and_type(
                f"{spec.name}_total" if spec.type == "counter" else spec.name, _text_help(spec), spec.type
            )
            for spec in specs
        }
        self._openmetrics_headers = {
            spec.name: _help_and_type(spec.name, escape_label_value(spec.documentation), spec.type)
            for spec in specs
        }

    @property
    def cached_prefixes(self) -> int:
        """Label sets whose prefix is cached: the live series of the last render, the cache's only bound."""
        return sum(len(prefixes.cache) for prefixes in self._prefixes)

    def render(self, openmetrics: bool) -> bytes:
        """The report families in the 0.0.4 text format or in OpenMetrics (without the final ``# EOF``)."""
        out: list[str] = []
        headers = self._openmetrics_headers if openmetrics else self._text_headers
        aggregate = self._aggregate
        with self._store.reading():
            out.append(headers[metrics.POLICY_REPORT_RESULTS.name])
            _series(out, self._results, aggregate.namespaced_results.items())
            out.append(headers[metrics.CLUSTER_POLICY_REPORT_RESULTS.name])
            _series(out, self._cluster_results, aggregate.cluster_results.items())
            self._render_summaries(out, headers)
            out.append(headers[metrics.POLICY_REPORT_TRANSITIONS.name])
            # Transitions only ever grow (a counter's series never vanishes): their prefixes need no pruning.
            _series(out, self._transitions, self._aggregate.transitions.items())
            oldest = dict(aggregate.oldest_failures())
            out.append(headers[metrics.POLICY_REPORT_OLDEST_FAILURE.name])
            _series(out, self._oldest, oldest.items())
            held = {(api,): count for api, count in sorted(self._store.held_per_api().items())}
            out.append(headers[metrics.REPORTS_HELD.name])
            _series(out, self._held, held.items())
            out.append(headers[metrics.REPORT_RESULTS_HELD.name])
            _series(out, self._results_held, [((), self._store.results_held)])
            self._results.prune(aggregate.namespaced_results)
            self._cluster_results.prune(aggregate.cluster_results)
            self._oldest.prune(oldest)
            self._held.prune(held)
        return "".join(out).encode()

    def _render_summaries(self, out: list[str], headers: dict[str, str]) -> None:
        """Five series per report from one cached prefix each; namespaced and cluster ones in two families."""
        summaries = self._aggregate.summaries if self._summaries else {}
        namespaced = [(key, counts) for key, counts in summaries.items() if key[0]]
        cluster = [((key[1],), counts) for key, counts in summaries.items() if not key[0]]
        for spec, prefixes, reports in (
            (metrics.POLICY_REPORT_SUMMARY, self._summary, namespaced),
            (metrics.CLUSTER_POLICY_REPORT_SUMMARY, self._cluster_summary, cluster),
        ):
            out.append(headers[spec.name])
            append, of, tails = out.append, prefixes.of, self._status_tails
            for key, counts in reports:
                prefix = of(key)
                for tail, count in zip(tails, counts[1:], strict=True):
                    append(f"{prefix}{tail}{format_value(count)}\n")
            prefixes.prune([key for key, _ in reports])


def _text_help(spec: MetricSpec) -> str:
    return spec.documentation.replace("\\", r"\\").replace("\n", r"\n")
