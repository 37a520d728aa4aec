"""A fake Kubernetes API server for custom resources, speaking the real wire protocol on loopback.

The real ``kubernetes`` Python client talks to it unchanged, so watchers and writers are tested against
discovery, paging, streaming watches, ``410 Gone``, server errors and cut connections without a cluster.

Python API (everything runs on the test's event loop; the state methods are synchronous, so a sequence
of them is atomic as seen by clients)::

    async with FakeKubeServer() as server:          # binds 127.0.0.1 on a free port
        server.url                                   # "http://127.0.0.1:<port>"
        client = server.api_client()                 # kubernetes.client.ApiClient pointed at it
        server.write_kubeconfig(path)                # a kubeconfig file for code that loads one

        server.put_object(obj)                       # create or replace (by apiVersion/kind/ns/name);
                                                     # returns the stored copy with its resourceVersion
        server.delete_object(api_version, kind, name, namespace="")   # -> bool
        server.get_object(api_version, kind, name, namespace="")      # -> dict | None
        server.objects(api_version, kind)            # every stored object of a kind
        server.resource_version                      # current global resourceVersion (int)

        server.expire_history()                      # compaction: watches/continues from older RVs get 410
        server.fail_next(n, status=500, path_contains="")   # next n matching requests fail with `status`
        server.clear_failures()                      # forget failures not yet used
        server.cut_watches()                         # send half an event, then reset every watch connection
        server.send_bookmarks()                      # a BOOKMARK to every watch that allowed them
        server.remove_group(group) / server.add_group(group)   # a CRD group vanishes / (re)appears
        server.requests                              # list of RequestRecord(method, path, query) seen
        server.watch_requests(plural)                # just the watch requests of one resource
        server.active_watches                        # number of watch streams open now
        await server.wait_for(predicate, within=5)  # poll a condition without sleeping blindly

    A cluster with workloads (``FakeKubeServer(CLUSTER_RESOURCES, controllers=True)``)::

        server.register_webhook(url, ca_file)        # send Pods and Pod controllers to /mutate, /validate
        await server.create(obj)                     # create through admission, like kubectl create
        await server.settle()                        # wait until the controllers have nothing left to do
        server.denials                               # (kind, namespace, name, message) of denied creates

Builders for test data: ``report_document(name, namespace, results, ...)`` and
``report_result(policy, status, ...)`` make PolicyReports/openreports Reports as tools write them.

Behaviour mirrors the API server where it matters:

* discovery: ``/api``, ``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>`` (404 for removed groups);
* list: ``/apis/<g>/<v>/<plural>`` (all namespaces) and ``.../namespaces/<ns>/<plural>`` with
  ``metadata.resourceVersion``, ``limit``, ``continue`` and an equality-based ``labelSelector``;
* watch (``?watch=true``): from ``resourceVersion`` N replays every later event, then streams live ones as
  chunked JSON lines (ADDED, MODIFIED, DELETED, BOOKMARK when ``allowWatchBookmarks``, ERROR); without a
  resourceVersion (or "0") it starts with synthetic ADDED events for the current state; ``timeoutSeconds``
  ends the stream cleanly. An expired resourceVersion gets ``410 Gone`` either as the HTTP status of the
  watch request (``gone_as="status"``) or as an ERROR event with code 410 (``gone_as="event"``, default);
  the real server does both depending on timing;
* ``metadata.generateName`` (a random 5-character suffix), a fresh ``uid`` and ``creationTimestamp`` on
  create; DELETE removes the dependents whose ``ownerReferences`` name the deleted uid (garbage
  collection, cascading);
* admission: with a webhook registered, creates and updates of Pods and Pod controllers go through
  ``/mutate`` (its JSONPatch applied; before the name is generated, as on a real server) and then
  ``/validate`` (with the generated name and uid), and a denial answers 403 with the webhook's message;
* controllers (``controllers=True``): a Deployment makes a ReplicaSet ``<name>-<template hash>``, a
  ReplicaSet makes ``spec.replicas`` Pods named by ``generateName: <name>-``, a Job makes one Pod; each
  created through admission, owned by its controller (``ownerReferences``), so deleting the Deployment
  removes its ReplicaSet and Pods;
* CRUD on namespaced and cluster-scoped objects: GET, POST (409 AlreadyExists), PUT (409 Conflict when
  ``metadata.resourceVersion`` is stale, 404 when absent), PATCH (``application/merge-patch+json``; a
  stale ``metadata.resourceVersion`` in the patch is a 409), DELETE (404 when absent).
  Errors are ``kind: Status`` bodies like the real server's.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import random
import ssl
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import kubernetes.client
from aiohttp import web

STATUSES = ("pass", "fail", "warn", "error", "skip")
# Status.reason the API server uses for each HTTP status an injected failure may have.
_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# Events kept for watch replay; older resourceVersions get 410 Gone, as after etcd compaction.
HISTORY_LIMIT = 100_000
GoneAs = Literal["status", "event"]  # how an expired resourceVersion is answered (see the module docstring)


@dataclass(frozen=True)
class FakeResource:
    """One custom resource kind the server serves."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# The core group's Namespaces, for code that watches namespace labels (add to ``resources``).
