"""Reports from the Kubernetes API: discovery, then list+watch of every report kind that exists.

Per API (group/version/kind): a paged list fills the store and yields a resourceVersion; a watch from that
version (with bookmarks, so the version stays fresh on quiet clusters) applies every event; when the stream
ends it resumes from the last version seen. ``410 Gone`` (the version was compacted away) triggers a relist
whose result replaces that API's reports, so reports deleted while disconnected disappear. Errors back off
exponentially with full jitter. Missing groups (CRDs not installed) are looked for again periodically; a
kind that vanishes takes its reports with it.

The ``kubernetes`` client is blocking, so every call runs in this source's own thread pool, never on the
event loop; worker threads apply to the store, which is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from exporter.cluster import ConnectionHealth
from exporter.metrics import ServiceMetrics
from exporter.reports.config import ReportsConfig
from exporter.reports.model import REPORT_APIS, Report, ReportApi, ReportParseError, parse_report
from exporter.reports.store import ReportStore

log = logging.getLogger(__name__)

_T = TypeVar("_T")
RestartReason = Literal["gone", "closed", "http_error", "connection_error", "invalid_event"]
# Longest line accepted from a watch stream: one report as JSON. Bigger means a broken stream.
MAX_EVENT_BYTES = 64 * 1024 * 1024


class WatchStreamError(Exception):
    """The watch stream said something unusable; the watch restarts."""

    def __init__(self, reason: RestartReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class KubeReportSource:
    """Keeps the store equal to the reports in the cluster. Run :meth:`run` as a task; ``ready`` is set
    after the first full sync of every report API found at start (or at once if none exists, with the
    reason in :attr:`problem`)."""

    def __init__(
        self,
        api_client_factory: Callable[[], kubernetes.client.ApiClient],
        store: ReportStore,
        metrics: ServiceMetrics,
        config: ReportsConfig,
        *,
        apis: tuple[ReportApi, ...] = REPORT_APIS,
        rng: random.Random | None = None,
        connection: ConnectionHealth | None = None,
    ) -> None:
        self._factory = api_client_factory
        self._connection = connection or ConnectionHealth("")
        self._store = store
        self._metrics = metrics
        self._config = config
        self._tuning = config.tuning
        self._apis = apis
        self._rng = rng or random.Random()
        self._executor = ThreadPoolExecutor(max_workers=len(apis) + 1, thread_name_prefix="report-watch")
        self._stopping = threading.Event()
        self._open_streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self._state: dict[str, str] = {api.name: "not discovered yet" for api in apis}
        self._synced = {api.name: asyncio.Event() for api in apis}
        # api name -> resourceVersion to resume watching from; absent means "list first"
        self._resume: dict[str, str] = {}
        self.problem: str | None = None
        self.ready = asyncio.Event()

    def health(self) -> dict[str, str]:
        """State of each report API: listing, watching, missing, or the last error, for health output."""
        return dict(self._state)

    async def run(self) -> None:
        """Discover, sync and watch until cancelled."""
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            # Built in a worker thread: the API class's first import takes long enough to stall the loop.
            custom = await self._in_thread(lambda: kubernetes.client.CustomObjectsApi(self._factory()))
            first_round = True
            attempt = 0
            while True:
                found, failed = await self._in_thread(self._discover, custom)
                for api in found:
                    task = tasks.get(api.name)
                    if task is None or task.done():
                        tasks[api.name] = asyncio.create_task(self._watch_api(custom, api))
                if first_round and not failed:
                    first_round = False
                    tasks["ready"] = asyncio.create_task(self._set_ready_after_sync(found))
                if failed:
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                else:
                    attempt = 0
                    await asyncio.sleep(self._tuning.rediscover_interval)
        finally:
            self._stopping.set()
            for task in tasks.values():
                task.cancel()
            self._close_streams()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # --- discovery ---------------------------------------------------------------------------------------
    def _discover(self, custom: Any) -> tuple[list[ReportApi], bool]:
        """Which report kinds the API server serves; second value: whether discovery itself failed."""
        found: list[ReportApi] = []
        failed = False
        versions = sorted({(api.group, api.version) for api in self._apis})
        for group, version in versions:
            wanted = [api for api in self._apis if (api.group, api.version) == (group, version)]
            try:
                served = {r.kind for r in custom.get_api_resources(group, version).resources}
            except ApiException as error:
                if error.status != 404:
                    failed = True
                    log.warning(
                        "report API discovery failed; retrying",
                        extra={"group": group, "version": version, "status": error.status},
                    )
                    continue
                served = set()
            except Exception as error:  # urllib3/socket errors vary; all mean "retry later"
                failed = True
                if not self._connection.failed(error):
                    log.warning(
                        "report API discovery failed; retrying", extra={"group": group, "error": str(error)}
                    )
                continue
            self._connection.succeeded()
            for api in wanted:
                if api.kind in served:
                    found.append(api)
                elif self._state.get(api.name) != "missing":
                    self._state[api.name] = "missing"
                    log.info(
                        "report API not served (CRD not installed?); looking again periodically",
                        extra={"api": api.name, "every_seconds": self._tuning.rediscover_interval},
                    )
        if not found and not failed:
            self.problem = (
                "none of the report APIs is served by this cluster ("
                + ", ".join(api.name for api in self._apis)
                + "); install the PolicyReport (wgpolicyk8s.io) or openreports.io CRDs"
            )
            log.error("no report API found", extra={"reason": self.problem})
        elif found:
            self.problem = None
        return found, failed

    async def _set_ready_after_sync(self, apis: list[ReportApi]) -> None:
        for api in apis:
            await self._synced[api.name].wait()
        self.ready.set()

    # --- list + watch of one API -------------------------------------------------------------------------
    async def _watch_api(self, custom: Any, api: ReportApi) -> None:
        attempt = 0
        up = self._metrics.watch_up.labels(api=api.name)
        reason: RestartReason
        while not self._stopping.is_set():
            try:
                if api.name not in self._resume:
                    self._state[api.name] = "listing"
                    await self._in_thread(self._relist, custom, api)
                    self._state[api.name] = "watching"
                    self._synced[api.name].set()
                    up.set(1)
                await self._in_thread(self._watch_once, custom, api)
                reason = "closed"
                attempt = 0
            except ApiException as error:
                if error.status == 404:
                    self._vanished(api)
                    return
                reason = "gone" if error.status == 410 else "http_error"
                self._note_error(api, f"HTTP {error.status}: {error.reason}")
            except WatchStreamError as error:
                reason = error.reason
                self._note_error(api, str(error))
            except Exception as error:  # urllib3/socket/protocol errors vary: reconnect
                if self._stopping.is_set():
                    return
                reason = "connection_error"
                self._note_error(
                    api, f"{type(error).__name__}: {error}", quiet=self._connection.failed(error)
                )
            self._metrics.watch_restarts.labels(api=api.name, reason=reason).inc()
            if reason == "gone":
                self._resume.pop(api.name, None)  # relist at once: nothing to wait for
                continue
            if reason != "closed":
                up.set(0)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    def _relist(self, custom: Any, api: ReportApi) -> None:
        """List every page and replace this API's reports with the result; the watch resumes from the
        list's resourceVersion."""
        pages = _Pages(custom, api, self._tuning.list_page_size, self._tuning.request_timeout)
        first_sync = not self._synced[api.name].is_set()
        deleted = self._store.replace_all(
            api.name, self._held(pages.items(), api), count_transitions=not first_sync
        )
        self._metrics.watch_last_event.labels(api=api.name).set(time.time())
        log.info(
            "report API synced",
            extra={"api": api.name, "reports": len(self._store.keys(api.name)), "removed_stale": deleted},
        )
        self._resume[api.name] = pages.resource_version

    def _held(self, items: Iterator[Any], api: ReportApi) -> Iterator[Report]:
        for item in items:
            report = self._parse(item, api)
            if report is not None:
                yield report

    def _parse(self, item: Any, api: ReportApi) -> Report | None:
        try:
            report = parse_report(item, api)
        except ReportParseError as error:
            log.warning("skipping malformed report", extra={"api": api.name, "reason": str(error)})
            return None
        if not self._config.holds_namespace(report.namespace):
            return None
        if report.dropped_results:
            log.warning(
                "dropped malformed results",
                extra={
                    "api": api.name,
                    "report": f"{report.namespace}/{report.name}",
                    "problems": list(report.problems),
                },
            )
        return report

    def _watch_once(self, custom: Any, api: ReportApi) -> None:
        """Follow one watch stream until it ends, recording each resourceVersion seen so that the next watch
        resumes exactly there even if this one dies mid-stream."""
        stream = custom.list_cluster_custom_object(
            api.group,
            api.version,
            api.plural,
            watch=True,
            resource_version=self._resume[api.name],
            allow_watch_bookmarks=True,
            timeout_seconds=self._tuning.watch_timeout_seconds,
            _preload_content=False,
            _request_timeout=(self._tuning.request_timeout, self._tuning.watch_timeout_seconds + 30),
        )
        with self._streams_lock:
            self._open_streams.add(stream)
        last_event = self._metrics.watch_last_event.labels(api=api.name)
        try:
            for event in _events(stream):
                self._resume[api.name] = self._apply_event(api, event, self._resume[api.name])
                last_event.set(time.time())
                if self._stopping.is_set():
                    break
        finally:
            with self._streams_lock:
                self._open_streams.discard(stream)
            stream.release_conn()

    def _apply_event(self, api: ReportApi, event: Any, resource_version: str) -> str:
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise WatchStreamError("invalid_event", f"watch event is not an object: {str(event)[:200]}")
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            code = obj.get("code")
            message = obj.get("message", "")
            raise WatchStreamError("gone" if code == 410 else "http_error", f"watch ERROR {code}: {message}")
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        new_version = str(metadata.get("resourceVersion") or resource_version)
        if kind == "BOOKMARK":
            return new_version
        if kind == "DELETED":
            namespace = str(metadata.get("namespace") or "") if api.namespaced else ""
            self._store.delete((api.name, namespace, str(metadata.get("name", ""))))
        elif kind in ("ADDED", "MODIFIED"):
            report = self._parse(obj, api)
            if report is not None:
                self._store.apply(report)
            elif metadata.get("name"):  # now malformed: its old numbers are no longer true
                namespace = str(metadata.get("namespace") or "") if api.namespaced else ""
                self._store.delete((api.name, namespace, str(metadata["name"])))
        else:
            raise WatchStreamError("invalid_event", f"unknown watch event type {kind!r}")
        return new_version

    # --- helpers -----------------------------------------------------------------------------------------
    def _vanished(self, api: ReportApi) -> None:
        removed = self._store.replace_all(api.name, [])
        self._resume.pop(api.name, None)  # if it comes back, it is listed afresh
        self._state[api.name] = "missing"
        self._synced[api.name].set()  # nothing left to wait for
        with contextlib.suppress(KeyError):  # never set if it vanished before its first list
            self._metrics.watch_up.remove(api.name)
        log.warning(
            "report API disappeared; its reports were dropped", extra={"api": api.name, "reports": removed}
        )

    def _note_error(self, api: ReportApi, message: str, quiet: bool = False) -> None:
        """Record the error for /readyz; log it unless the unreachable API server was already reported."""
        self._state[api.name] = f"retrying after error: {message}"
        if not quiet:
            log.warning("report watch interrupted; retrying", extra={"api": api.name, "error": message})

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)], so replicas do not retry in step."""
        ceiling = min(self._tuning.backoff_max, self._tuning.backoff_initial * (2 ** min(attempt, 30)))
        return self._rng.uniform(0, ceiling)

    async def _in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _close_streams(self) -> None:
        with self._streams_lock:
            streams = list(self._open_streams)
        for stream in streams:
            # Shut the socket down rather than close() the response: close() waits for the lock the reading
            # thread holds, while a shutdown wakes that thread up with end-of-stream.
            sock = getattr(getattr(stream, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Pages:
    """A paged list of one API: iterate :meth:`items`, then read :attr:`resource_version`."""

    def __init__(self, custom: Any, api: ReportApi, page_size: int, timeout: float) -> None:
        self._custom = custom
        self._api = api
        self._page_size = page_size
        self._timeout = timeout
        self.resource_version = ""

    def items(self) -> Iterator[Any]:
        token: str | None = None
        while True:
            response = self._custom.list_cluster_custom_object(
                self._api.group,
                self._api.version,
                self._api.plural,
                limit=self._page_size,
                _continue=token,
                _request_timeout=self._timeout,
                _preload_content=False,  # decode the bytes once ourselves instead of bytes -> str -> json
            )
            try:
                page = json.loads(response.data)
            finally:
                response.release_conn()
            if not isinstance(page, dict):
                raise WatchStreamError("invalid_event", f"list of {self._api.name} is not a JSON object")
            metadata = page.get("metadata") or {}
            if not self.resource_version:
                self.resource_version = str(metadata.get("resourceVersion", ""))
            yield from page.get("items") or []
            token = metadata.get("continue")
            if not token:
                return


def _events(stream: Any) -> Iterator[Any]:
    """JSON watch events from a chunked stream, one per line, reassembled across chunk boundaries."""
    pending = b""
    for chunk in stream.stream(amt=None, decode_content=True):
        pending += chunk
        if b"\n" not in chunk:
            if len(pending) > MAX_EVENT_BYTES:
                raise WatchStreamError("invalid_event", f"watch event larger than {MAX_EVENT_BYTES} bytes")
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as error:
                    raise WatchStreamError("invalid_event", f"watch line is not JSON: {error}") from error
