"""Loading YAML from files anyone could have written, within bounds, with errors instead of crashes.

libyaml (PyYAML's C loader) composes nodes recursively in C: a few hundred thousand nested ``[`` crash
the interpreter (a segmentation fault, not an exception). Aliases let 100 KB expand to millions of
references (a "billion laughs"). So the event stream, which libyaml produces without recursion, is read
first, checking nesting depth, size and that there are no aliases (Kubernetes objects never need them);
only a document that passes is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(ValueError):
    """The text is not YAML within the limits; the message says which limit or what is wrong."""


@dataclass(frozen=True)
class YamlLimits:
    """Nesting depth and total number of parse events (scalars, collection starts and ends)."""

    max_depth: int = 100
    max_events: int = 2_000_000


def check_yaml(data: bytes | str, limits: YamlLimits) -> None:
    """Raise :class:`YamlLimitError` when ``data`` is not YAML, uses aliases or exceeds ``limits``."""
    depth = 0
    try:
        for count, event in enumerate(yaml.parse(data, Loader=_Loader)):
            if count > limits.max_events:
                raise YamlLimitError(f"more than {limits.max_events} YAML nodes")
            if isinstance(event, yaml.AliasEvent):
                raise YamlLimitError("YAML aliases (*name) are not supported; write the value out")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limits.max_depth:
                    raise YamlLimitError(f"nested deeper than {limits.max_depth} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as error:
        raise YamlLimitError(f"not valid YAML: {error}") from None


def load_yaml_documents(data: bytes | str, limits: YamlLimits | None = None) -> list[Any]:
    """Every document of ``data``, after :func:`check_yaml`; raises :class:`YamlLimitError`."""
    check_yaml(data, limits or YamlLimits())
    try:
        return list(yaml.load_all(data, Loader=_Loader))
    except (yaml.YAMLError, ValueError, RecursionError) as error:  # ValueError: e.g. a 5 000-digit int
        raise YamlLimitError(f"not valid YAML: {error}") from None
