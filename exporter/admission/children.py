"""Labelled metric children, looked up once per label combination.

``prometheus_client``'s ``labels()`` validates its arguments and takes a lock on every call (about 5 µs);
the webhook makes half a dozen such calls per request, a third of a warm review's cost. The children are
kept in a dict keyed by metric and label values; the label values are already bounded (namespaces folded
by the include/exclude globs, policies and rules from the loaded policies), and the dict stops growing at
``max_entries`` regardless, falling back to ``labels()``. :class:`BoundedValues` bounds label values that
come from requests.
"""

from __future__ import annotations

from typing import Any, Protocol


class Labelled(Protocol):
    def labels(self, *values: str) -> Any: ...


class MetricChildren:
    """``get(metric, *values)`` returns ``metric.labels(*values)``, memoised (values in label order)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._max_entries = max_entries

    def get(self, metric: Labelled, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            if len(self._children) < self._max_entries:
                self._children[key] = child
        return child


class BoundedValues:
    """Label values taken from requests (namespaces, registry hosts): the first ``limit`` distinct values
    are kept as they are, later ones fold into ``overflow``, so a client choosing values cannot grow the
    number of series (and the memory they hold) without bound."""

    def __init__(self, limit: int, overflow: str = "other") -> None:
        self._limit = limit
        self._overflow = overflow
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return self._overflow
        self._seen.add(value)
        return value
