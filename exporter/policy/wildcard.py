"""Kyverno's wildcard patterns: ``*`` matches any run of characters (``/`` included), ``?`` one character.

There is no escaping and there are no character classes, so :func:`fnmatch` (which knows ``[...]``) would
read some patterns differently than Kyverno does. Patterns come from policies but the names they are
matched against come from requests (image references, names), so matching must not backtrack: a regular
expression made of several ``.*`` takes exponential time on a crafted name (``*a*a*a*a*a*b`` against 250
characters ran for over a minute). The greedy two-pointer matcher below takes at most
O(len(pattern) x len(name)) steps, and linear time on typical patterns.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=8192)
def wildcard_match(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern`` in full, with Kyverno's ``*`` and ``?`` wildcards.

    Results are cached (bounded): the same few patterns meet the same images on every request."""
    if "*" not in pattern and "?" not in pattern:
        return pattern == name
    if "?" not in pattern and pattern.count("*") == 1 and pattern.endswith("*"):
        return name.startswith(pattern[:-1])  # the common "registry/path/*"
    p = n = 0
    star = -1  # position in pattern just after the last '*' seen
    resume = 0  # position in name where that '*' currently stops matching
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or (pattern[p] != "*" and pattern[p] == name[n])):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p + 1, n
            p += 1
        elif star >= 0:
            # Let the last '*' swallow one more character and retry from there; earlier stars never need
            # to change (any match they allow, the last star can absorb), which is what bounds the work.
            resume += 1
            p, n = star, resume
        else:
            return False
    return all(char == "*" for char in pattern[p:])


def has_wildcard(value: str) -> bool:
    """Whether ``value`` contains a wildcard character."""
    return "*" in value or "?" in value
