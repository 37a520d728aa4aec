"""Defensive readers for untrusted JSON documents (layers, annotations, bundles, statements).

Everything signers' containers carry is hostile until verified: sizes are capped before decoding, nesting
that would exhaust the parser and values of the wrong type become a ``FormatError`` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class FormatError(ValueError):
    """A signature container that is not what its media type says; the message names the field."""


def load_json(data: bytes | str, what: str, max_bytes: int) -> dict[str, Any]:
    """``data`` decoded as a JSON object of at most ``max_bytes``, or a FormatError saying why not."""
    if len(data) > max_bytes:
        raise FormatError(f"{what} of {len(data)} bytes exceeds the {max_bytes}-byte limit")
    try:
        document = json.loads(data)
    except RecursionError:
        raise FormatError(f"{what} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and over-long integers
        raise FormatError(f"{what} is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise FormatError(f"{what} is not a JSON object")
    return document


def get_object(document: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise FormatError(f"{where}.{key} is missing or not an object")
    return value


def get_list(document: dict[str, Any], key: str, where: str, limit: int) -> list[Any]:
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{where}.{key} is not a list")
    if len(value) > limit:
        raise FormatError(f"{where}.{key} has {len(value)} entries, more than the {limit} allowed")
    return value


def get_str(document: dict[str, Any], key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise FormatError(f"{where}.{key} is missing or not a string")
    return value


def get_b64(document: dict[str, Any], key: str, where: str) -> bytes:
    """A base64 string field (standard alphabet, padding required, as protobuf JSON and cosign write it)."""
    return decode_b64(get_str(document, key, where), f"{where}.{key}")


def decode_b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64") from None


def get_int(document: dict[str, Any], key: str, where: str, *, required: bool = True) -> int | None:
    """An int64 field: protobuf JSON writes it as a decimal string, older producers as a number."""
    value = document.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FormatError(f"{where}.{key} is missing or not an integer")
    if isinstance(value, str):
        if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
            raise FormatError(f"{where}.{key} is not an integer")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise FormatError(f"{where}.{key} is out of range")
    return value
