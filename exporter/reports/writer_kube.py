"""Report backend on the Kubernetes API, via the ``kubernetes`` client (blocking; runs in a thread).

Updates are conditional: ``replace`` carries the resourceVersion that was read, so a concurrent writer's
change makes the API answer 409 and the writer re-reads and merges again instead of overwriting it. Two
replicas creating the same report at once resolve the same way (the loser's create gets 409).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from exporter.cluster import LazyApi
from exporter.reports.model import ReportApi
from exporter.reports.writer import Merge, ReportConflictError, ReportTarget

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


class KubernetesReportBackend:
    """PolicyReports (or openreports Reports) through ``CustomObjectsApi`` on a configured ApiClient."""

    def __init__(self, api_client: Any, request_timeout: float = 10.0) -> None:
        self._api = LazyApi(lambda: kube_client.CustomObjectsApi(api_client))
        self._timeout = request_timeout

    def update(self, target: ReportTarget, merge: Merge) -> None:
        existing = self._read(target)
        document = merge(existing)
        try:
            if existing is None:
                self._call("create", target, document)
            else:
                self._call("replace", target, target.name, document)
        except ApiException as exc:
            if exc.status == HTTP_CONFLICT:
                raise ReportConflictError(str(target)) from exc
            raise

    def list(self, api: ReportApi, label_selector: str) -> list[Mapping[str, Any]]:
        """Every report of ``api`` in the cluster carrying the labels (none when the API is not served)."""
        try:
            found = self._api.get().list_cluster_custom_object(
                api.group,
                api.version,
                api.plural,
                label_selector=label_selector,
                _request_timeout=self._timeout,
            )
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                return []
            raise
        items = found.get("items") if isinstance(found, Mapping) else None
        return [item for item in items or [] if isinstance(item, Mapping)]

    def _read(self, target: ReportTarget) -> Mapping[str, Any] | None:
        try:
            found = self._call("get", target, target.name)
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise
        return found if isinstance(found, Mapping) else None

    def _call(self, verb: str, target: ReportTarget, *args: Any) -> Any:
        """``<verb>_namespaced_custom_object`` or ``<verb>_cluster_custom_object``, by the target's scope."""
        api = target.api
        if target.namespace:
            method = getattr(self._api.get(), f"{verb}_namespaced_custom_object")
            return method(
                api.group, api.version, target.namespace, api.plural, *args, _request_timeout=self._timeout
            )
        method = getattr(self._api.get(), f"{verb}_cluster_custom_object")
        return method(api.group, api.version, api.plural, *args, _request_timeout=self._timeout)
