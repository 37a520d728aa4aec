"""Go's duration syntax (``1h30m``, ``2.5s``, ``300ms``), which Kyverno's conditions and ``time_since`` use.

Durations are integer nanoseconds, as in Go, so ``time_since`` prints exactly what Kyverno prints
(``26h3m4.5s``, ``1.5ms``, ``0s``) and comparisons agree to the nanosecond.
"""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # micro sign
    "μs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")
SECOND = 1_000_000_000


def parse_duration(text: str) -> int | None:
    """Nanoseconds of a Go duration string, or None when ``text`` is not one (Go's ``time.ParseDuration``:
    a bare ``0`` is allowed, any other number needs a unit)."""
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    if not body:
        return None
    total, position = 0, 0
    while position < len(body):
        part = _PART.match(body, position)
        if part is None or (not part[1] and not part[2]):
            return None
        whole, fraction, unit = part[1] or "0", part[2] or "", _UNITS[part[3]]
        total += int(whole) * unit + (int(fraction) * unit // 10 ** len(fraction) if fraction else 0)
        position = part.end()
    return sign * total


def _fraction(value: int, digits: int) -> str:
    """``value`` (< 10**digits) as a decimal fraction without trailing zeros (empty when zero)."""
    text = str(value).rjust(digits, "0").rstrip("0")
    return f".{text}" if text else ""


def format_duration(nanoseconds: int) -> str:
    """A duration as Go's ``Duration.String()`` writes it: ``1h2m3.5s``, ``4m0s``, ``1.5ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < SECOND:
        for unit, size, digits in (("ms", 1_000_000, 6), ("µs", 1_000, 3), ("ns", 1, 0)):
            if value >= size:
                return f"{sign}{value // size}{_fraction(value % size, digits)}{unit}"
    seconds, rest = divmod(value, SECOND)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}{_fraction(rest, 9)}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text
