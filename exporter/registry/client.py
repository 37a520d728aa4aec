"""Distribution API v2 client on aiohttp: manifests and blobs by digest, with auth, retries and a deadline.

Everything fetched is checked against its digest and capped in size before anyone parses it, because the
registry is not trusted: only the signatures are.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import random
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import aiohttp

from exporter.registry.auth import (
    Challenge,
    CredentialStore,
    TokenCache,
    load_docker_config,
    parse_challenge,
    token_from_response,
)
from exporter.registry.dns import BoundedResolver
from exporter.registry.errors import NotFoundError, RegistryError
from exporter.registry.manifest import (
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    ManifestFormatError,
    parse_manifest,
)
from exporter.registry.reference import ImageReference, is_sha256_digest, normalize_registry

__all__ = [
    "NotFoundError",
    "ReferrerList",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "load_docker_config",
]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0
MAX_TOKEN_BYTES = 64 * 1024
MAX_ERROR_BODY_BYTES = 4 * 1024
# Every manifest type, OCI index included: Debian's registry (distribution 2.8) serves an OCI index, such as
# the referrers tag fallback ``sha256-<hex>``, only to requests that accept it (404 otherwise).
_ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
# Answers to GET /referrers/ that mean "this registry has no referrers API": use the tag schema instead.
# 404 is the OCI rule; go-containerregistry (cosign) also falls back on 400 and 406, and so do we.
REFERRERS_UNSUPPORTED_STATUSES = frozenset({400, 404, 406})
_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
ARTIFACT_TYPE_FILTER = "artifactType"

# Absolute loop time by which the current verification's requests must be done; see RegistryClient.budget().
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("registry_deadline", default=None)


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: which may use plain HTTP, credentials, timeouts and a metrics hook."""

    insecure_registries: frozenset[str] = frozenset()
    credentials: CredentialStore | None = None
    request_timeout: float = 5.0
    deadline: float = 10.0
    on_request: Callable[[str, str], None] | None = None
    max_connections: int = 100

    def __post_init__(self) -> None:
        # References name registries canonically (exporter.registry.reference.normalize_registry).
        canonical = frozenset(normalize_registry(host) for host in self.insecure_registries)
        object.__setattr__(self, "insecure_registries", canonical)
        if self.request_timeout <= 0 or self.deadline <= 0:
            raise ValueError(
                f"registry timeouts must be positive (request_timeout={self.request_timeout:g}, "
                f"deadline={self.deadline:g})"
            )
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections}")


