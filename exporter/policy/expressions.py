"""Kyverno's ``{{ }}`` variables: JMESPath expressions (the ``jmespath`` library) with Kyverno's functions.

A policy value is a *template*: any JSON value whose strings may hold ``{{ expression }}``. Expressions are
compiled once, when the policy loads (a syntax error or an unknown function is a load error naming the
field); at evaluation a string that is exactly one variable becomes the expression's value (a list, a
number…), and a string mixing text and variables gets each value spliced in as text (JSON for non-strings),
as Kyverno substitutes them.

Functions beyond JMESPath's own, with Kyverno's names and behaviour: ``to_upper``, ``to_lower``,
``regex_match``, ``time_since``, ``time_now_utc``, ``truncate``, ``split``, ``trim``, ``equal_fold``,
``replace_all``, ``base64_decode``, ``base64_encode``, ``compare``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from exporter.policy.durations import format_duration

# Kyverno's variable pattern: ``{{`` … ``}}`` where the expression may hold single-level ``{…}`` (multiselect
# hashes) but no other braces.
VARIABLE = re.compile(r"\{\{((?:\{[^{}]*\}|[^{}])*)\}\}")
_RFC3339_LAYOUTS = frozenset({"", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00"})
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


class ExpressionError(ValueError):
    """An expression that cannot be evaluated over this data (wrong argument types, bad time…)."""


class UnresolvedVariableError(ExpressionError):
    """A variable that names nothing in the data (Kyverno: ``Unknown key "<key>" in path``)."""


def parse_time(text: str, layout: str) -> datetime:
    """An RFC 3339 time (the layout Kyverno uses when ``layout`` is empty); other Go layouts are refused."""
    if layout not in _RFC3339_LAYOUTS:
        raise ExpressionError(f"time layout {layout!r} is not supported; use '' (RFC 3339)")
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("z", "Z"))
    except ValueError:
        raise ExpressionError(f"{text!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ExpressionError(f"{text!r} has no time zone (RFC 3339 needs Z or an offset)")
    return parsed


def _nanoseconds(later: datetime, earlier: datetime) -> int:
    delta = later - earlier
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class KyvernoFunctions(functions.Functions):
    """Kyverno's custom JMESPath functions (the subset documented in docs/policies.md)."""

    @functions.signature({"types": ["string"]})
    def _func_to_upper(self, text: str) -> str:
        return text.upper()

    @functions.signature({"types": ["string"]})
    def _func_to_lower(self, text: str) -> str:
        return text.lower()

    @functions.signature({"types": ["string"]}, {"types": ["string", "number"]})
    def _func_regex_match(self, pattern: str, value: str | float) -> bool:
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            return re.search(pattern, text) is not None
        except re.error as exc:
            raise ExpressionError(f"regex_match: invalid regular expression {pattern!r}: {exc}") from None

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_time_since(self, layout: str, first: str, second: str) -> str:
        start = parse_time(first, layout)
        end = parse_time(second, layout) if second else datetime.now(UTC)
        return format_duration(_nanoseconds(end, start))

    @functions.signature()
    def _func_time_now_utc(self) -> str:
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @functions.signature({"types": ["string"]}, {"types": ["number"]})
    def _func_truncate(self, text: str, length: float) -> str:
        return text[: max(0, int(length))]

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, text: str, separator: str) -> list[str]:
        return list(text) if separator == "" else text.split(separator)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_trim(self, text: str, cutset: str) -> str:
        return text.strip(cutset)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_equal_fold(self, first: str, second: str) -> bool:
        return first.casefold() == second.casefold()

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace_all(self, text: str, old: str, new: str) -> str:
        return text.replace(old, new)

    @functions.signature({"types": ["string"]})
    def _func_base64_decode(self, text: str) -> str:
        try:
            return base64.b64decode(text, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ExpressionError(f"base64_decode: {exc}") from None

    @functions.signature({"types": ["string"]})
    def _func_base64_encode(self, text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_compare(self, first: str, second: str) -> int:
        return (first > second) - (first < second)


_FUNCTIONS = KyvernoFunctions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
_KNOWN_FUNCTIONS = frozenset(_FUNCTIONS.FUNCTION_TABLE)


def _function_names(node: Mapping[str, Any]) -> list[str]:
    names = [str(node["value"])] if node.get("type") == "function_expression" else []
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            names.extend(_function_names(child))
    return names


def compile_expression(text: str) -> ParsedResult:
    """Compile one JMESPath expression; ValueError (with the parser's reason) for a syntax error or a
    function neither JMESPath nor Kyverno (as supported here) has."""
    try:
        parsed = jmespath.compile(text.strip())
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {text.strip()!r}: {exc}") from None
    unknown = [name for name in _function_names(parsed.parsed) if name not in _KNOWN_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown function {unknown[0]}() in {text.strip()!r}; see docs/policies.md")
    return parsed


def _first_missing(expression: str, data: Any) -> str:
    """For a dotted path, the first key that is absent (what Kyverno's message names); else the whole
    expression."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", expression):
        return expression
    for key in expression.split("."):
        if not isinstance(data, Mapping) or key not in data:
            return key
        data = data[key]
    return expression


@dataclass(frozen=True, eq=False)
class Template:
    """A policy value whose strings may hold ``{{ }}`` variables, compiled once (see the module docstring).

    ``raw`` is the value as written; ``compiled`` maps each expression's text to its compiled form.
    """

    raw: Any
    compiled: Mapping[str, ParsedResult]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(json.dumps(self.raw, sort_keys=True, default=str))

    def resolve(self, data: Any) -> Any:
        """The value with every variable substituted; raises UnresolvedVariableError for a variable that
        yields nothing (null), ExpressionError for one that cannot be evaluated."""
        return self._resolve(self.raw, data)

    def _evaluate(self, expression: str, data: Any) -> Any:
        try:
            value = self.compiled[expression].search(data, options=_OPTIONS)
        except ExpressionError:
            raise
        except JMESPathError as exc:
            raise ExpressionError(f"{expression.strip()}: {exc}") from None
        if value is None:
            raise UnresolvedVariableError(f'Unknown key "{_first_missing(expression.strip(), data)}" in path')
        return value

    def _resolve(self, value: Any, data: Any) -> Any:
        if isinstance(value, str):
            whole = VARIABLE.fullmatch(value.strip())
            if whole is not None:
                return self._evaluate(whole[1], data)
            return VARIABLE.sub(lambda match: _as_text(self._evaluate(match[1], data)), value)
        if isinstance(value, list):
            return [self._resolve(item, data) for item in value]
        if isinstance(value, Mapping):
            return {key: self._resolve(item, data) for key, item in value.items()}
        return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _expressions(value: Any) -> list[str]:
    if isinstance(value, str):
        return [match[1] for match in VARIABLE.finditer(value)]
    if isinstance(value, list):
        return [expression for item in value for expression in _expressions(item)]
    if isinstance(value, Mapping):
        return [expression for item in value.values() for expression in _expressions(item)]
    return []


def compile_template(raw: Any) -> Template:
    """Compile every variable in ``raw``; ValueError naming the first bad expression."""
    return Template(raw, {expression: compile_expression(expression) for expression in _expressions(raw)})
