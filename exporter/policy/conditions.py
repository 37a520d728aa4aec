"""Kyverno's ``conditions`` (``any``/``all`` of ``key``/``operator``/``value``) as pure functions.

Used by attestation checks: key and value are templates (see :mod:`exporter.policy.expressions`) resolved
over an attestation's predicate, then compared with Kyverno's operators and their type rules:

* ``Equals``/``NotEquals``: same-typed JSON equality; strings compare as durations (``1h`` = ``60m``), then
  as Kubernetes quantities (``1Gi`` = ``1024Mi``), else the value is a wildcard pattern (``v1.*``); numbers
  compare across int/float and with numeric strings.
* ``GreaterThan``/``GreaterThanOrEquals``/``LessThan``/``LessThanOrEquals``: durations, quantities, numbers
  (also written as strings) and semantic versions (``1.10.0`` > ``1.9.2``).
* ``Duration*``: both sides durations (Go syntax, or numbers of seconds).
* ``AnyIn``/``AllIn``/``AnyNotIn``/``AllNotIn`` (and the older ``In``/``NotIn``): the key (one value or a
  list) against the value list (a list, or a JSON list in a string), value entries being wildcard patterns.

A condition is false, never an error, when its sides have types the operator cannot compare (as in
Kyverno); a variable that names nothing is an error
(:class:`exporter.policy.expressions.UnresolvedVariableError`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast, get_args

from exporter.policy.durations import SECOND, parse_duration
from exporter.policy.expressions import Template
from exporter.policy.wildcard import wildcard_match

Operator = Literal[
    "Equals",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThan",
    "GreaterThanOrEquals",
    "LessThan",
    "LessThanOrEquals",
    "DurationGreaterThan",
    "DurationGreaterThanOrEquals",
    "DurationLessThan",
    "DurationLessThanOrEquals",
]
OPERATORS: dict[str, Operator] = {name: cast(Operator, name) for name in get_args(Operator)}
# Kyverno's older spellings, still accepted by its CRD.
OPERATORS["Equal"] = "Equals"
OPERATORS["NotEqual"] = "NotEquals"


@dataclass(frozen=True)
class Condition:
    """One ``key``/``operator``/``value`` with its optional ``message`` (said when it fails)."""

    key: Template
    operator: Operator
    value: Template
    message: str = ""

    def describe(self) -> str:
        """The condition as written, for messages when it has no ``message`` of its own."""
        return f"{_text(self.key.raw)} {self.operator} {_text(self.value.raw)}"


@dataclass(frozen=True)
class ConditionBlock:
    """``any`` (one must hold; None when absent) and ``all`` (every one must hold) of one ``conditions[]``
    entry."""

    any: tuple[Condition, ...] | None
    all: tuple[Condition, ...]


@dataclass(frozen=True)
class Verdict:
    """Whether the conditions held, and when not, why (the failing conditions' messages, ``; ``-joined)."""

    passed: bool
    message: str = ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def evaluate(blocks: tuple[ConditionBlock, ...], data: Any) -> Verdict:
    """Every block must hold, as Kyverno's ``EvaluateAnyAllConditions``: the first block that does not hold
    decides the message. Raises ExpressionError (or UnresolvedVariableError) for a variable that cannot be
    resolved."""
    for block in blocks:
        verdict = _evaluate_block(block, data)
        if not verdict.passed:
            return verdict
    return Verdict(True)


def _evaluate_block(block: ConditionBlock, data: Any) -> Verdict:
    failed: list[Condition] = []
    any_passed = True
    if block.any is not None:
        any_passed = False
        for condition in block.any:
            if holds(condition, data):
                any_passed = True
                break
            failed.append(condition)
    all_passed = True
    for condition in block.all:
        if not holds(condition, data):
            all_passed = False
            failed.append(condition)
            break
    if any_passed and all_passed:
        return Verdict(True)
    if any_passed:
        failed = failed[-1:]  # the failing ``all`` condition; the ``any`` ones that failed do not matter
    messages = [condition.message or condition.describe() for condition in failed]
    return Verdict(False, "; ".join(messages))


def holds(condition: Condition, data: Any) -> bool:
    """Whether one condition holds over ``data``."""
    return compare(condition.operator, condition.key.resolve(data), condition.value.resolve(data))


def compare(operator: Operator, key: Any, value: Any) -> bool:
    """Kyverno's operator semantics over already substituted values (see the module docstring)."""
    return _OPERATIONS[operator](key, value)


# --- scalar types Kyverno compares: durations, quantities, numbers, versions ---


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _durations(key: Any, value: Any) -> tuple[int, int] | None:
    """Both sides in nanoseconds when at least one is a duration string and the other a duration or a
    number of seconds (Kyverno's ``parseDuration``)."""
    key_ns = parse_duration(key) if isinstance(key, str) else None
    value_ns = parse_duration(value) if isinstance(value, str) else None
    if key_ns is None and value_ns is None:
        return None
    if key_ns is None:
        key_ns = _seconds(key)
    if value_ns is None:
        value_ns = _seconds(value)
    return None if key_ns is None or value_ns is None else (key_ns, value_ns)


def _seconds(value: Any) -> int | None:
    return int(value * SECOND) if _is_number(value) else None


def _as_duration(value: Any) -> int | None:
    if isinstance(value, str):
        return parse_duration(value)
    return _seconds(value)


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE]?)")
_BINARY = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{suffix: Decimal(1024) ** power for power, suffix in enumerate(_BINARY, 1)},
}


