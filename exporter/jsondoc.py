"""Decoding JSON documents that must be objects, with errors that say which document was wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def parse_json_object(data: bytes | str, what: str, error: Callable[[str], Exception]) -> dict[str, Any]:
    """``data`` decoded as a JSON object; otherwise raises ``error("<what> is not JSON (...)")`` or
    ``error("<what> is not a JSON object")``."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} is not JSON ({exc})") from None
    except RecursionError:  # hostile input: thousands of nested arrays or objects
        raise error(f"{what} is nested too deeply to be decoded") from None
    if not isinstance(document, dict):
        raise error(f"{what} is not a JSON object")
    return document