@dataclass(frozen=True)
class ReferrerList:
    """The referrers of one manifest as the OCI 1.1 referrers API lists them.

    ``filtered_by_registry`` tells whether the registry applied the requested ``artifactType`` filter
    (``OCI-Filters-Applied``); when it did not, the client filtered ``referrers`` itself. ``next_page`` is
    set when the registry has more (its ``Link: <…>; rel="next"``).
    """

    referrers: tuple[Descriptor, ...]
    filtered_by_registry: bool = False
    next_page: str | None = None


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class RegistryClient:
    """One aiohttp session shared by every request; aiohttp pools connections per host.

    Use as ``async with RegistryClient(options) as client``. Each public call runs inside a deadline
    (``options.deadline`` seconds); wrap several calls in ``with client.budget():`` to give them one shared
    deadline, as a verification does.
    """

    def __init__(self, options: RegistryOptions | None = None) -> None:
        self.options = options if options is not None else RegistryOptions()
        self._session: aiohttp.ClientSession | None = None
        self._tokens = TokenCache()
        # Hosts that asked for Basic auth: later requests send credentials up front.
        self._basic_hosts: set[str] = set()
        self._token_fetches: dict[tuple[str, str], asyncio.Future[tuple[str, float | None]]] = {}

    async def __aenter__(self) -> RegistryClient:
        connector = aiohttp.TCPConnector(
            limit=self.options.max_connections, ttl_dns_cache=300, resolver=BoundedResolver()
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @contextmanager
    def budget(self) -> Iterator[None]:
        """Share one deadline among all requests made inside; nested budgets keep the outer deadline."""
        if _DEADLINE.get() is not None:
            yield
            return
        token = _DEADLINE.set(asyncio.get_running_loop().time() + self.options.deadline)
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    # --- public API -------------------------------------------------------------------------------------

    async def resolve_digest(self, ref: ImageReference) -> str:
        """The manifest digest ``ref`` points at; no request when the reference already pins a digest."""
        if ref.digest is not None:
            return ref.digest
        reference = ref.tag or "latest"
        with self.budget():
            response = await self._call(ref, "HEAD", f"manifests/{reference}", _ACCEPT_MANIFESTS, 0)
            digest = response.headers.get("Docker-Content-Digest", "")
            if is_sha256_digest(digest):
                return digest
            # Some registries omit the header on HEAD: fetch the manifest and hash it ourselves.
            manifest = await self.get_manifest(ref, reference)
            return manifest.digest

    async def get_manifest(self, ref: ImageReference, reference: str) -> Manifest:
        """The manifest for a tag or digest in ``ref``'s repository, verified against its digest."""
        with self.budget():
            response = await self._call(
                ref, "GET", f"manifests/{reference}", _ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES
            )
        url = self._url(ref, f"manifests/{reference}")
        actual = "sha256:" + hashlib.sha256(response.body).hexdigest()
        expected = reference if is_sha256_digest(reference) else response.headers.get("Docker-Content-Digest")
        if expected and expected.startswith("sha256:") and expected != actual:
            raise RegistryError(
                f"{url}: manifest content has digest {actual}, not the expected {expected}; the registry "
                "served corrupted or substituted content",
                registry=ref.api_host,
                url=url,
            )
        try:
            return parse_manifest(response.body, actual, response.headers.get("Content-Type"))
        except ManifestFormatError as exc:
            raise RegistryError(f"{url}: {exc}", registry=ref.api_host, url=url) from None

    async def get_blob(self, ref: ImageReference, digest: str, max_bytes: int) -> bytes:
        """A blob of ``ref``'s repository, at most ``max_bytes`` long, verified against ``digest``."""
        url = self._url(ref, f"blobs/{digest}")
        if not is_sha256_digest(digest):
            raise RegistryError(
                f"{url}: blob digest {digest!r} is not a sha256 digest", registry=ref.api_host
            )
        with self.budget():
            response = await self._call(ref, "GET", f"blobs/{digest}", "*/*", max_bytes)
        actual = "sha256:" + hashlib.sha256(response.body).hexdigest()
        if actual != digest:
            raise RegistryError(
                f"{url}: blob content has digest {actual}, not {digest}; the registry served corrupted or "
                "substituted content",
                registry=ref.api_host,
                url=url,
            )
        return response.body

    async def get_referrers(
        self, ref: ImageReference, digest: str, artifact_type: str | None = None
    ) -> ReferrerList | None:
        """The referrers of ``digest`` in ``ref``'s repository (``GET /v2/<name>/referrers/<digest>``), only
        those of ``artifact_type`` when given; None when the registry has no referrers API (use the
        ``sha256-<hex>`` tag schema then).

        The list is size-capped but, being computed by the registry, has no digest to check; each referrer's
        manifest is checked against its digest when fetched. A registry may split it into pages: see
        ``next_page`` and ``get_referrers_page``.
        """
        path = self._referrers_path(ref, digest)
        if artifact_type is not None:
            path += "?" + urlencode({ARTIFACT_TYPE_FILTER: artifact_type})
        with self.budget():
            try:
                response = await self._call(ref, "GET", path, OCI_INDEX, MAX_MANIFEST_BYTES)
            except RegistryError as exc:
                if exc.status in REFERRERS_UNSUPPORTED_STATUSES:
                    return None
                raise
        if response.headers.get("Content-Type", "").split(";")[0].strip() != OCI_INDEX:
            return None  # a 200 that is not an OCI index: some registries answer unknown routes that way
        return self._referrer_list(ref, digest, path, response, artifact_type)

    async def get_referrers_page(
        self, ref: ImageReference, digest: str, page: str, artifact_type: str | None = None
    ) -> ReferrerList:
        """A further page of ``digest``'s referrers: ``page`` is a ``next_page`` of the previous one."""
        with self.budget():
            response = await self._call(ref, "GET", page, OCI_INDEX, MAX_MANIFEST_BYTES)
        return self._referrer_list(ref, digest, page, response, artifact_type)

    def _referrers_path(self, ref: ImageReference, digest: str) -> str:
        if not is_sha256_digest(digest):
            url = self._url(ref, f"referrers/{digest[:80]}")
            raise RegistryError(f"{url}: {digest[:80]!r} is not a sha256 digest", registry=ref.api_host)
        return f"referrers/{digest}"

    def _referrer_list(
        self, ref: ImageReference, digest: str, path: str, response: _Response, artifact_type: str | None
    ) -> ReferrerList:
        url = self._url(ref, path)
        try:
            index = parse_manifest(response.body, "", OCI_INDEX)
        except ManifestFormatError as exc:
            raise RegistryError(f"{url}: referrers list: {exc}", registry=ref.api_host, url=url) from None
        if not index.is_index:
            raise RegistryError(
                f"{url}: referrers list is a {index.media_type}, not an OCI index",
                registry=ref.api_host,
                url=url,
            )
        applied = {
            name.strip()
            for name in response.headers.get("OCI-Filters-Applied", "").split(",")
            if name.strip()
        }
        filtered_by_registry = artifact_type is not None and ARTIFACT_TYPE_FILTER in applied
        referrers = index.manifests
        if artifact_type is not None and not filtered_by_registry:
            referrers = tuple(entry for entry in referrers if entry.artifact_type == artifact_type)
        next_page = _next_page(ref, url, self._referrers_path(ref, digest), response.headers.get("Link", ""))
        return ReferrerList(referrers, filtered_by_registry, next_page)

    # --- request plumbing -------------------------------------------------------------------------------

    def _base_url(self, host: str) -> str:
        scheme = "http" if host in self.options.insecure_registries else "https"
        return f"{scheme}://{host}"

    def _url(self, ref: ImageReference, path: str) -> str:
        return f"{self._base_url(ref.api_host)}/v2/{ref.repository}/{path}"

    def _time_left(self) -> float:
        deadline = _DEADLINE.get()
        if deadline is None:  # pragma: no cover - every caller runs inside budget()
            return self.options.request_timeout
        return deadline - asyncio.get_running_loop().time()

    def _remaining(self, host: str, url: str) -> float:
        """Seconds left for this verification's requests; raises once the deadline has passed."""
        remaining = self._time_left()
        if remaining <= 0:
            raise RegistryError(
                f"{url}: gave up, the {self.options.deadline:g}s deadline for this verification passed; "
                "the registry is too slow or unreachable (raise the timeout or check the registry)",
                registry=host,
                url=url,
            )
        return remaining

    async def _call(
        self, ref: ImageReference, method: str, path: str, accept: str, max_bytes: int
    ) -> _Response:
        """One API request with auth: retries once with credentials after a 401 challenge."""
        host = ref.api_host
        url = self._url(ref, path)
        scope = f"repository:{ref.repository}:pull"
        headers = {"Accept": accept}
        authorization = self._known_authorization(ref.registry, host, scope)
        if authorization:
            headers["Authorization"] = authorization
        response = await self._send(method, url, host, headers, max_bytes)
        if response.status == 401:
            challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
            headers["Authorization"] = await self._authorize(ref, url, scope, challenge, authorization)
            response = await self._send(method, url, host, headers, max_bytes)
            if response.status == 401:
                has_credentials = self.options.credentials and self.options.credentials.lookup(ref.registry)
                hint = (
                    f"registry rejected our credentials (401); check the entry for {ref.registry} in the "
                    "registry config / imagePullSecret"
                    if has_credentials
                    else f"registry refused anonymous access (401); the repository may be private or not "
                    f"exist: give credentials for {ref.registry}"
                )
                raise RegistryError(f"{url}: {hint}", registry=host, url=url, status=401)
        if response.status == 404:
            raise NotFoundError(
                f"{url}: not found (404); check the repository name and the tag or digest",
                registry=host,
                url=url,
                status=404,
            )
        if response.status == 403:
            raise RegistryError(
                f"{url}: access denied (403); the credentials for {ref.registry} lack pull access to "
                f"{ref.repository}",
                registry=host,
                url=url,
                status=403,
            )
        if not 200 <= response.status < 300:
            detail = response.body[:200].decode("utf-8", errors="replace").strip()
            raise RegistryError(
                f"{url}: unexpected HTTP {response.status}" + (f" ({detail})" if detail else ""),
                registry=host,
                url=url,
                status=response.status,
            )
        return response

    def _known_authorization(self, registry: str, host: str, scope: str) -> str | None:
        token = self._tokens.get(host, scope)
        if token is not None:
            return f"Bearer {token}"
        credential = self.options.credentials.lookup(registry) if self.options.credentials else None
        if credential is not None and host in self._basic_hosts:
            return credential.basic_header()
        return None

    async def _authorize(
        self, ref: ImageReference, url: str, scope: str, challenge: Challenge | None, rejected: str | None
    ) -> str:
        """The Authorization header to retry with after a 401 that rejected ``rejected`` (or no header)."""
        host = ref.api_host
        credential = self.options.credentials.lookup(ref.registry) if self.options.credentials else None
        if challenge is None:
            raise RegistryError(
                f"{url}: registry answered 401 without a WWW-Authenticate challenge",
                registry=host,
                url=url,
                status=401,
            )
        if challenge.scheme == "basic":
            if credential is None:
                raise RegistryError(
                    f"{url}: registry requires a login (basic auth) and no credentials for {ref.registry} "
                    "were given; pass a docker config.json (--registry-config) or an imagePullSecret",
                    registry=host,
                    url=url,
                    status=401,
                )
            self._basic_hosts.add(host)
            return credential.basic_header()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise RegistryError(
                f"{url}: unsupported auth challenge {challenge.scheme!r}", registry=host, url=url, status=401
            )
        return await self._bearer_authorization(ref, url, scope, challenge, rejected)

    async def _bearer_authorization(
        self, ref: ImageReference, url: str, scope: str, challenge: Challenge, rejected: str | None
    ) -> str:
        """A bearer token for ``scope``: cached, joined from a fetch in flight, or fetched now.

        Concurrent requests to one repository share a single token fetch instead of stampeding the token
        endpoint (Docker Hub rate-limits it), and reuse a token fetched while their own 401 was in flight.
        """
        host = ref.api_host
        cached = self._tokens.get(host, scope)
        if cached is not None and f"Bearer {cached}" != rejected:
            return f"Bearer {cached}"
        key = (host, scope)
        fetch = self._token_fetches.get(key)
        if fetch is None:
            requested = challenge.params.get("scope") or scope
            fetch = asyncio.ensure_future(self._fetch_and_cache_token(ref, url, challenge, requested, scope))
            self._token_fetches[key] = fetch
            fetch.add_done_callback(lambda done: self._token_fetch_done(key, done))
        token, _lifetime = await asyncio.shield(fetch)
        return f"Bearer {token}"

    async def _fetch_and_cache_token(
        self, ref: ImageReference, url: str, challenge: Challenge, requested: str, scope: str
    ) -> tuple[str, float | None]:
        """Fetch a token and cache it before the fetch counts as done, so a 401 handled between the end of
        the fetch and its waiters resuming finds the token cached instead of starting a second fetch."""
        token, lifetime = await self._fetch_token(ref, url, challenge, requested)
        self._tokens.put(ref.api_host, scope, token, lifetime)
        return token, lifetime

    def _token_fetch_done(
        self, key: tuple[str, str], fetch: asyncio.Future[tuple[str, float | None]]
    ) -> None:
        self._token_fetches.pop(key, None)
        if not fetch.cancelled():
            fetch.exception()  # mark as retrieved even if every waiter was cancelled meanwhile

    async def _fetch_token(
        self, ref: ImageReference, url: str, challenge: Challenge, scope: str
    ) -> tuple[str, float | None]:
        host = ref.api_host
        realm = challenge.params["realm"]
        realm_parts = urlsplit(realm)
        if realm_parts.scheme not in ("https", "http") or not realm_parts.netloc:
            raise RegistryError(f"{url}: token realm {realm!r} is not an http(s) URL", registry=host, url=url)
        if realm_parts.scheme == "http" and host not in self.options.insecure_registries:
            raise RegistryError(
                f"{url}: token realm {realm} is plain HTTP; allowed only for registries marked insecure",
                registry=host,
                url=url,
            )
        credential = self.options.credentials.lookup(ref.registry) if self.options.credentials else None
        query = {"scope": scope}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        headers = {"Accept": "application/json"}
        if credential is not None and credential.identity_token:
            form = {**query, "grant_type": "refresh_token", "refresh_token": credential.identity_token}
            form["client_id"] = "trustwatch"
            response = await self._send(
                "POST", realm, realm_parts.netloc, headers, MAX_TOKEN_BYTES, form=form
            )
        else:
            if credential is not None:
                headers["Authorization"] = credential.basic_header()
            sep = "&" if realm_parts.query else "?"
            token_url = f"{realm}{sep}{urlencode(query)}"
            response = await self._send("GET", token_url, realm_parts.netloc, headers, MAX_TOKEN_BYTES)
        if response.status != 200:
            hint = (
                f"check the credentials for {ref.registry}"
                if credential is not None
                else f"the repository may be private: give credentials for {ref.registry}"
            )
            raise RegistryError(
                f"{url}: token endpoint {realm} answered HTTP {response.status}; {hint}",
                registry=host,
                url=realm,
                status=response.status,
            )
        try:
            return token_from_response(response.body)
        except ValueError as exc:
            raise RegistryError(f"{url}: {exc} ({realm})", registry=host, url=realm) from None

    def _record(self, host: str, status: str) -> None:
        if self.options.on_request is not None:
            self.options.on_request(host, status)

    async def _send(
        self,
        method: str,
        url: str,
        host: str,
        headers: Mapping[str, str],
        max_bytes: int,
        *,
        form: Mapping[str, str] | None = None,
    ) -> _Response:
        """One HTTP exchange with bounded retries (429, 5xx, resets, timeouts) inside the deadline."""
        if self._session is None:
            raise RuntimeError("RegistryClient used outside 'async with'")
        last_problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = self._remaining(host, url)
            timeout = aiohttp.ClientTimeout(total=min(self.options.request_timeout, remaining))
            try:
                async with self._session.request(
                    method, url, headers=headers, data=form, timeout=timeout, allow_redirects=True
                ) as response:
                    self._record(host, str(response.status))
                    if response.status in RETRY_STATUSES:
                        last_problem = f"HTTP {response.status}"
                        retry_after = response.headers.get("Retry-After", "")
                    else:
                        if method == "HEAD":
                            body = b""
                        elif response.status < 300:
                            body = await _read_capped(response, max_bytes, url, host)
                        else:  # only the start of an error page is kept, for the message
                            body = await response.content.read(MAX_ERROR_BODY_BYTES)
                        return _Response(response.status, response.headers, body)
            except TimeoutError:
                self._record(host, "error")
                last_problem = f"no answer within {timeout.total:.3g}s"
                retry_after = ""
            except aiohttp.ClientError as exc:
                self._record(host, "error")
                if _plain_http_answer(exc):
                    raise RegistryError(
                        f"{url}: the TLS handshake failed ({exc}): {host} seems to speak plain HTTP; "
                        f"if it does, add --insecure-registry {host}",
                        registry=host,
                        url=url,
                    ) from exc
                last_problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
                retry_after = ""
                if isinstance(exc, aiohttp.ClientConnectorDNSError):
                    break  # the name did not resolve (or not in time): asking again costs the deadline
            if attempt == MAX_ATTEMPTS:
                break
            delay = _backoff(attempt, retry_after)
            if delay >= self._time_left():
                break
            log.debug(
                "retrying registry request",
                extra={"url": url, "attempt": attempt, "problem": last_problem, "delay": delay},
            )
            await asyncio.sleep(delay)
        raise RegistryError(
            f"{url}: {last_problem} (gave up after {attempt} attempt(s)); check that the registry is up and "
            "reachable",
            registry=host,
            url=url,
        )


def _plain_http_answer(exc: aiohttp.ClientError) -> bool:
    """A TLS client talking to a plain-HTTP server reads its HTTP answer as a TLS record of a version
    that does not exist; no retry can fix that, the configuration must."""
    return isinstance(exc, aiohttp.ClientSSLError) and "WRONG_VERSION_NUMBER" in str(exc)


def _next_page(ref: ImageReference, url: str, first: str, link_header: str) -> str | None:
    """The next page of a referrers list from its ``Link`` header, as a path for ``_call``; the link must
    stay on the same list (a link elsewhere could aim our credentials at another host or path)."""
    match = _NEXT_LINK.search(link_header)
    if match is None:
        return None
    target = urlsplit(urljoin(url, match.group(1)))
    here = urlsplit(url)
    same_list = (target.scheme, target.netloc, unquote(target.path)) == (
        here.scheme,
        here.netloc,
        unquote(here.path),
    )
    if not same_list:
        raise RegistryError(
            f"{url}: the next page of the referrers list is {match.group(1)[:200]!r}, not this list on this "
            "registry; refusing to follow it",
            registry=ref.api_host,
            url=url,
        )
    return f"{first}?{target.query}" if target.query else first


def _backoff(attempt: int, retry_after: str) -> float:
    """Exponential backoff with jitter; a registry's small Retry-After (seconds) is honoured."""
    if retry_after.isdigit():
        return min(float(retry_after), BACKOFF_CAP * 5)
    base: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
    return base / 2 + random.uniform(0, base / 2)


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int, url: str, host: str) -> bytes:
    if response.content_length is not None and response.content_length > max_bytes:
        raise RegistryError(
            f"{url}: response of {response.content_length} bytes exceeds the {max_bytes}-byte limit",
            registry=host,
            url=url,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise RegistryError(f"{url}: response exceeds the {max_bytes}-byte limit", registry=host, url=url)
        chunks.append(chunk)
    return b"".join(chunks)