def parse_quantity(text: str) -> Decimal | None:
    """A Kubernetes resource quantity (``500m``, ``1.5Gi``, ``1e3``) as a number, or None."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        return None
    try:
        number = Decimal(match[1])
        suffix = match[2]
        if suffix in _SUFFIXES:
            return number * _SUFFIXES[suffix]
        return number.scaleb(int(suffix[1:]))
    except ArithmeticError:  # InvalidOperation, Overflow
        return None


_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?"
)
Version = tuple[tuple[int, int, int], tuple[tuple[int, int | str], ...] | None]


def parse_version(text: str) -> Version | None:
    """A semantic version as a comparable key (a pre-release sorts before its release), or None."""
    match = _SEMVER.fullmatch(text)
    if match is None:
        return None
    release = (int(match[1]), int(match[2]), int(match[3]))
    if match[4] is None:
        return release, None
    parts = tuple((0, int(part)) if part.isdigit() else (1, part) for part in match[4].split("."))
    return release, parts


def _version_order(left: Version, right: Version) -> int:
    if left[0] != right[0]:
        return -1 if left[0] < right[0] else 1
    if left[1] == right[1]:
        return 0
    if left[1] is None or right[1] is None:
        return 1 if left[1] is None else -1
    return -1 if left[1] < right[1] else 1


def _number(value: Any) -> Decimal | None:
    if _is_number(value):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip()) if value.strip() else None
        except InvalidOperation:
            return None
    return None


def _order(key: Any, value: Any) -> int | None:
    """-1/0/1 comparing key with value as Kyverno's numeric operators do, or None when incomparable."""
    durations = _durations(key, value)
    if durations is not None:
        return _sign(durations[0] - durations[1])
    if _is_number(key):
        other = _number(value)
        return None if other is None else _sign(Decimal(str(key)) - other)
    if not isinstance(key, str):
        return None
    quantity = parse_quantity(key)
    if quantity is not None:
        other = parse_quantity(value) if isinstance(value, str) else _number(value)
        return None if other is None else _sign(quantity - other)
    version = parse_version(key)
    if version is not None and isinstance(value, str):
        other_version = parse_version(value)
        return None if other_version is None else _version_order(version, other_version)
    return None


def _sign(difference: Decimal | int) -> int:
    return (difference > 0) - (difference < 0)


