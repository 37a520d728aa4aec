"""Removes results about resources that no longer exist from the reports trustwatch wrote.

A result belongs to the resource's uid. When the resource is deleted (by a user, or by garbage collection
with its owner), or when trustwatch was down while that happened, its results must go. Every
``interval`` seconds (and once at start) the reaper reads trustwatch's own reports (label
``app.kubernetes.io/managed-by: trustwatch``), lists the resources their results name (one list per kind
and namespace, metadata only), and removes the results whose uid is no longer there. Results written
before uids were recorded are matched by kind, namespace and name instead.

Results younger than ``grace`` seconds are left alone: a result is written right after ``/validate``
admits the object, which the API server stores a moment later. Removal is a conditional read-merge-write
like every report write; a conflict simply waits for the next sweep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from exporter.cluster import ConnectionHealth
from exporter.reports.writer import (
    MANAGED_BY,
    REPORT_FAMILIES,
    ReportConflictError,
    ReportTarget,
    result_identity,
    summarize,
)
from exporter.reports.writer_kube import KubernetesReportBackend

log = logging.getLogger(__name__)

HTTP_NOT_FOUND = 404
# Ask for metadata only: a list of every Pod in a namespace is then small.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
PAGE_SIZE = 500
# A sweep lists a kind namespace by namespace up to this many namespaces, else once across the cluster.
PER_NAMESPACE_LISTS_UP_TO = 10


def plural_of(kind: str) -> str:
    """The resource name the API server derives from a kind (``Deployment`` -> ``deployments``)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def _path(api_version: str, kind: str, namespace: str) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{plural_of(kind)}"


class LiveResources:
    """Which resources exist, by (apiVersion, kind, namespace): their uids and names (blocking calls)."""

    def __init__(self, api_client: kubernetes.client.ApiClient, request_timeout: float = 30.0) -> None:
        self._client = api_client
        self._timeout = request_timeout

    def identities(self, api_version: str, kind: str, namespace: str) -> set[str] | None:
        """Every uid and ``kind/namespace/name`` of that kind in ``namespace`` (all namespaces when empty),
        or None when the kind is not served."""
        found: set[str] = set()
        token = ""
        while True:
            page = self._get(_path(api_version, kind, namespace), token)
            if page is None:
                return None
            for item in page.get("items") or []:
                metadata = item.get("metadata") or {} if isinstance(item, dict) else {}
                if metadata.get("uid"):
                    found.add(str(metadata["uid"]))
                found.add(f"{kind}/{metadata.get('namespace') or namespace}/{metadata.get('name', '')}")
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return found

    def _get(self, path: str, token: str) -> dict[str, Any] | None:
        query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
        method, url, headers, body, post = self._client.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": METADATA_ONLY},
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(
            method, url, header_params=headers, body=body, post_params=post, _request_timeout=self._timeout
        )
        data = response.read()  # type: ignore[no-untyped-call]
        if response.status == HTTP_NOT_FOUND:
            return None
        if response.status >= 300:
            raise ApiException(status=response.status, reason=response.reason)
        page = json.loads(data)
        return page if isinstance(page, dict) else None


