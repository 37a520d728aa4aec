"""PromQL helpers for tests: which metric names an expression reads, and every query a dashboard runs.

Dashboards and alert rules must only read metrics defined in ``exporter/metrics.py``; a regex over the raw
expression would trip on label names, label values, functions and durations, so :func:`metric_names`
removes those first.

API (used by the dashboard, rule and end-to-end tests):

* ``metric_names(expr) -> set[str]``: series names the PromQL expression selects.
* ``dashboard_queries(dashboard) -> list[DashboardQuery]``: every panel target and every query variable of a
  Grafana dashboard (nested rows included), with the raw expression.
* ``DashboardQuery.evaluable(overrides=None) -> str``: the expression with Grafana variables substituted so
  a plain Prometheus can evaluate it: multi-value variables become ``.*``, ``$__rate_interval`` and friends
  become durations (pass ``overrides`` to change any of them, e.g. ``{"__rate_interval": "30s"}``);
  ``label_values(query, label)`` variables become their inner ``query``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Words PromQL treats specially; they are never series names.
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?|\[\[(\w+)\]\]")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*$", re.DOTALL)

# Grafana's built-in interval variables, replaced by fixed durations for evaluation.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "5m",
    "__auto": "30s",
}


def metric_names(expr: str) -> set[str]:
    """Series names selected by a PromQL expression (functions, keywords, labels and durations removed)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    text = _GRAFANA_VARIABLE.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


@dataclass(frozen=True)
class DashboardQuery:
    """One PromQL query of a dashboard and where it lives (for readable failures)."""

    dashboard: str
    location: str
    expr: str
    is_variable: bool = False

    def series_query(self) -> str:
        """The PromQL part: a ``label_values(q, label)`` variable becomes ``q``."""
        found = _LABEL_VALUES.match(self.expr)
        if found:
            return found.group(1)
        return self.expr

    def evaluable(self, overrides: Mapping[str, str] | None = None) -> str:
        """The query with every Grafana variable replaced so Prometheus itself can run it."""
        values = {**DEFAULT_VARIABLES, **(overrides or {})}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return values.get(name, ".*")

        return _GRAFANA_VARIABLE.sub(substitute, self.series_query())

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.location}: {self.expr}"


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[DashboardQuery]:
    """Every PromQL expression of a Grafana dashboard: panel targets and query variables."""
    title = str(dashboard.get("title", "?"))
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                location = f"panel {panel.get('id')} {panel.get('title', '')!r} ref {target.get('refId')}"
                queries.append(DashboardQuery(title, location, str(target["expr"])))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        expr = query.get("query") if isinstance(query, dict) else query
        if expr:
            queries.append(DashboardQuery(title, f"variable {variable['name']}", str(expr), is_variable=True))
    return queries