def _ordered(accept: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def operation(key: Any, value: Any) -> bool:
        order = _order(key, value)
        return order is not None and accept(order)

    return operation


def _duration_ordered(accept: Callable[[int], bool]) -> Callable[[Any, Any], bool]:
    def operation(key: Any, value: Any) -> bool:
        key_ns, value_ns = _as_duration(key), _as_duration(value)
        return key_ns is not None and value_ns is not None and accept(_sign(key_ns - value_ns))

    return operation


# --- equality ---


def equals(key: Any, value: Any) -> bool:
    """Kyverno's ``Equals`` (see the module docstring)."""
    if isinstance(key, bool) or isinstance(value, bool):
        return isinstance(key, bool) and isinstance(value, bool) and key == value
    if _is_number(key):
        if _is_number(value):
            return Decimal(str(key)) == Decimal(str(value))
        other = _number(value) if isinstance(value, str) else None
        return other is not None and Decimal(str(key)) == other
    if isinstance(key, str):
        durations = _durations(key, value)
        if durations is not None:
            return durations[0] == durations[1]
        quantity = parse_quantity(key)
        if quantity is not None and isinstance(value, str):
            other = parse_quantity(value)
            if other is not None:
                return quantity == other
        return isinstance(value, str) and wildcard_match(value, key)
    if isinstance(key, list | Mapping):
        return type(key) is type(value) and key == value
    return False


# --- set membership ---


def _members(value: Any, key: list[str]) -> list[str] | None:
    """The value side of a set operator as strings: a list, or a JSON list in a string (a single string
    equal to a single key also counts); None for any other type."""
    if isinstance(value, list):
        return [_member_text(item) for item in value]
    if isinstance(value, str):
        if len(key) == 1 and key[0] == value:
            return [value]
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        if isinstance(decoded, list):
            return [_member_text(item) for item in decoded]
    return None


def _member_text(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float) and item.is_integer():
        return str(int(item))
    return item if isinstance(item, str) else json.dumps(item)


def _keys(key: Any) -> list[str] | None:
    if isinstance(key, list):
        return [_member_text(item) for item in key]
    if isinstance(key, str) or _is_number(key):
        return [_member_text(key)]
    return None


def _membership(need: Literal["any-in", "all-in", "any-not-in", "all-not-in"]) -> Callable[[Any, Any], bool]:
    def operation(key: Any, value: Any) -> bool:
        keys = _keys(key)
        members = None if keys is None else _members(value, keys)
        if keys is None or members is None:
            return False
        found = [any(wildcard_match(member, item) for member in members) for item in keys]
        if need == "any-in":
            return any(found)
        if need == "all-in":
            return all(found)
        if need == "any-not-in":
            return not all(found)
        return not any(found)

    return operation


_OPERATIONS: dict[Operator, Callable[[Any, Any], bool]] = {
    "Equals": equals,
    "NotEquals": lambda key, value: not equals(key, value),
    # The older In/NotIn: the key (or every key of a list) is, or is not entirely, in the value.
    "In": _membership("all-in"),
    "NotIn": _membership("any-not-in"),
    "AnyIn": _membership("any-in"),
    "AllIn": _membership("all-in"),
    "AnyNotIn": _membership("any-not-in"),
    "AllNotIn": _membership("all-not-in"),
    "GreaterThan": _ordered(lambda order: order > 0),
    "GreaterThanOrEquals": _ordered(lambda order: order >= 0),
    "LessThan": _ordered(lambda order: order < 0),
    "LessThanOrEquals": _ordered(lambda order: order <= 0),
    "DurationGreaterThan": _duration_ordered(lambda order: order > 0),
    "DurationGreaterThanOrEquals": _duration_ordered(lambda order: order >= 0),
    "DurationLessThan": _duration_ordered(lambda order: order < 0),
    "DurationLessThanOrEquals": _duration_ordered(lambda order: order <= 0),
}
