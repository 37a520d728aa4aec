"""The registry client against Debian's real docker-registry, and against registries that misbehave."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exporter.registry import (
    NotFoundError,
    RegistryClient,
    RegistryError,
    RegistryOptions,
    load_docker_config,
    parse_reference,
)
from exporter.registry.client import MAX_ATTEMPTS
from exporter.registry.manifest import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from tests.support.registry import (
    FaultyProxy,
    HangingServer,
    RegistryServer,
    free_port,
    htpasswd_available,
    needs_registry,
    sha256_digest,
)

pytestmark = needs_registry

# A generous guard so a hang fails the test instead of stalling the suite; not a timing assertion.
HANG_GUARD = 30


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


def _options(*hosts: str, **kwargs: Any) -> RegistryOptions:
    return RegistryOptions(insecure_registries=frozenset(hosts), **kwargs)


async def test_resolves_a_tag_and_fetches_the_verified_manifest(registry: RegistryServer) -> None:
    digest = registry.push_image("client/app", "v1")
    ref = parse_reference(f"{registry.host}/client/app:v1")
    async with RegistryClient(_options(registry.host)) as client:
        assert await client.resolve_digest(ref) == digest
        manifest = await client.get_manifest(ref, "v1")
        by_digest = await client.get_manifest(ref, digest)
    assert manifest.digest == digest == by_digest.digest
    assert manifest.media_type == OCI_MANIFEST
    assert len(manifest.layers) == 1
    assert sha256_digest(manifest.raw) == digest


async def test_docker_v2_manifests_and_oci_indexes_are_accepted(registry: RegistryServer) -> None:
    child = registry.push_image("client/multi", "amd64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": child, "size": 400, "platform": {"os": "linux"}}
            ],
        }
    ).encode()
    index_digest = registry.push_manifest("client/multi", "latest", index, OCI_INDEX)
    config = registry.push_blob("client/docker", b"{}")
    docker = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": config,
            },
            "layers": [],
        }
    ).encode()
    docker_digest = registry.push_manifest("client/docker", "v2", docker, DOCKER_MANIFEST)
    async with RegistryClient(_options(registry.host)) as client:
        fetched_index = await client.get_manifest(parse_reference(f"{registry.host}/client/multi"), "latest")
        fetched_docker = await client.get_manifest(parse_reference(f"{registry.host}/client/docker"), "v2")
    assert fetched_index.is_index
    assert fetched_index.digest == index_digest
    assert [entry.digest for entry in fetched_index.manifests] == [child]
    assert fetched_docker.media_type == DOCKER_MANIFEST
    assert fetched_docker.digest == docker_digest


async def test_a_pinned_digest_is_not_resolved(registry: RegistryServer) -> None:
    requests: list[tuple[str, str]] = []
    digest = "sha256:" + "c" * 64
    ref = parse_reference(f"{registry.host}/client/app:v1@{digest}")
    async with RegistryClient(
        _options(registry.host, on_request=lambda h, s: requests.append((h, s)))
    ) as client:
        assert await client.resolve_digest(ref) == digest
    assert requests == []


async def test_missing_manifest_is_not_found_and_blobs_are_digest_checked(registry: RegistryServer) -> None:
    ref = parse_reference(f"{registry.host}/client/absent:v1")
    blob = registry.push_blob("client/blobs", b"hello blob")
    async with RegistryClient(_options(registry.host)) as client:
        with pytest.raises(NotFoundError, match=r"client/absent/manifests/v1: not found \(404\)"):
            await client.resolve_digest(ref)
        blobs_ref = parse_reference(f"{registry.host}/client/blobs")
        assert await client.get_blob(blobs_ref, blob, 1024) == b"hello blob"
        with pytest.raises(RegistryError, match="exceeds the 4-byte limit"):
            await client.get_blob(blobs_ref, blob, 4)


async def _corrupt_blobs(request: web.Request) -> web.StreamResponse | None:
    if "/blobs/" in request.path:
        return web.Response(body=b"substituted content")
    return None


async def test_blob_whose_content_does_not_match_its_digest_is_refused(registry: RegistryServer) -> None:
    blob = registry.push_blob("client/corrupt", b"genuine content")
    async with (
        FaultyProxy(registry.url, _corrupt_blobs) as proxy,
        RegistryClient(_options(proxy.host)) as client,
    ):
        with pytest.raises(RegistryError) as caught:
            await client.get_blob(parse_reference(f"{proxy.host}/client/corrupt"), blob, 1024)
    message = str(caught.value)
    assert f"blob content has digest {sha256_digest(b'substituted content')}, not {blob}" in message
    assert "corrupted or substituted" in message


async def test_manifest_not_matching_the_requested_digest_is_refused(registry: RegistryServer) -> None:
    digest = registry.push_image("client/swap", "v1")
    other = registry.push_image("client/swap", "v2")

    async def swap(request: web.Request) -> web.StreamResponse | None:
        if request.path.endswith(f"/manifests/{digest}"):
            raw = registry.get_manifest("client/swap", other)
            return web.Response(body=raw, headers={"Content-Type": OCI_MANIFEST})
        return None

    async with FaultyProxy(registry.url, swap) as proxy, RegistryClient(_options(proxy.host)) as client:
        with pytest.raises(
            RegistryError, match=f"manifest content has digest {other}, not the expected {digest}"
        ):
            await client.get_manifest(parse_reference(f"{proxy.host}/client/swap"), digest)


@pytest.mark.parametrize("declare_length", [True, False])
async def test_oversized_manifest_is_refused(registry: RegistryServer, declare_length: bool) -> None:
    huge = b'{"schemaVersion":2,"padding":"' + b"x" * (5 * 1024 * 1024) + b'"}'

    async def oversized(request: web.Request) -> web.StreamResponse | None:
        if not declare_length:
            response = web.StreamResponse(headers={"Content-Type": OCI_MANIFEST})
            await response.prepare(request)
            for start in range(0, len(huge), 256 * 1024):
                await response.write(huge[start : start + 256 * 1024])
            await response.write_eof()
            return response
        return web.Response(body=huge, headers={"Content-Type": OCI_MANIFEST})

    async with FaultyProxy(registry.url, oversized) as proxy, RegistryClient(_options(proxy.host)) as client:
        with pytest.raises(RegistryError, match="exceeds the 4194304-byte limit"):
            await client.get_manifest(parse_reference(f"{proxy.host}/client/app"), "v1")


async def test_a_registry_that_never_answers_fails_within_the_deadline() -> None:
    seen: list[str] = []
    async with HangingServer() as server:
        options = _options(
            server.host, request_timeout=0.3, deadline=1.0, on_request=lambda h, s: seen.append(s)
        )
        async with RegistryClient(options) as client, asyncio.timeout(HANG_GUARD):
            with pytest.raises(RegistryError) as caught:
                await client.resolve_digest(parse_reference(f"{server.host}/hang/app:v1"))
    assert "no answer within" in str(caught.value) or "deadline" in str(caught.value)
    assert server.connections >= 1
    assert set(seen) == {"error"}


async def test_5xx_storm_gets_bounded_retries_then_a_clear_error(registry: RegistryServer) -> None:
    async def storm(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="overloaded")

    statuses: list[str] = []
    async with FaultyProxy(registry.url, storm) as proxy:
        options = _options(proxy.host, on_request=lambda h, s: statuses.append(s))
        async with RegistryClient(options) as client, asyncio.timeout(HANG_GUARD):
            with pytest.raises(RegistryError) as caught:
                await client.resolve_digest(parse_reference(f"{proxy.host}/client/app:v1"))
    assert len(proxy.requests) == MAX_ATTEMPTS
    assert statuses == ["503"] * MAX_ATTEMPTS
    assert f"HTTP 503 (gave up after {MAX_ATTEMPTS} attempt(s))" in str(caught.value)


async def test_transient_429_and_5xx_are_retried_until_success(registry: RegistryServer) -> None:
    digest = registry.push_image("client/flaky", "v1")
    answers = [web.Response(status=429, headers={"Retry-After": "0"}), web.Response(status=502)]

    async def flaky(request: web.Request) -> web.StreamResponse | None:
        return answers.pop(0) if answers else None

    async with FaultyProxy(registry.url, flaky) as proxy, RegistryClient(_options(proxy.host)) as client:
        assert await client.resolve_digest(parse_reference(f"{proxy.host}/client/flaky:v1")) == digest
    assert len(proxy.requests) == 3


async def test_the_deadline_stops_retries_early() -> None:
    calls = 0

    async def slow_storm(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=503, headers={"Retry-After": "5"})

    async with (
        FaultyProxy("http://127.0.0.1:9", slow_storm) as proxy,
        RegistryClient(_options(proxy.host, deadline=1.0)) as client,
        asyncio.timeout(HANG_GUARD),
    ):
        with pytest.raises(RegistryError, match="HTTP 503"):
            await client.resolve_digest(parse_reference(f"{proxy.host}/client/app:v1"))
    assert calls == 1, "a 5 s Retry-After does not fit a 1 s deadline, so no retry is attempted"


async def test_connection_refused_is_an_error_naming_the_url() -> None:
    host = f"127.0.0.1:{free_port()}"
    async with RegistryClient(_options(host, deadline=2.0)) as client:
        with pytest.raises(RegistryError) as caught:
            await client.resolve_digest(parse_reference(f"{host}/nothing/here:v1"))
    assert f"http://{host}/v2/nothing/here/manifests/v1" in str(caught.value)
    assert "reachable" in str(caught.value)


async def test_plain_http_is_used_only_for_registries_marked_insecure(registry: RegistryServer) -> None:
    async with RegistryClient(RegistryOptions(deadline=2.0)) as client:
        with pytest.raises(RegistryError) as caught:
            await client.resolve_digest(parse_reference(f"{registry.host}/client/app:v1"))
    assert f"https://{registry.host}/v2/" in str(caught.value)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if not htpasswd_available():
        pytest.skip("htpasswd auth needs bcrypt: stdlib crypt (Python <= 3.12) or the bcrypt package")
    with RegistryServer(tmp_path_factory.mktemp("basic"), users={"alice": "wonderland"}) as server:
        yield server


async def test_basic_auth_with_dockerconfigjson_credentials(basic_registry: RegistryServer) -> None:
    digest = basic_registry.push_image("private/app", "v1")
    ref = parse_reference(f"{basic_registry.host}/private/app:v1")
    secret = {"auths": {f"http://{basic_registry.host}": {"auth": "YWxpY2U6d29uZGVybGFuZA=="}}}
    statuses: list[str] = []
    options = _options(
        basic_registry.host,
        credentials=load_docker_config(json.dumps(secret)),
        on_request=lambda h, s: statuses.append(s),
    )
    async with RegistryClient(options) as client:
        assert await client.resolve_digest(ref) == digest
        await client.get_manifest(ref, digest)
    assert statuses == ["401", "200", "200"], "credentials are sent up front once the registry asked for them"


async def test_basic_auth_without_or_with_wrong_credentials_says_what_to_do(
    basic_registry: RegistryServer,
) -> None:
    ref = parse_reference(f"{basic_registry.host}/private/app:v1")
    async with RegistryClient(_options(basic_registry.host)) as client:
        with pytest.raises(
            RegistryError, match=r"requires a login \(basic auth\) and no credentials for 127\.0\.0\.1"
        ):
            await client.resolve_digest(ref)
    wrong = load_docker_config({"auths": {basic_registry.host: {"username": "alice", "password": "nope"}}})
    async with RegistryClient(_options(basic_registry.host, credentials=wrong)) as client:
        with pytest.raises(RegistryError, match="rejected our credentials"):
            await client.resolve_digest(ref)


async def test_bearer_token_flow_anonymous_with_token_caching(tmp_path: Path) -> None:
    async with RegistryServer(tmp_path, token_auth=True) as token_registry:
        digest = token_registry.push_image("public/app", "v1")
        ref = parse_reference(f"{token_registry.host}/public/app:v1")
        async with RegistryClient(_options(token_registry.host)) as client:
            assert await client.resolve_digest(ref) == digest
            assert (await client.get_manifest(ref, digest)).digest == digest
            assert await client.resolve_digest(ref) == digest
        assert token_registry.token_server is not None
        requests = token_registry.token_server.requests
    assert len(requests) == 1, "the token is cached for its lifetime"
    assert requests[0].scope == "repository:public/app:pull"
    assert requests[0].service == "trustwatch-test"
    assert requests[0].username is None


async def test_bearer_token_flow_with_credentials(tmp_path: Path) -> None:
    async with RegistryServer(tmp_path, token_auth=True, users={"bob": "builder"}) as token_registry:
        digest = token_registry.push_image("private/app", "v1")
        ref = parse_reference(f"{token_registry.host}/private/app:v1")
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps({"auths": {token_registry.host: {"username": "bob", "password": "builder"}}})
        )
        async with RegistryClient(
            _options(token_registry.host, credentials=load_docker_config(config))
        ) as client:
            assert await client.resolve_digest(ref) == digest
        async with RegistryClient(_options(token_registry.host)) as client:
            with pytest.raises(RegistryError, match="answered HTTP 401; the repository may be private"):
                await client.resolve_digest(ref)
        assert token_registry.token_server is not None
        assert token_registry.token_server.requests[0].username == "bob"


async def test_digest_comes_from_the_manifest_when_head_omits_the_header(registry: RegistryServer) -> None:
    digest = registry.push_image("client/no-header", "v1")

    async def bare_head(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=200) if request.method == "HEAD" else None

    async with FaultyProxy(registry.url, bare_head) as proxy, RegistryClient(_options(proxy.host)) as client:
        assert await client.resolve_digest(parse_reference(f"{proxy.host}/client/no-header:v1")) == digest
    assert [method for method, _ in proxy.requests] == ["HEAD", "GET"]


async def test_identity_token_is_exchanged_with_an_oauth2_refresh_request(tmp_path: Path) -> None:
    async with RegistryServer(
        tmp_path, token_auth=True, refresh_tokens={"rt-123": "ci-bot"}
    ) as token_registry:
        digest = token_registry.push_image("private/app", "v1")
        ref = parse_reference(f"{token_registry.host}/private/app:v1")
        secret = {"auths": {token_registry.host: {"username": "<token>", "identitytoken": "rt-123"}}}
        async with RegistryClient(
            _options(token_registry.host, credentials=load_docker_config(secret))
        ) as client:
            assert await client.resolve_digest(ref) == digest
        revoked = {"auths": {token_registry.host: {"username": "<token>", "identitytoken": "revoked"}}}
        async with RegistryClient(
            _options(token_registry.host, credentials=load_docker_config(revoked))
        ) as client:
            with pytest.raises(RegistryError, match="answered HTTP 401; check the credentials"):
                await client.resolve_digest(ref)
        assert token_registry.token_server is not None
        grants = [(r.grant, r.username, r.scope) for r in token_registry.token_server.requests]
    assert grants == [
        ("refresh_token", "ci-bot", "repository:private/app:pull"),
        ("refresh_token", "!invalid", "repository:private/app:pull"),
    ]


async def test_concurrent_requests_share_one_token_fetch(tmp_path: Path) -> None:
    async with RegistryServer(tmp_path, token_auth=True) as token_registry:
        digest = token_registry.push_image("busy/app", "v1")
        ref = parse_reference(f"{token_registry.host}/busy/app:v1")
        async with RegistryClient(_options(token_registry.host)) as client:
            digests = await asyncio.gather(*(client.resolve_digest(ref) for _ in range(20)))
        assert token_registry.token_server is not None
        assert len(token_registry.token_server.requests) == 1
    assert set(digests) == {digest}


async def test_large_error_pages_still_give_the_status_error(registry: RegistryServer) -> None:
    page = "<html>" + "not here " * 5000 + "</html>"

    async def html_errors(request: web.Request) -> web.StreamResponse:
        status = 404 if "missing" in request.path else 500
        return web.Response(status=status, text=page, content_type="text/html")

    async with (
        FaultyProxy(registry.url, html_errors) as proxy,
        RegistryClient(_options(proxy.host)) as client,
    ):
        with pytest.raises(NotFoundError):
            await client.get_manifest(parse_reference(f"{proxy.host}/client/missing"), "v1")
        with pytest.raises(RegistryError, match=r"HTTP 500 \(gave up after"):
            await client.get_manifest(parse_reference(f"{proxy.host}/client/broken"), "v1")


async def test_anonymous_token_without_access_says_credentials_are_needed(tmp_path: Path) -> None:
    async with RegistryServer(tmp_path, token_auth=True, anonymous_pull=False) as token_registry:
        token_registry.push_image("private/app", "v1")
        async with RegistryClient(_options(token_registry.host)) as client:
            with pytest.raises(RegistryError) as caught:
                await client.resolve_digest(parse_reference(f"{token_registry.host}/private/app:v1"))
    assert "registry refused anonymous access (401)" in str(caught.value)
    assert f"give credentials for {token_registry.host}" in str(caught.value)


async def test_https_to_a_plain_http_registry_suggests_insecure_registry() -> None:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host = f"127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with RegistryClient(RegistryOptions(deadline=5.0)) as client:
            with pytest.raises(RegistryError) as failed:
                await client.resolve_digest(parse_reference(f"{host}/app:v1"))
    finally:
        await runner.cleanup()
    assert "WRONG_VERSION_NUMBER" in str(failed.value)
    assert f"seems to speak plain HTTP; if it does, add --insecure-registry {host}" in str(failed.value)
