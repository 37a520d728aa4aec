"""A registry with the OCI 1.1 referrers API, for tests: a loopback front over Debian's docker-registry.

Debian's registry (distribution 2.8) has no ``GET /v2/<name>/referrers/<digest>``. ``ReferrersFront`` proxies
every request to a real ``RegistryServer`` and answers that one route itself, from the manifests with a
``subject`` pushed through it (push with the helpers of tests/support/oci_push.py, passing the front)::

    async with ReferrersFront(registry) as front:
        push_referrer(front, "team/app", digest, SIGSTORE_BUNDLE_V03, layers)
        ref = parse_reference(f"{front.host}/team/app@{digest}")   # plain HTTP, 127.0.0.1

Knobs: ``honour_filters=False`` ignores ``?artifactType=`` and sends no ``OCI-Filters-Applied`` (registries
may do so); ``page_size=N`` splits the list into pages of N linked by ``Link: <…?page=2>; rel="next"``;
``referrers_api=False`` answers that route 404 like the registry itself; ``on_request`` is awaited before
each request is answered (a test can hold requests there to observe concurrency). ``requests`` lists every
request that arrived, with its query and Accept header.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.support.oci_push import OCI_INDEX
from tests.support.registry import OCI_MANIFEST, FaultyProxy, RegistryServer


@dataclass(frozen=True)
class FrontRequest:
    """One request the front received."""

    method: str
    path: str
    query: str
    accept: str


class ReferrersFront:
    """Proxy to ``registry`` adding the referrers API; also a Pusher (tests/support/oci_push.py)."""

    def __init__(
        self,
        registry: RegistryServer,
        *,
        referrers_api: bool = True,
        honour_filters: bool = True,
        page_size: int | None = None,
        on_request: Callable[[FrontRequest], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.referrers_api = referrers_api
        self.honour_filters = honour_filters
        self.page_size = page_size
        self.on_request = on_request
        self.requests: list[FrontRequest] = []
        self._referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._proxy = FaultyProxy(registry.url, self._answer)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the front (plain HTTP)."""
        return self._proxy.host

    async def __aenter__(self) -> ReferrersFront:
        await self._proxy.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._proxy.__aexit__(exc_type, exc, tb)

    def requests_to(self, path_part: str) -> list[FrontRequest]:
        """The requests whose path contains ``path_part``."""
        return [request for request in self.requests if path_part in request.path]

    # --- the referrers route ------------------------------------------------------------------------

    async def _answer(self, request: web.Request) -> web.StreamResponse | None:
        record = FrontRequest(
            request.method, request.path, request.query_string, request.headers.get("Accept", "")
        )
        self.requests.append(record)
        if self.on_request is not None:
            await self.on_request(record)
        name, marker, digest = request.path.removeprefix("/v2/").rpartition("/referrers/")
        if not marker or request.method != "GET" or not self.referrers_api:
            return None
        entries = self._referrers.get((name, digest), [])
        headers = {"Content-Type": OCI_INDEX}
        wanted = request.query.get("artifactType")
        if wanted is not None and self.honour_filters:
            entries = [entry for entry in entries if entry.get("artifactType") == wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        if self.page_size is not None:
            page = int(request.query.get("page", "1"))
            if page * self.page_size < len(entries):
                query = {**request.query, "page": str(page + 1)}
                headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
            entries = entries[(page - 1) * self.page_size : page * self.page_size]
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return web.Response(status=200, headers=headers, body=json.dumps(body).encode())

    def list_referrer(self, repo: str, subject_digest: str, entry: dict[str, Any]) -> None:
        """List a raw descriptor among ``subject_digest``'s referrers (for hostile lists: the registry
        itself refuses an index naming manifests it does not hold)."""
        self._referrers.setdefault((repo, subject_digest), []).append(entry)

    def _record(self, repo: str, manifest: bytes, digest: str) -> None:
        """List ``manifest`` among its subject's referrers, as a registry with the API does on push."""
        document = json.loads(manifest)
        subject = document.get("subject")
        if not isinstance(subject, dict):
            return
        config = document.get("config") or {}
        entry: dict[str, Any] = {
            "mediaType": document.get("mediaType", OCI_MANIFEST),
            "digest": digest,
            "size": len(manifest),
            "artifactType": document.get("artifactType") or config.get("mediaType"),
        }
        if document.get("annotations"):
            entry["annotations"] = document["annotations"]
        self.list_referrer(repo, subject["digest"], entry)

    # --- Pusher: push through the front so that it learns the referrers ------------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        return self.registry.push_blob(repo, data)

    def push_manifest(
        self, repo: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        digest = self.registry.push_manifest(repo, reference, manifest, media_type)
        self._record(repo, manifest, digest)
        return digest

    def get_manifest(self, repo: str, reference: str, accept: str = OCI_MANIFEST) -> bytes | None:
        return self.registry.get_manifest(repo, reference, accept)
