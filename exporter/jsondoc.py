"""Decoding JSON documents that must be objects, with errors that say which document was wrong.

Documents from the network can be hostile: nested a million levels deep, holding a 5 000-digit number,
a lone UTF-16 surrogate (valid JSON, but no valid text), or hundreds of thousands of tiny values. Every
such failure becomes the caller's error type with a message, never a stray exception; :class:`JsonLimits`
bounds what a caller is willing to walk afterwards.
"""

from __future__ import annotations

import json
import re
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
        enforce_limits(document, data, limits, what, error)
    return document


def refuse_value_floods(text: str, limits: JsonLimits, what: str, error: Callable[[str], Exception]) -> None:
    """Raise ``error("<what>: more than N values")`` when ``text`` certainly holds more values than
    ``limits`` allow, judged before decoding it, or ``error("<what> is not a JSON object")`` when such a
    text is not an object.

    Decoding a flood of values (a 3 MB array, 40 000 containers) builds millions of small objects only to
    refuse them: the time is wasted and, freed among longer-lived objects, they leave the allocator's
    arenas fragmented, so the process stays larger for good. Every comma outside strings separates two
    values, so ``1 +`` their count is at most the values the walk of :func:`bounds_problem` counts: a
    refusal here is never wrong. Strings are cut out only when the commas of the whole text are over the
    limit, which real documents are not.
    """
    if text.count(",") < limits.max_values:
        return
    if _OBJECT_START.match(text) is None:
        raise error(f"{what} is not a JSON object")
    unescaped = text.replace("\\\\", "").replace('\\"', "") if "\\" in text else text
    if _STRING.sub("", unescaped).count(",") >= limits.max_values:
        raise error(f"{what}: more than {limits.max_values} values")


# JSON whitespace, then the opening brace of an object.
_OBJECT_START = re.compile(r"[ \t\n\r]*\{")
# A string once escaped backslashes and quotes are removed (one C call: no Python code runs meanwhile).
_STRING = re.compile(r'"[^"]*"')


def enforce_limits(
    document: Any, data: bytes | str, limits: JsonLimits, what: str, error: Callable[[str], Exception]
) -> None:
    """Raise ``error("<what>: <problem>")`` when ``document`` (decoded from ``data``) exceeds ``limits``.

    Only a \\uD800-\\uDFFF escape can produce a lone surrogate (raw UTF-8 cannot encode one), so strings
    are checked for them only when the text has such an escape.
    """
    escapes = _SURROGATE_ESCAPE.search(data if isinstance(data, str) else data.decode("latin-1"))
    problem = bounds_problem(document, limits, check_text=escapes is not None)
    if problem is not None:
        raise error(f"{what}: {problem}")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def bounds_problem(document: Any, limits: JsonLimits, check_text: bool = True) -> str | None:
    """Why ``document`` exceeds ``limits`` (None when it does not), found by an iterative walk, so no
    depth can exhaust the stack. With ``check_text`` it also refuses strings that cannot be encoded (lone
    surrogates). The walk touches each value once with as little work as possible: it runs on every
    admission request."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    values = 1
    while stack:
        container, depth = stack.pop()
        if depth > limits.max_depth:
            return f"nested deeper than {limits.max_depth} levels"
        values += len(container)
        if values > limits.max_values:
            return f"more than {limits.max_values} values"
        if type(container) is dict:
            if container and max(map(len, container)) > limits.max_string:
                return f"a string is longer than {limits.max_string} characters"
            if check_text and any(map(_unencodable, container)):
                return _SURROGATE_PROBLEM
            items: Any = container.values()
        else:
            items = container
        for item in items:
            kind = type(item)
            if kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is str:
                if len(item) > limits.max_string:
                    return f"a string is longer than {limits.max_string} characters"
                if check_text and _unencodable(item):
                    return _SURROGATE_PROBLEM
    return None


_SURROGATE_PROBLEM = "a string holds an unpaired surrogate (\\ud800-\\udfff), which is not text"


def _unencodable(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
