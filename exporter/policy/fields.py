"""Typed, path-aware access to one decoded YAML/JSON object, for error messages that name the exact field.

Every accessor records which keys were read; :meth:`Fields.finish` then rejects any key nobody read, with
the reason from ``unsupported`` when the key is a known Kyverno field trustwatch does not implement. That is
how "no field is silently ignored" is enforced structurally rather than by remembering to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T", bound=str)


class FieldError(ValueError):
    """A problem at ``path`` (``spec.rules[0].verifyImages[0].keyless``) described by ``problem``; ``rule``
    names the rule it occurred in, when known."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.rule: str | None = None


def is_empty(value: Any) -> bool:
    """Null, "", [] or an object of only empty values: what ``kubectl get -o yaml`` leaves unset."""
    if value is None or value in ("", []):
        return True
    return isinstance(value, Mapping) and all(is_empty(item) for item in value.values())


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


class Fields:
    """Wraps the mapping found at ``path``; raises :class:`FieldError` for wrong types and unread keys."""

    def __init__(self, value: Any, path: str) -> None:
        if not isinstance(value, Mapping):
            raise FieldError(path, f"expected an object, got {_type_name(value)}")
        self.value: Mapping[str, Any] = value
        self.path = path
        self._read: set[str] = set()

    def at(self, key: str) -> str:
        """The path of ``key`` below this object."""
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        """The value of ``key`` as decoded (None when absent)."""
        self._read.add(key)
        return self.value.get(key)

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        """A string field; empty strings count as absent."""
        value = self.raw(key)
        if value is None or value == "":
            if required:
                raise FieldError(self.at(key), "is required")
            return default
        if not isinstance(value, str):
            raise FieldError(self.at(key), f"expected a string, got {_type_name(value)}")
        return value

    def required_string(self, key: str) -> str:
        """A string field that must be present and non-empty."""
        value = self.string(key, required=True)
        assert value is not None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """A boolean field (``true``/``false`` only: no truthy strings)."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise FieldError(self.at(key), f"expected true or false, got {_type_name(value)} {value!r}")
        return value

    def integer(self, key: str, *, minimum: int) -> int | None:
        """An optional integer field of at least ``minimum``."""
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(self.at(key), f"expected an integer, got {_type_name(value)}")
        if value < minimum:
            raise FieldError(self.at(key), f"must be at least {minimum}, got {value}")
        return value

    def choice(self, key: str, choices: Mapping[str, T], default: T | None = None) -> T | None:
        """A string field restricted to ``choices`` (spelling as written -> canonical value)."""
        value = self.string(key)
        if value is None:
            return default
        if value not in choices:
            allowed = ", ".join(sorted(choices))
            raise FieldError(self.at(key), f"unsupported value {value!r}; allowed: {allowed}")
        return choices[value]

    def objects(self, key: str, *, required: bool = False) -> list[Fields]:
        """A list of objects, each wrapped with its indexed path."""
        value = self.raw(key)
        if value is None:
            if required:
                raise FieldError(self.at(key), "is required")
            return []
        if not isinstance(value, list):
            raise FieldError(self.at(key), f"expected a list, got {_type_name(value)}")
        return [Fields(item, f"{self.at(key)}[{index}]") for index, item in enumerate(value)]

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings (absent: empty tuple)."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise FieldError(self.at(key), f"expected a list of strings, got {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise FieldError(f"{self.at(key)}[{index}]", f"expected a non-empty string, got {item!r}")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str] | None:
        """A map of strings to strings (None when absent)."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise FieldError(self.at(key), f"expected a map of strings, got {_type_name(value)}")
        for item_key, item in value.items():
            if not isinstance(item_key, str) or not isinstance(item, str):
                raise FieldError(
                    f"{self.at(key)}.{item_key}", f"expected a string value, got {_type_name(item)}"
                )
        return dict(value)

    def child(self, key: str) -> Fields | None:
        """The object at ``key`` (None when absent)."""
        value = self.raw(key)
        return None if value is None else Fields(value, self.at(key))

    def finish(self, unsupported: Mapping[str, str]) -> None:
        """Reject every non-empty key that was not read: with the reason in ``unsupported`` for known Kyverno
        fields, as unknown otherwise. Empty values (``validate: {}``) are skipped as they ask for nothing."""
        for key in self.value:
            if key in self._read or is_empty(self.value[key]):
                continue
            reason = unsupported.get(key)
            if reason is None:
                reason = "unknown field: not part of Kyverno's schema for this object (misspelt?); remove it"
            raise FieldError(self.at(str(key)), reason)
