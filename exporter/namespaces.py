"""Namespace labels for ``namespaceSelector`` in policy matches and failure-action overrides.

Kyverno looks namespaces up in its informer cache; trustwatch keeps the same kind of cache: a list then a
watch of Namespaces (blocking client calls in a worker thread), relisted on ``410 Gone`` or errors. Lookups
never block the admission path: before the first list finished they answer None (unknown, and the engine
lets ``failurePolicy`` decide what needs them); afterwards a namespace not seen yet answers with the label
the API server always sets, ``kubernetes.io/metadata.name``, which is also all there is without a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from exporter.cluster import ClusterConnection
from exporter.policy.match import NAMESPACE_NAME_LABEL
from exporter.threads import run_in_daemon_thread

log = logging.getLogger(__name__)

NAME_LABEL = NAMESPACE_NAME_LABEL
HTTP_GONE = 410


class NamespaceLabels:
    """A thread-safe map of namespace name to labels, kept current by :meth:`run`."""

    def __init__(self, cluster: ClusterConnection | None, backoff_max: float = 30.0) -> None:
        self._cluster = cluster
        self._labels: dict[str, Mapping[str, str]] = {}
        self._lock = threading.Lock()
        self._backoff_max = backoff_max
        self.synced = asyncio.Event()

    @property
    def loaded(self) -> bool:
        """Whether labels can be answered: the first list of Namespaces finished (always, without a
        cluster, where there are no labels to load)."""
        return self._cluster is None or self.synced.is_set()

    def labels_of(self, namespace: str) -> Mapping[str, str] | None:
        """Labels of ``namespace``; at least its name label, as the API server always sets it. None until
        the first list of Namespaces finished: the labels are unknown, not empty."""
        if not self.loaded:
            return None
        with self._lock:
            known = self._labels.get(namespace)
        return known if known is not None else {NAME_LABEL: namespace}

    def _replace(self, items: list[Any]) -> None:
        fresh: dict[str, Mapping[str, str]] = {
            item.metadata.name: dict(item.metadata.labels or {}) for item in items
        }
        with self._lock:
            self._labels = fresh

    def _apply_event(self, event: Mapping[str, Any]) -> None:
        obj = event["object"]
        with self._lock:
            if event["type"] == "DELETED":
                self._labels.pop(obj.metadata.name, None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                self._labels[obj.metadata.name] = dict(obj.metadata.labels or {})

    def _list_and_watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """One list and the watch that follows it; returns when the watch ends or raises on errors."""
        from kubernetes import client, watch  # noqa: PLC0415  (kept off the verify start-up path)

        assert self._cluster is not None
        api = client.CoreV1Api(self._cluster.api_client_factory())
        listing = api.list_namespace(_request_timeout=60)
        self._replace(listing.items)
        loop.call_soon_threadsafe(self.synced.set)
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            api.list_namespace,
            # the API server always sends list metadata; without it the watch would replay every Namespace
            resource_version=listing.metadata.resource_version if listing.metadata else None,
            allow_watch_bookmarks=True,
            timeout_seconds=300,
            _request_timeout=330,
        )
        for event in stream:
            if event["type"] == "ERROR":
                log.info("namespace watch expired; relisting", extra={"status": event["raw_object"]})
                return
            self._apply_event(event)

    async def run(self) -> None:
        """Keep the cache current until cancelled; errors back off with jitter and relist."""
        if self._cluster is None:
            self.synced.set()
            return
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                await run_in_daemon_thread(self._list_and_watch, loop, name="namespace-watch")
                delay = 0.5
            except Exception as exc:
                if not self._cluster.health.failed(exc):  # an unreachable server is reported once
                    log.warning(
                        "namespace list/watch failed; namespaceSelector sees last known labels",
                        extra={"error": str(exc), "retry_in_seconds": round(delay, 2)},
                    )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._backoff_max)