NAMESPACES = FakeResource("", "v1", "Namespace", "namespaces", False)

REPORT_RESOURCES = (
    FakeResource("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports", True),
    FakeResource("wgpolicyk8s.io", "v1alpha2", "ClusterPolicyReport", "clusterpolicyreports", False),
    FakeResource("openreports.io", "v1alpha1", "Report", "reports", True),
    FakeResource("openreports.io", "v1alpha1", "ClusterReport", "clusterreports", False),
)


# Pods and the controllers the fake runs, the Events trustwatch records, Kyverno's policy kinds.
PODS = FakeResource("", "v1", "Pod", "pods", True)
WORKLOAD_RESOURCES = (
    PODS,
    FakeResource("apps", "v1", "Deployment", "deployments", True),
    FakeResource("apps", "v1", "ReplicaSet", "replicasets", True),
    FakeResource("batch", "v1", "Job", "jobs", True),
)
EVENTS = FakeResource("", "v1", "Event", "events", True)
KYVERNO_RESOURCES = (
    FakeResource("kyverno.io", "v1", "ClusterPolicy", "clusterpolicies", False),
    FakeResource("kyverno.io", "v1", "Policy", "policies", True),
)
CLUSTER_RESOURCES = (*REPORT_RESOURCES, *WORKLOAD_RESOURCES, EVENTS, NAMESPACES, *KYVERNO_RESOURCES)
_ADMITTED_KINDS = frozenset(resource.kind for resource in WORKLOAD_RESOURCES)


