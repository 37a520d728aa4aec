"""Results of ``/mutate`` held until ``/validate`` sees the object with its name and uid.

The API server calls mutating webhooks before it generates ``metadata.name`` (``generateName``: every Pod a
ReplicaSet or Job makes) and ``metadata.uid``, and validating webhooks after. Results are therefore
computed where the images are verified (``/mutate``) and written when ``/validate`` admits the same
object, under its real name and uid. The match is by namespace, kind, name (or generateName), operation
and the images after trustwatch's own digest pins; identical objects (replicas of one template) have
identical results, so which of them takes which entry does not matter. Entries expire: a request that
another webhook denied between the two calls never reaches ``/validate``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

Value = TypeVar("Value")


class PendingResults(Generic[Value]):
    """A bounded, expiring multimap: ``put`` many values under one key, ``take`` them oldest first."""

    def __init__(
        self, ttl: float = 60.0, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, deque[tuple[float, Value]]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def put(self, key: Hashable, value: Value) -> None:
        self._expire()
        while self._size >= self._max_entries and self._entries:
            self._drop_oldest()
        self._entries.setdefault(key, deque()).append((self._clock(), value))
        self._size += 1

    def take(self, key: Hashable) -> Value | None:
        self._expire()
        queue = self._entries.get(key)
        if not queue:
            return None
        _stamp, value = queue.popleft()
        self._size -= 1
        if not queue:
            del self._entries[key]
        return value

    def _drop_oldest(self) -> None:
        key, queue = next(iter(self._entries.items()))
        queue.popleft()
        self._size -= 1
        if not queue:
            del self._entries[key]

    def _expire(self) -> None:
        """Drop entries older than the ttl (keys are in insertion order of their first entry; good enough
        to stop at the first fresh one, since every entry expires eventually)."""
        limit = self._clock() - self._ttl
        while self._entries:
            key, queue = next(iter(self._entries.items()))
            if queue[0][0] > limit:
                return
            queue.popleft()
            self._size -= 1
            if not queue:
                del self._entries[key]
            else:
                self._entries.move_to_end(key)


def object_key(
    namespace: str, obj: Mapping[str, Any], operation: str, images: Sequence[str]
) -> tuple[str, ...]:
    """What identifies "the same object" across the two webhook calls: before the API server named it
    (``generateName``) and after."""
    metadata = obj.get("metadata") or {}
    generate_name = metadata.get("generateName") if isinstance(metadata, Mapping) else None
    name = f"{generate_name}*" if generate_name else str(metadata.get("name") or "")
    return (namespace, str(obj.get("kind") or ""), name, operation, *images)
