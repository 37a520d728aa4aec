"""Kyverno's wildcard patterns: ``*`` matches any run of characters (``/`` included), ``?`` one character.

There is no escaping and there are no character classes, so :func:`fnmatch` (which knows ``[...]``) would
read some patterns differently than Kyverno does. Compiled patterns are cached in a bounded LRU.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern`` in full, with Kyverno's ``*`` and ``?`` wildcards."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == name
    return _compile(pattern).fullmatch(name) is not None


def has_wildcard(value: str) -> bool:
    """Whether ``value`` contains a wildcard character."""
    return "*" in value or "?" in value
