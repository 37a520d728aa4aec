"""Decoding JSON documents that must be objects, with errors that say which document was wrong.

Documents from the network can be hostile: nested a million levels deep, holding a 5 000-digit number,
a lone UTF-16 surrogate (valid JSON, but no valid text), or hundreds of thousands of tiny values. Every
such failure becomes the caller's error type with a message, never a stray exception; :class:`JsonLimits`
bounds what a caller is willing to walk afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JsonLimits:
    """Bounds on a decoded document: nesting depth, total values, and the length of any string."""

    max_depth: int = 100
    max_values: int = 250_000
    max_string: int = 256 * 1024


def parse_json_object(
    data: bytes | str,
    what: str,
    error: Callable[[str], Exception],
    limits: JsonLimits | None = None,
) -> dict[str, Any]:
    """``data`` decoded as a JSON object; otherwise raises ``error("<what> is not JSON (...)")``,
    ``error("<what> is not a JSON object")``, or (with ``limits``) ``error("<what> ...")`` naming the bound
    that was exceeded."""
    try:
        document = json.loads(data)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, integers beyond 4 300 digits
        raise error(f"{what} is not JSON ({exc})") from None
    except RecursionError:  # hostile input: thousands of nested arrays or objects
        raise error(f"{what} is nested too deeply to be decoded") from None
    if not isinstance(document, dict):
        raise error(f"{what} is not a JSON object")
    if limits is not None:
        problem = bounds_problem(document, limits)
        if problem is not None:
            raise error(f"{what}: {problem}")
    return document


def bounds_problem(document: Any, limits: JsonLimits) -> str | None:
    """Why ``document`` exceeds ``limits`` (None when it does not), found by an iterative walk, so no
    depth can exhaust the stack; it also refuses strings that cannot be encoded (lone surrogates)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    values = 0
    while stack:
        value, depth = stack.pop()
        values += 1
        if values > limits.max_values:
            return f"more than {limits.max_values} values"
        if isinstance(value, dict):
            if depth > limits.max_depth:
                return f"nested deeper than {limits.max_depth} levels"
            for key, item in value.items():
                problem = _string_problem(key, limits)
                if problem is not None:
                    return problem
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > limits.max_depth:
                return f"nested deeper than {limits.max_depth} levels"
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            problem = _string_problem(value, limits)
            if problem is not None:
                return problem
    return None


def _string_problem(text: str, limits: JsonLimits) -> str | None:
    if len(text) > limits.max_string:
        return f"a string is longer than {limits.max_string} characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a string holds an unpaired surrogate (\\ud800-\\udfff), which is not text"
    return None