def _resource_of(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    resources = entry.get("resources") or [{}]
    first = resources[0]
    return first if isinstance(first, Mapping) else {}


def _seconds(entry: Mapping[str, Any]) -> float:
    stamp = entry.get("timestamp")
    return float(stamp.get("seconds", 0)) if isinstance(stamp, Mapping) else 0.0


def without(document: Mapping[str, Any], gone: set[str]) -> dict[str, Any]:
    """``document`` without the results about the identities in ``gone``; summary recounted."""
    results = [
        entry
        for entry in document.get("results") or []
        if not (isinstance(entry, Mapping) and result_identity(entry) in gone)
    ]
    return {**document, "results": results, "summary": summarize(results)}


def _remover(gone: set[str]) -> Callable[[Mapping[str, Any] | None], dict[str, Any]]:
    def merge(current: Mapping[str, Any] | None) -> dict[str, Any]:
        if current is None:
            raise ReportConflictError("the report was deleted meanwhile")
        return without(current, gone)

    return merge


class ResultReaper:
    """See the module docstring. Run :meth:`run` as a task."""

    def __init__(
        self,
        backend: KubernetesReportBackend,
        live: LiveResources,
        *,
        report_api: str,
        interval: float = 20.0,
        grace: float = 5.0,
        clock: Callable[[], float] = time.time,
        connection: ConnectionHealth | None = None,
    ) -> None:
        self._backend = backend
        self._live = live
        self._apis = REPORT_FAMILIES[report_api]
        self._interval = interval
        self._grace = grace
        self._clock = clock
        self._connection = connection or ConnectionHealth("")
        self._unlistable: set[tuple[str, str]] = set()

    async def run(self) -> None:
        while True:
            try:
                removed = await asyncio.to_thread(self.sweep)
            except Exception as exc:
                if not self._connection.failed(exc):  # an unreachable server is reported once
                    log.warning(
                        "checking written reports for deleted resources failed", extra={"error": str(exc)}
                    )
            else:
                self._connection.succeeded()
                if removed:
                    log.info("removed results of deleted resources", extra={"results": removed})
            await asyncio.sleep(self._interval)

    def sweep(self) -> int:
        """One pass over trustwatch's reports; returns how many results were removed.

        All reports are read first, then each kind their results name is listed once: per namespace when
        few namespaces are concerned, else across the cluster, so a sweep costs a handful of lists
        whatever the number of namespaces."""
        settled = self._clock() - self._grace
        reports = [
            (target, document, self._judgeable(target, document, settled))
            for target, document in self._managed_reports()
        ]
        needed: dict[tuple[str, str], set[str]] = {}
        for _target, _document, named in reports:
            for (api_version, kind, namespace), _identity in named:
                needed.setdefault((api_version, kind), set()).add(namespace)
        live = self._live_identities(needed)
        removed = 0
        for target, document, named in reports:
            gone = {
                identity
                for where, identity in named
                if (existing := live.get(where)) is not None and identity not in existing
            }
            if not gone:
                continue
            try:
                self._backend.update(target, _remover(gone))
            except ReportConflictError:
                continue  # written meanwhile: the next sweep looks again
            removed += len(document.get("results") or []) - len(without(document, gone)["results"])
        return removed

    @staticmethod
    def _judgeable(
        target: ReportTarget, document: Mapping[str, Any], settled: float
    ) -> list[tuple[tuple[str, str, str], str]]:
        """(apiVersion, kind, namespace) and identity of each result old enough to judge."""
        named = []
        for entry in document.get("results") or []:
            if not isinstance(entry, Mapping) or _seconds(entry) > settled:
                continue
            resource = _resource_of(entry)
            api_version, kind = str(resource.get("apiVersion", "")), str(resource.get("kind", ""))
            if api_version and kind:
                namespace = str(resource.get("namespace") or target.namespace)
                named.append(((api_version, kind, namespace), result_identity(entry)))
        return named

    def _live_identities(
        self, needed: Mapping[tuple[str, str], set[str]]
    ) -> dict[tuple[str, str, str], set[str] | None]:
        """Live identities by (apiVersion, kind, namespace), None where the kind cannot be listed."""
        live: dict[tuple[str, str, str], set[str] | None] = {}
        for (api_version, kind), namespaces in needed.items():
            if len(namespaces) > PER_NAMESPACE_LISTS_UP_TO:
                everywhere = self._list(api_version, kind, "")
                live.update({(api_version, kind, namespace): everywhere for namespace in namespaces})
            else:
                for namespace in namespaces:
                    live[(api_version, kind, namespace)] = self._list(api_version, kind, namespace)
        return live

    def _managed_reports(self) -> Iterator[tuple[ReportTarget, Mapping[str, Any]]]:
        selector = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
        for api in self._apis:
            for document in self._backend.list(api, selector):
                metadata = document.get("metadata") or {}
                if not MANAGED_BY.items() <= (metadata.get("labels") or {}).items():
                    continue  # never touch another writer's report, whatever the server answered
                yield (
                    ReportTarget(api, str(metadata.get("namespace") or ""), str(metadata.get("name"))),
                    document,
                )

    def _list(self, api_version: str, kind: str, namespace: str) -> set[str] | None:
        try:
            found = self._live.identities(api_version, kind, namespace)
        except ApiException as exc:
            if (api_version, kind) not in self._unlistable:
                self._unlistable.add((api_version, kind))
                log.warning(
                    "cannot list a kind that written results name; its results are kept",
                    extra={"kind": f"{api_version}/{kind}", "status": exc.status, "reason": exc.reason},
                )
            return None
        return found