class AdmissionDeniedError(Exception):
    """A webhook denied the request; ``status`` is the Status body the API server answers with."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status


@dataclass(frozen=True)
class _Webhook:
    url: str
    ssl_context: ssl.SSLContext
    server_name: str


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class _Stored:
    obj: dict[str, Any]
    encoded: bytes  # the JSON body, encoded once, so big lists are served fast


@dataclass
class _Event:
    rv: int
    resource: FakeResource
    namespace: str
    type: str
    encoded_object: bytes


@dataclass(eq=False)
class _Watch:
    resource: FakeResource
    namespace: str | None
    bookmarks: bool
    queue: asyncio.Queue[_Event | str] = field(default_factory=asyncio.Queue)


_CUT = "cut"
_CLOSE = "close"
_BOOKMARK = "bookmark"


class FakeKubeServer:
    """See the module docstring."""

    def __init__(
        self,
        resources: Iterable[FakeResource] = REPORT_RESOURCES,
        *,
        gone_as: GoneAs = "event",
        groups_present: Iterable[str] | None = None,
        controllers: bool = False,
    ) -> None:
        self._resources = {(r.group, r.version, r.plural): r for r in resources}
        self._by_type = {(r.api_version, r.kind): r for r in self._resources.values()}
        all_groups = {r.group for r in self._resources.values()}
        self._groups = set(all_groups if groups_present is None else groups_present)
        self.gone_as = gone_as
        self._objects: dict[tuple[FakeResource, str, str], _Stored] = {}
        self._rv = 1
        self._floor = 0  # watches/continues from a resourceVersion below this are expired
        self._history: deque[_Event] = deque(maxlen=HISTORY_LIMIT)
        self._watches: dict[_Watch, web.Request] = {}
        self._failures: list[tuple[int, str]] = []  # (status, path fragment), one per failing request
        self.requests: list[RequestRecord] = []
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._controllers = controllers
        self._controller_tasks: set[asyncio.Task[None]] = set()
        self._webhook: _Webhook | None = None
        self._session: aiohttp.ClientSession | None = None
        self.denials: list[tuple[str, str, str, str]] = []

    # --- lifecycle --------------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeKubeServer:
        # kube-apiserver accepts request bodies up to 3 MiB
        app = web.Application(middlewares=[self._middleware], client_max_size=3 * 1024 * 1024)
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/api/", self._core_versions)
        app.router.add_get("/apis/", self._group_list)
        app.router.add_get("/version", self._version)
        app.router.add_get("/apis", self._group_list)
        app.router.add_get("/apis/{group}", self._group)
        app.router.add_get("/apis/{group}/{version}", self._resource_list)
        for prefix in (
            "/apis/{group}/{version}",
            "/apis/{group}/{version}/namespaces/{namespace}",
            "/api/{version}",
            "/api/{version}/namespaces/{namespace}",
        ):
            app.router.add_get(prefix + "/{plural}", self._list_or_watch)
            app.router.add_post(prefix + "/{plural}", self._create)
            app.router.add_get(prefix + "/{plural}/{name}", self._get)
            app.router.add_put(prefix + "/{plural}/{name}", self._replace)
            app.router.add_patch(prefix + "/{plural}/{name}", self._patch)
            app.router.add_delete(prefix + "/{plural}/{name}", self._delete)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in list(self._controller_tasks):
            task.cancel()
        await asyncio.gather(*self._controller_tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        for watch in list(self._watches):
            watch.queue.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()

    def api_client(self) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration(host=self.url)
        return kubernetes.client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    # --- state manipulation -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def watch_requests(self, plural: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.endswith("/" + plural) and r.query.get("watch") == "true"]

    @property
    def active_watches(self) -> int:
        return len(self._watches)

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self._by_type.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if resource is None:
            raise ValueError(f"the fake server does not serve {obj.get('apiVersion')} {obj.get('kind')}")
        metadata = obj.get("metadata", {})
        key = (resource, metadata.get("namespace", "") if resource.namespaced else "", metadata["name"])
        return self._store(key, copy.deepcopy(obj), "MODIFIED" if key in self._objects else "ADDED")

    def delete_object(self, api_version: str, kind: str, name: str, namespace: str = "") -> bool:
        resource = self._by_type[(api_version, kind)]
        return self._remove((resource, namespace if resource.namespaced else "", name)) is not None

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str = ""
    ) -> dict[str, Any] | None:
        resource = self._by_type[(api_version, kind)]
        stored = self._objects.get((resource, namespace if resource.namespaced else "", name))
        return copy.deepcopy(stored.obj) if stored else None

    def objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        resource = self._by_type[(api_version, kind)]
        return [copy.deepcopy(stored.obj) for _key, stored in self._items(resource)]

    def register_webhook(self, url: str, ca_file: Path, server_name: str = "localhost") -> None:
        """Send creates and updates of Pods and Pod controllers to ``url``/mutate and ``url``/validate,
        checking the certificate against ``ca_file`` for ``server_name``."""
        context = ssl.create_default_context(cafile=str(ca_file))
        self._webhook = _Webhook(url.rstrip("/"), context, server_name)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` through admission (raises AdmissionDeniedError), as ``kubectl create`` would."""
        resource = self._by_type[(obj["apiVersion"], obj["kind"])]
        namespace = obj.get("metadata", {}).get("namespace", "") if resource.namespaced else ""
        return await self._admit_and_create(resource, namespace, copy.deepcopy(obj), _USER)

    async def settle(self, within: float = 10.0) -> None:
        """Wait until no controller work is running (controllers react to every stored change)."""
        deadline = time.monotonic() + within
        while self._controller_tasks:
            if time.monotonic() > deadline:
                raise AssertionError(f"controllers still busy after {within}s")
            await asyncio.wait(set(self._controller_tasks), timeout=deadline - time.monotonic())

    def expire_history(self) -> None:
        self._history.clear()
        self._floor = self._rv

    def fail_next(self, count: int, status: int = 500, path_contains: str = "") -> None:
        self._failures.extend([(status, path_contains)] * count)

    def clear_failures(self) -> None:
        self._failures.clear()

    def cut_watches(self) -> None:
        for watch in list(self._watches):
            watch.queue.put_nowait(_CUT)
        self._watches.clear()

    def send_bookmarks(self) -> None:
        for watch in self._watches:
            if watch.bookmarks:
                watch.queue.put_nowait(_BOOKMARK)

    def remove_group(self, group: str) -> None:
        self._groups.discard(group)
        for watch in list(self._watches):
            if watch.resource.group == group:
                watch.queue.put_nowait(_CLOSE)

    def add_group(self, group: str) -> None:
        self._groups.add(group)

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Poll ``predicate`` until it holds; fail the test with a clear message after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s")
            await asyncio.sleep(0.01)

    # --- internals: storage and events ----------------------------------------------------------------------
    def _items(self, resource: FakeResource) -> list[tuple[tuple[FakeResource, str, str], _Stored]]:
        """Objects of one kind, ordered by namespace and name like the real server's lists."""
        found = [(key, stored) for key, stored in self._objects.items() if key[0] is resource]
        return sorted(found, key=lambda item: item[0][1:])

    def _store(self, key: tuple[FakeResource, str, str], obj: dict[str, Any], event: str) -> dict[str, Any]:
        resource, namespace, name = key
        self._rv += 1
        metadata = obj.setdefault("metadata", {})
        metadata["name"] = name
        if resource.namespaced:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        previous = self._objects.get(key)
        if previous is not None:
            metadata["uid"] = previous.obj["metadata"]["uid"]
            metadata["creationTimestamp"] = previous.obj["metadata"]["creationTimestamp"]
            metadata["generation"] = previous.obj["metadata"].get("generation", 1) + 1
        else:
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            metadata["generation"] = 1
        metadata["resourceVersion"] = str(self._rv)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        encoded = json.dumps(obj, separators=(",", ":")).encode()
        self._objects[key] = _Stored(obj, encoded)
        self._emit(_Event(self._rv, resource, namespace, event, encoded))
        if self._controllers and resource.kind in _CONTROLLED:
            task = asyncio.get_running_loop().create_task(self._control(key))
            self._controller_tasks.add(task)
            task.add_done_callback(self._controller_tasks.discard)
        return copy.deepcopy(obj)

    def _remove(self, key: tuple[FakeResource, str, str]) -> dict[str, Any] | None:
        stored = self._objects.pop(key, None)
        if stored is None:
            return None
        self._rv += 1
        obj = stored.obj
        obj["metadata"]["resourceVersion"] = str(self._rv)
        encoded = json.dumps(obj, separators=(",", ":")).encode()
        self._emit(_Event(self._rv, key[0], key[1], "DELETED", encoded))
        self._collect_dependents(str(obj["metadata"].get("uid", "")))
        return obj

    def _collect_dependents(self, owner_uid: str) -> None:
        """Garbage collection: objects owned by a deleted uid go too (and theirs, recursively)."""
        dependents = [
            key
            for key, stored in self._objects.items()
            if any(
                isinstance(ref, dict) and ref.get("uid") == owner_uid
                for ref in stored.obj["metadata"].get("ownerReferences") or []
            )
        ]
        for key in dependents:
            self._remove(key)

    # --- internals: admission and controllers ---------------------------------------------------------------
    async def _admit_and_create(
        self, resource: FakeResource, namespace: str, obj: dict[str, Any], user: str
    ) -> dict[str, Any]:
        """Mutating admission (no name yet for generateName), name and uid, validating admission, store."""
        metadata = obj.setdefault("metadata", {})
        metadata.pop("resourceVersion", None)
        if resource.namespaced:
            metadata["namespace"] = namespace
        obj = await self._review("mutate", resource, operation="CREATE", obj=obj, old=None, user=user)
        if not metadata.get("name") and obj["metadata"].get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            obj["metadata"]["name"] = obj["metadata"]["generateName"] + suffix
        name = obj["metadata"].get("name")
        if not name:
            raise AdmissionDeniedError(_status_body(422, "Invalid", "metadata.name: Required value"))
        key = (resource, namespace, name)
        if key in self._objects:
            raise AdmissionDeniedError(
                _status_body(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
            )
        obj["metadata"]["uid"] = str(uuid.uuid4())
        obj["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        await self._review("validate", resource, operation="CREATE", obj=obj, old=None, user=user)
        if key in self._objects:  # created meanwhile by someone else
            raise AdmissionDeniedError(
                _status_body(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
            )
        return self._store(key, obj, "ADDED")

    async def _review(
        self,
        webhook: str,
        resource: FakeResource,
        *,
        operation: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        user: str,
    ) -> dict[str, Any]:
        """Send one AdmissionReview; returns the object (patched by /mutate) or raises on a denial."""
        if self._webhook is None or resource.kind not in _ADMITTED_KINDS:
            return obj
        metadata = obj.get("metadata", {})
        request = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
            "resource": {"group": resource.group, "version": resource.version, "resource": resource.plural},
            "requestKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": user},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(
            f"{self._webhook.url}/{webhook}",
            json=review,
            ssl=self._webhook.ssl_context,
            server_hostname=self._webhook.server_name,
        ) as answer:
            answer.raise_for_status()
            response = (await answer.json())["response"]
        if not response.get("allowed"):
            status = response.get("status") or {}
            reason = status.get("message", "")
            message = f'admission webhook "{webhook}.trustwatch.fake" denied the request: {reason}'
            self.denials.append((resource.kind, request["namespace"], request["name"], message))
            raise AdmissionDeniedError(_status_body(int(status.get("code") or 403), "Forbidden", message))
        if response.get("patch"):
            obj = _json_patch(obj, json.loads(base64.b64decode(response["patch"])))
        return obj

    async def _control(self, key: tuple[FakeResource, str, str]) -> None:
        """One reconcile of the controller owning this kind, after the change that triggered it."""
        await asyncio.sleep(0)  # controllers act after the write that woke them, as informers do
        stored = self._objects.get(key)
        if stored is None:
            return
        obj = copy.deepcopy(stored.obj)
        try:
            if key[0].kind == "Deployment":
                await self._control_deployment(obj)
            elif key[0].kind == "ReplicaSet":
                await self._control_pods(obj, int(obj.get("spec", {}).get("replicas", 1)))
            elif key[0].kind == "Job" and stored.obj["metadata"]["generation"] == 1:
                await self._control_pods(obj, 1)
        except AdmissionDeniedError:
            pass  # recorded in self.denials; a real controller retries with backoff and emits FailedCreate

    async def _control_deployment(self, deployment: dict[str, Any]) -> None:
        template = deployment.get("spec", {}).get("template", {})
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        replica_sets = self._by_type[("apps/v1", "ReplicaSet")]
        wanted = f"{name}-{template_hash}"
        for key, stored in list(self._items(replica_sets)):
            owned = _owned_by(stored.obj, deployment)
            if owned and key[2] != wanted and stored.obj.get("spec", {}).get("replicas", 1) != 0:
                scaled = copy.deepcopy(stored.obj)
                scaled["spec"]["replicas"] = 0  # old ReplicaSets are kept, scaled to zero
                self._store(key, scaled, "MODIFIED")
        if (replica_sets, namespace, wanted) in self._objects:
            return
        labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": template_hash}
        replica_set = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": wanted,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [_owner_reference(deployment)],
            },
            "spec": {
                "replicas": deployment.get("spec", {}).get("replicas", 1),
                "selector": {"matchLabels": labels},
                "template": {**template, "metadata": {**template.get("metadata", {}), "labels": labels}},
            },
        }
        await self._admit_and_create(replica_sets, namespace, replica_set, _CONTROLLER_USER)

    async def _control_pods(self, owner: dict[str, Any], replicas: int) -> None:
        """Create or delete owned Pods until ``replicas`` exist; new Pods are named by generateName."""
        namespace, name = owner["metadata"]["namespace"], owner["metadata"]["name"]
        owned = [key for key, stored in self._items(PODS) if _owned_by(stored.obj, owner)]
        for key in owned[replicas:]:
            self._remove(key)
        template = owner.get("spec", {}).get("template", {})
        for _ in range(replicas - len(owned)):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{name}-",
                    "namespace": namespace,
                    "labels": dict(template.get("metadata", {}).get("labels") or {}),
                    "ownerReferences": [_owner_reference(owner)],
                },
                "spec": copy.deepcopy(template.get("spec", {})),
            }
            await self._admit_and_create(PODS, namespace, pod, _CONTROLLER_USER)

    def _emit(self, event: _Event) -> None:
        self._history.append(event)
        for watch in self._watches:
            if _watch_matches(watch, event):
                watch.queue.put_nowait(event)

    # --- internals: HTTP ----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.requests.append(RequestRecord(request.method, request.path, dict(request.query)))
        for index, (status, fragment) in enumerate(self._failures):
            if fragment in request.path_qs:
                del self._failures[index]
                return _status(status, _REASONS.get(status, "InternalError"), f"injected failure {status}")
        response: web.StreamResponse = await handler(request)
        return response

    async def _core_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"})

    def _versions(self, group: str) -> list[dict[str, str]]:
        versions = sorted({r.version for r in self._resources.values() if r.group == group})
        return [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]

    def _group_doc(self, group: str) -> dict[str, Any]:
        versions = self._versions(group)
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    async def _group_list(self, request: web.Request) -> web.Response:
        groups = [self._group_doc(group) for group in sorted(self._groups) if group]
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def _group(self, request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if group not in self._groups:
            return _status(404, "NotFound", "the server could not find the requested resource")
        return web.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group)})

    async def _resource_list(self, request: web.Request) -> web.Response:
        group, version = request.match_info["group"], request.match_info["version"]
        served = [r for r in self._resources.values() if r.group == group and r.version == version]
        if group not in self._groups or not served:
            return _status(404, "NotFound", "the server could not find the requested resource")
        resources = [
            {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            }
            for r in served
        ]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}",
                "resources": resources,
            }
        )

    def _resource(self, request: web.Request) -> FakeResource | None:
        info = request.match_info
        resource = self._resources.get((info.get("group", ""), info["version"], info["plural"]))
        if resource is None or resource.group not in self._groups:
            return None
        if "namespace" in info and not resource.namespaced:
            return None
        return resource

    async def _list_or_watch(self, request: web.Request) -> web.StreamResponse:
        resource = self._resource(request)
        if resource is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        namespace = request.match_info.get("namespace")
        if request.query.get("watch") in ("true", "1", "True"):
            return await self._watch(request, resource, namespace)
        return self._list(request, resource, namespace)

    def _list(self, request: web.Request, resource: FakeResource, namespace: str | None) -> web.Response:
        selector = _label_selector(request.query.get("labelSelector", ""))
        items = [
            (key, stored)
            for key, stored in self._items(resource)
            if (namespace is None or key[1] == namespace)
            and selector.items() <= (stored.obj["metadata"].get("labels") or {}).items()
        ]
        list_rv, start = self._rv, 0
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token))
                list_rv, start = int(state["rv"]), int(state["start"])
            except (ValueError, KeyError, TypeError):
                return _status(400, "BadRequest", "invalid continue token")
            if list_rv < self._floor:
                return _status(410, "Expired", "The provided continue parameter is too old")
        limit = int(request.query.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        page = items[start:end]
        metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if end < len(items):
            raw = json.dumps({"rv": list_rv, "start": end}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(raw).decode()
            metadata["remainingItemCount"] = len(items) - end
        head = json.dumps(
            {"apiVersion": resource.api_version, "kind": f"{resource.kind}List", "metadata": metadata}
        ).encode()
        body = head[:-1] + b',"items":[' + b",".join(stored.encoded for _key, stored in page) + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def _watch(
        self, request: web.Request, resource: FakeResource, namespace: str | None
    ) -> web.StreamResponse:
        raw_rv = request.query.get("resourceVersion", "")
        since = int(raw_rv) if raw_rv.isdigit() else 0
        expired = since != 0 and since < self._floor
        if expired and self.gone_as == "status":
            return _status(410, "Expired", f"too old resource version: {since} ({self._floor})")
        watch = _Watch(resource, namespace, request.query.get("allowWatchBookmarks") in ("true", "True", "1"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if expired:
            await _write_event(response, "ERROR", _gone_status(since, self._floor))
            await response.write_eof()
            return response
        if since == 0:
            backlog = [
                _Event(self._rv, resource, key[1], "ADDED", stored.encoded)
                for key, stored in self._items(resource)
                if namespace is None or key[1] == namespace
            ]
        else:
            backlog = [e for e in self._history if e.rv > since and _watch_matches(watch, e)]
        for event in backlog:
            watch.queue.put_nowait(event)
        self._watches[watch] = request
        timeout = float(request.query.get("timeoutSeconds") or 0) or None
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        try:
            await self._stream(request, response, watch, deadline)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watches.pop(watch, None)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, watch: _Watch, deadline: float | None
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                await response.write_eof()
                return
            try:
                item = await asyncio.wait_for(watch.queue.get(), remaining)
            except TimeoutError:
                await response.write_eof()
                return
            if item == _CLOSE:
                await response.write_eof()
                return
            if item == _CUT:
                # Half an event as a well-formed chunk, then a reset: what a dying proxy or apiserver does.
                partial = b'{"type":"MODIFIED","object":{"kind'
                transport = request.transport
                if transport is not None:
                    transport.write(b"%x\r\n%s\r\n" % (len(partial), partial))
                    transport.abort()
                return
            if item == _BOOKMARK:
                bookmark = {
                    "kind": watch.resource.kind,
                    "apiVersion": watch.resource.api_version,
                    "metadata": {"resourceVersion": str(self._rv)},
                }
                await _write_event(response, "BOOKMARK", json.dumps(bookmark).encode())
                continue
            assert isinstance(item, _Event)
            await _write_event(response, item.type, item.encoded_object)

    async def _create(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        if resource is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        body = await _json_body(request)
        if body is None:
            return _status(400, "BadRequest", "body must be a JSON object")
        try:
            created = await self._admit_and_create(
                resource, request.match_info.get("namespace", ""), body, _USER
            )
        except AdmissionDeniedError as denied:
            return web.json_response(denied.status, status=int(denied.status["code"]))
        return web.json_response(created, status=201)

    def _key(self, request: web.Request, resource: FakeResource) -> tuple[FakeResource, str, str]:
        return (resource, request.match_info.get("namespace", ""), request.match_info["name"])

    async def _get(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        stored = self._objects.get(self._key(request, resource)) if resource else None
        if stored is None:
            return _status(404, "NotFound", f'"{request.match_info["name"]}" not found')
        return web.Response(body=stored.encoded, content_type="application/json")

    async def _replace(self, request: web.Request) -> web.Response:
        return await self._update(request, merge=False)

    async def _patch(self, request: web.Request) -> web.Response:
        if request.content_type != "application/merge-patch+json":
            return _status(
                415, "UnsupportedMediaType", f"the fake server only merges, not {request.content_type}"
            )
        return await self._update(request, merge=True)

    async def _update(self, request: web.Request, merge: bool) -> web.Response:
        body = await _json_body(request)
        # Everything from here on is synchronous: the resourceVersion check and the write are one atomic
        # step, so of two simultaneous updates from the same version exactly one wins, as on a real server.
        resource = self._resource(request)
        stored = self._objects.get(self._key(request, resource)) if resource else None
        if resource is None or stored is None:
            return _status(404, "NotFound", f'"{request.match_info["name"]}" not found')
        if body is None:
            return _status(400, "BadRequest", "body must be a JSON object")
        wanted = body.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != stored.obj["metadata"]["resourceVersion"]:
            return _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.plural} "{request.match_info["name"]}": '
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = _merge_patch(copy.deepcopy(stored.obj), body) if merge else body
        if self._webhook is not None and resource.kind in _ADMITTED_KINDS:
            new.setdefault("metadata", {})["uid"] = stored.obj["metadata"]["uid"]
            try:
                for webhook in ("mutate", "validate"):
                    new = await self._review(
                        webhook,
                        resource,
                        operation="UPDATE",
                        obj=new,
                        old=copy.deepcopy(stored.obj),
                        user=_USER,
                    )
            except AdmissionDeniedError as denied:
                return web.json_response(denied.status, status=int(denied.status["code"]))
            current = self._objects.get(self._key(request, resource))
            if (
                current is None
                or current.obj["metadata"]["resourceVersion"] != stored.obj["metadata"]["resourceVersion"]
            ):
                return _status(
                    409, "Conflict", "the object has been modified; please apply your changes again"
                )
        return web.json_response(self._store(self._key(request, resource), new, "MODIFIED"))

    async def _delete(self, request: web.Request) -> web.Response:
        resource = self._resource(request)
        removed = self._remove(self._key(request, resource)) if resource else None
        if removed is None:
            return _status(404, "NotFound", f'"{request.match_info["name"]}" not found')
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": removed["metadata"]["name"]},
            }
        )


_USER = "kubernetes-admin"
_CONTROLLER_USER = "system:serviceaccount:kube-system:replicaset-controller"
_CONTROLLED = frozenset({"Deployment", "ReplicaSet", "Job"})


def _owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(
        isinstance(ref, dict) and ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def _json_patch(obj: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``add``/``replace``/``remove`` on object members and array items (what webhooks send)."""
    result = copy.deepcopy(obj)
    for operation in operations:
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
        ]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        index: Any = (len(target) if last == "-" else int(last)) if isinstance(target, list) else last
        if operation["op"] == "remove":
            del target[index]
        elif operation["op"] == "add" and isinstance(target, list):
            target.insert(index, operation["value"])
        elif operation["op"] in ("add", "replace"):
            target[index] = operation["value"]
        else:
            raise ValueError(f"the fake server does not apply {operation['op']!r} patches")
    return result


def _label_selector(text: str) -> dict[str, str]:
    """Equality-based ``labelSelector`` (``a=b,c=d``), the form trustwatch sends."""
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    return {key.strip(): value.strip().removeprefix("=") for key, value in pairs}


def _watch_matches(watch: _Watch, event: _Event) -> bool:
    return event.resource is watch.resource and (
        watch.namespace is None or event.namespace == watch.namespace
    )


async def _write_event(response: web.StreamResponse, event_type: str, encoded_object: bytes) -> None:
    await response.write(b'{"type":"' + event_type.encode() + b'","object":' + encoded_object + b"}\n")


def _gone_status(since: int, floor: int) -> bytes:
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {since} ({floor})",
            "reason": "Expired",
            "code": 410,
        }
    ).encode()


def _status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(_status_body(code, reason, message), status=code)


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.read())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def report_result(
    policy: str,
    status: str,
    *,
    rule: str = "check",
    resource: tuple[str, str, str] | None = ("Pod", "default", "app"),
    **extra: Any,
) -> dict[str, Any]:
    """One result entry as Kyverno writes it; ``resource`` is (kind, namespace, name) or None."""
    entry: dict[str, Any] = {"policy": policy, "rule": rule, "result": status, "source": "kyverno", **extra}
    if resource is not None:
        kind, namespace, name = resource
        entry["resources"] = [{"apiVersion": "v1", "kind": kind, "namespace": namespace, "name": name}]
    return entry


def report_document(
    name: str,
    namespace: str = "",
    results: Iterable[Any] = (),
    *,
    kind: str = "",
    api_version: str = "wgpolicyk8s.io/v1alpha2",
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PolicyReport (or ClusterPolicyReport when ``namespace`` is empty) with a summary matching its
    results; pass ``api_version="openreports.io/v1alpha1"`` for Report/ClusterReport."""
    entries = list(results)
    if not kind:
        openreports = api_version.startswith("openreports.io/")
        kind = (
            ("Report" if namespace else "ClusterReport")
            if openreports
            else ("PolicyReport" if namespace else "ClusterPolicyReport")
        )
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    statuses = [entry.get("result") for entry in entries if isinstance(entry, dict)]
    summary = {status: statuses.count(status) for status in STATUSES}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "summary": summary,
        "results": entries,
        **extra,
    }
