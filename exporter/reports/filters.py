"""Include/exclude glob filters that decide which results become metrics.

Filters are applied when a report is stored, not at scrape time, so a filtered-out result costs nothing
afterwards. Matching is memoised per value: label values repeat (a few hundred policies, namespaces and
kinds) so each distinct value is matched against the globs once, in a bounded cache.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import translate

from exporter.reports.model import Report, ResourceRef, Result

# Distinct values remembered per filter; beyond that a value is simply matched again.
_MATCH_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class GlobFilter:
    """A value passes when it matches an ``include`` glob (or there are none) and no ``exclude`` glob."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _include_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _exclude_re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _cache: dict[str, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Tuples whatever was passed, so configs stay hashable (the store keys aggregates by config).
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "_include_re", _compile(self.include))
        object.__setattr__(self, "_exclude_re", _compile(self.exclude))

    @classmethod
    def of(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> GlobFilter:
        return cls(tuple(include), tuple(exclude))

    def allows(self, value: str) -> bool:
        known = self._cache.get(value)
        if known is not None:
            return known
        allowed = (self._include_re is None or self._include_re.match(value) is not None) and (
            self._exclude_re is None or self._exclude_re.match(value) is None
        )
        if len(self._cache) < _MATCH_CACHE_LIMIT:
            self._cache[value] = allowed
        return allowed


def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a list of shell globs (case-sensitive, like Kubernetes names), or None for none."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{translate(glob)})" for glob in globs))


ALLOW_ALL = GlobFilter()


@dataclass(frozen=True)
class ResultFilters:
    """Filters like Policy Reporter's ``metrics.filter``: each dimension has include and exclude globs.

    ``namespaces`` applies to namespaced reports only (cluster-scoped reports have no namespace).
    """

    namespaces: GlobFilter = ALLOW_ALL
    policies: GlobFilter = ALLOW_ALL
    sources: GlobFilter = ALLOW_ALL
    statuses: GlobFilter = ALLOW_ALL
    severities: GlobFilter = ALLOW_ALL
    kinds: GlobFilter = ALLOW_ALL

    def allows_report(self, report: Report) -> bool:
        return not report.namespace or self.namespaces.allows(report.namespace)

    def allows_result(self, result: Result) -> bool:
        return (
            self.policies.allows(result.policy)
            and self.statuses.allows(result.status)
            and self.severities.allows(result.severity)
            and self.sources.allows(result.source)
        )

    def allows_resource(self, resource: ResourceRef) -> bool:
        return self.kinds.allows(resource.kind)
