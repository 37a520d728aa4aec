"""Signature discovery against Debian's real docker-registry, with and without a referrers API in front."""

from __future__ import annotations

import asyncio
import gzip
import json
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from exporter.cosign import discovery
from exporter.cosign.discovery import (
    MAX_ENVELOPE_BYTES,
    MAX_LAYERS,
    MAX_REFERRER_PAGES,
    MAX_REFERRERS,
    SIGNATURE_ARTIFACT_TYPES,
    discover,
)
from exporter.cosign.found import FoundArtifacts
from exporter.cosign.outcomes import VerificationError
from exporter.registry import RegistryClient, RegistryOptions, parse_reference
from tests.support.oci_push import (
    COSIGN_SIGNATURE_ARTIFACT,
    DSSE_ENVELOPE,
    OCI_INDEX,
    SIGSTORE_BUNDLE_V03,
    attach_referrer,
    push_att,
    push_referrer,
    push_referrers_index,
    referrer_manifest,
    tag_for,
)
from tests.support.referrers_front import FrontRequest, ReferrersFront
from tests.support.registry import (
    OCI_MANIFEST,
    SIGNATURE_ANNOTATION,
    FaultyProxy,
    RegistryServer,
    SignatureLayerSpec,
    free_port,
    needs_registry,
    sha256_digest,
)

pytestmark = needs_registry

SBOM = "application/spdx+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("discovery-registry")) as server:
        yield server


async def _discover(host: str, image: str, **kwargs: Any) -> FoundArtifacts | VerificationError:
    async with RegistryClient(RegistryOptions(insecure_registries=frozenset({host}))) as client:
        return await discover(client, parse_reference(f"{host}/{image}"), **kwargs)


async def _found(host: str, image: str, **kwargs: Any) -> FoundArtifacts:
    found = await _discover(host, image, **kwargs)
    assert isinstance(found, FoundArtifacts), found
    return found


def _sig(text: str) -> SignatureLayerSpec:
    return SignatureLayerSpec(text.encode(), {SIGNATURE_ANNOTATION: "c2lnbmF0dXJl"})


def _envelope(text: str) -> SignatureLayerSpec:
    return SignatureLayerSpec(json.dumps({"payload": text}).encode(), {"predicateType": "x"}, DSSE_ENVELOPE)


def _bundle(text: str) -> SignatureLayerSpec:
    return SignatureLayerSpec(json.dumps({"bundle": text}).encode(), {}, SIGSTORE_BUNDLE_V03)


def _contents(found: FoundArtifacts, place: str) -> list[bytes | None]:
    return [artifact.content for artifact in found.artifacts if artifact.place == place]


async def test_every_place_is_found_through_the_referrers_api(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/all", "v1")
    async with ReferrersFront(registry) as front:
        sig_digest = registry.push_signature_layers("disc/all", digest, [_sig("s1"), _sig("s2")])
        push_att(registry, "disc/all", digest, [_envelope("a1")])
        bundle = push_referrer(front, "disc/all", digest, SIGSTORE_BUNDLE_V03, [_bundle("b1")])
        push_referrer(front, "disc/all", digest, SBOM, [SignatureLayerSpec(b"sbom", {}, SBOM)])
        found = await _found(front.host, "disc/all:v1")
    assert found.digest == digest
    assert _contents(found, "sig-tag") == [b"s1", b"s2"]
    assert _contents(found, "att-tag") == [_envelope("a1").payload]
    assert _contents(found, "referrers-api") == [_bundle("b1").payload]
    assert _contents(found, "referrers-tag") == []
    sig = found.artifacts[0]
    assert (sig.manifest_digest, sig.annotations) == (sig_digest, {SIGNATURE_ANNOTATION: "c2lnbmF0dXJl"})
    assert sig.repository == f"{front.host}/disc/all"
    referrer = next(a for a in found.artifacts if a.place == "referrers-api")
    assert referrer.manifest_digest == bundle.digest
    assert (referrer.artifact_type, referrer.layer_media_type) == (SIGSTORE_BUNDLE_V03, SIGSTORE_BUNDLE_V03)
    # The SBOM is a referrer too, but not a signature: neither fetched nor reported.
    assert not front.requests_to("/blobs/" + sha256_digest(b"sbom"))
    assert found.skipped == ()


async def test_without_a_referrers_api_the_tag_index_is_used(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/fallback", "v1")
    referrer = attach_referrer(registry, "disc/fallback", digest, SIGSTORE_BUNDLE_V03, [_bundle("fb")])
    async with ReferrersFront(registry, referrers_api=False) as front:
        found = await _found(front.host, f"disc/fallback@{digest}")
        asked = [
            (r.path, r.accept) for r in front.requests if "/manifests/" in r.path or "referrers" in r.path
        ]
    assert _contents(found, "referrers-tag") == [_bundle("fb").payload]
    assert found.artifacts[0].manifest_digest == referrer.digest
    paths = [path for path, _ in asked]
    assert f"/v2/disc/fallback/referrers/{digest}" in paths
    fallback = [accept for path, accept in asked if path.endswith(f"/manifests/{tag_for(digest)}")]
    assert len(fallback) == 1 and OCI_INDEX in fallback[0]


async def test_the_fallback_index_needs_an_accept_header_naming_oci_indexes(registry: RegistryServer) -> None:
    """Debian's registry hides an OCI index from requests that don't accept one: the fallback looks empty."""
    digest = registry.push_image("disc/accept", "v1")
    attach_referrer(registry, "disc/accept", digest, SIGSTORE_BUNDLE_V03, [_bundle("acc")])
    assert registry.get_manifest("disc/accept", tag_for(digest), accept=OCI_MANIFEST) is None
    assert registry.get_manifest("disc/accept", tag_for(digest), accept="*/*") is None
    assert registry.get_manifest("disc/accept", tag_for(digest), accept=OCI_INDEX) is not None
    found = await _found(registry.host, f"disc/accept@{digest}")
    assert _contents(found, "referrers-tag") == [_bundle("acc").payload]


async def test_a_registry_with_the_api_is_not_asked_for_the_fallback_tag(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/api-only", "v1")
    # A stale fallback index that the referrers API does not list: it must not be consulted.
    attach_referrer(registry, "disc/api-only", digest, SIGSTORE_BUNDLE_V03, [_bundle("stale")])
    async with ReferrersFront(registry) as front:
        found = await _found(front.host, f"disc/api-only@{digest}")
        assert not [r for r in front.requests if r.path.endswith(f"/manifests/{tag_for(digest)}")]
    assert found.artifacts == ()


async def test_one_request_per_place_all_in_flight_together(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/concurrent", "v1")
    shared = _sig("same payload")
    places = {".sig": asyncio.Event(), ".att": asyncio.Event(), f"/referrers/{digest}": asyncio.Event()}

    async def hold_until_every_place_is_asked(request: FrontRequest) -> None:
        arrived = next((event for end, event in places.items() if request.path.endswith(end)), None)
        if arrived is not None:
            arrived.set()
            # Concurrent discovery asks all three before any answer; sequential would stall here.
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in places.values())), timeout=10)

    async with ReferrersFront(registry, on_request=hold_until_every_place_is_asked) as front:
        registry.push_signature_layers("disc/concurrent", digest, [shared, shared, _sig("other")])
        push_att(registry, "disc/concurrent", digest, [_envelope("e")])
        # A bundle referrer whose layer blob is the .sig's payload: still fetched once.
        push_referrer(front, "disc/concurrent", digest, COSIGN_SIGNATURE_ARTIFACT, [shared])
        found = await _found(front.host, f"disc/concurrent@{digest}")
        requests = [(r.method, r.path) for r in front.requests]
    assert len(found.artifacts) == 5
    assert all(artifact.content is not None for artifact in found.artifacts)
    repo = "/v2/disc/concurrent"
    assert sorted(requests) == sorted(
        [
            ("GET", f"{repo}/manifests/{tag_for(digest)}.sig"),
            ("GET", f"{repo}/manifests/{tag_for(digest)}.att"),
            ("GET", f"{repo}/referrers/{digest}"),
            ("GET", f"{repo}/manifests/{found.artifacts[4].manifest_digest}"),
            ("GET", f"{repo}/blobs/{sha256_digest(shared.payload)}"),
            ("GET", f"{repo}/blobs/{sha256_digest(b'other')}"),
            ("GET", f"{repo}/blobs/{sha256_digest(_envelope('e').payload)}"),
        ]
    )


async def test_at_most_fifty_referrers_are_considered(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/many", "v1")
    async with ReferrersFront(registry) as front:
        for number in range(MAX_REFERRERS + 5):
            push_referrer(front, "disc/many", digest, SIGSTORE_BUNDLE_V03, [_bundle(f"b{number}")])
        # Other artifact types don't count against the limit.
        for number in range(10):
            push_referrer(
                front, "disc/many", digest, SBOM, [SignatureLayerSpec(f"s{number}".encode(), {}, SBOM)]
            )
        found = await _found(front.host, f"disc/many@{digest}")
        fetched = front.requests_to("/manifests/sha256:")
    assert _contents(found, "referrers-api") == [_bundle(f"b{n}").payload for n in range(MAX_REFERRERS)]
    assert len(fetched) == MAX_REFERRERS
    assert found.skipped == ("referrers-api: 5 more referrers not considered (at most 50 per image)",)


async def test_artifact_type_filter_is_left_to_a_registry_that_honours_it(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/filter", "v1")
    for honour in (True, False):
        async with ReferrersFront(registry, honour_filters=honour) as front:
            if honour:
                push_referrer(front, "disc/filter", digest, SIGSTORE_BUNDLE_V03, [_bundle("wanted")])
                push_referrer(front, "disc/filter", digest, COSIGN_SIGNATURE_ARTIFACT, [_sig("unwanted")])
            else:  # a fresh front has forgotten them: list them again
                for entry in (("wanted", SIGSTORE_BUNDLE_V03), ("unwanted", COSIGN_SIGNATURE_ARTIFACT)):
                    layer = _bundle(entry[0]) if entry[1] == SIGSTORE_BUNDLE_V03 else _sig(entry[0])
                    push_referrer(front, "disc/filter", digest, entry[1], [layer])
            found = await _found(front.host, f"disc/filter@{digest}", artifact_types={SIGSTORE_BUNDLE_V03})
            queries = [parse_qs(r.query) for r in front.requests_to("/referrers/")]
        assert queries == [{"artifactType": [SIGSTORE_BUNDLE_V03]}]
        assert [a.content for a in found.artifacts] == [_bundle("wanted").payload], honour
    # With several types wanted, the registry is not asked to filter (it takes one type only).
    async with ReferrersFront(registry) as front:
        await _found(front.host, f"disc/filter@{digest}")
        assert [r.query for r in front.requests_to("/referrers/")] == [""]
    assert SIGSTORE_BUNDLE_V03 in SIGNATURE_ARTIFACT_TYPES


async def test_referrers_about_another_image_or_of_the_wrong_kind_are_skipped(
    registry: RegistryServer,
) -> None:
    digest = registry.push_image("disc/liars", "v1")
    other = registry.push_image("disc/liars", "v2")
    # Listed under v1's fallback tag below, but its subject is v2.
    wrong_subject = push_referrer(registry, "disc/liars", other, SIGSTORE_BUNDLE_V03, [_bundle("for v2")])
    good = push_referrer(registry, "disc/liars", digest, SIGSTORE_BUNDLE_V03, [_bundle("for v1")])
    an_index = {
        "mediaType": OCI_INDEX,
        "digest": good.digest,
        "size": 10,
        "artifactType": SIGSTORE_BUNDLE_V03,
    }
    huge = {
        "mediaType": OCI_MANIFEST,
        "digest": good.digest,
        "size": 10**9,
        "artifactType": SIGSTORE_BUNDLE_V03,
    }
    push_referrers_index(registry, "disc/liars", digest, [wrong_subject, good, an_index, huge])
    found = await _found(registry.host, f"disc/liars@{digest}")
    assert _contents(found, "referrers-tag") == [_bundle("for v1").payload]
    assert found.skipped == (
        f"referrers-tag {good.digest}: is a {OCI_INDEX!r}, not an OCI image manifest",
        f"referrers-tag {good.digest}: manifest of 1000000000 bytes exceeds the 4194304-byte limit",
        f"referrers-tag {wrong_subject.digest}: refers to {other}, not this image",
    )
    # A referrers API listing a digest that is no digest (a path, say): never requested.
    async with ReferrersFront(registry) as front:
        push_referrer(front, "disc/liars", digest, SIGSTORE_BUNDLE_V03, [_bundle("api")])
        front.list_referrer(
            "disc/liars",
            digest,
            {"mediaType": OCI_MANIFEST, "digest": "../v1", "size": 9, "artifactType": SIGSTORE_BUNDLE_V03},
        )
        found = await _found(front.host, f"disc/liars@{digest}")
        assert not front.requests_to("/manifests/..")
    assert _contents(found, "referrers-api") == [_bundle("api").payload]
    assert found.skipped == ("referrers-api '../v1': its digest is not a sha256 digest",)


async def test_oversized_layers_are_kept_with_a_reason_and_not_fetched(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/big", "v1")
    big_payload = SignatureLayerSpec(b"p" * (1024 * 1024 + 1), {SIGNATURE_ANNOTATION: "x"})
    big_bundle = SignatureLayerSpec(b"b" * (MAX_ENVELOPE_BYTES + 1), {}, SIGSTORE_BUNDLE_V03)
    registry.push_signature_layers("disc/big", digest, [big_payload, _sig("small")])
    attach_referrer(registry, "disc/big", digest, SIGSTORE_BUNDLE_V03, [big_bundle])
    async with FaultyProxy(registry.url) as proxy:
        found = await _found(proxy.host, f"disc/big@{digest}")
        blobs = [path for _, path in proxy.requests if "/blobs/" in path]
    assert [(a.content, a.problem) for a in found.artifacts] == [
        (None, "layer of 1048577 bytes exceeds the 1048576-byte limit"),
        (b"small", None),
        (None, f"layer of {MAX_ENVELOPE_BYTES + 1} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte limit"),
    ]
    assert blobs == [f"/v2/disc/big/blobs/{sha256_digest(b'small')}"]


async def test_content_not_matching_its_digest_is_an_error(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/tampered", "v1")
    layer = _bundle("genuine")
    referrer = attach_referrer(registry, "disc/tampered", digest, SIGSTORE_BUNDLE_V03, [layer])

    def swap(target: str, body: bytes) -> Any:
        async def fault(request: web.Request) -> web.StreamResponse | None:
            if request.path.endswith(target):
                return web.Response(body=body, content_type="application/octet-stream")
            return None

        return fault

    for target, body in (
        (sha256_digest(layer.payload), b"x" * len(layer.payload)),
        (referrer.digest, json.dumps({"mediaType": OCI_MANIFEST, "layers": []}).encode()),
    ):
        async with FaultyProxy(registry.url, swap(target, body)) as proxy:
            outcome = await _discover(proxy.host, f"disc/tampered@{digest}")
        assert isinstance(outcome, VerificationError)
        assert "not the expected" in outcome.cause or f"not {target}" in outcome.cause
        assert "corrupted or substituted" in outcome.cause


async def test_a_separate_signature_repository_is_where_discovery_looks(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/app", "v1")
    registry.push_signature_layers("disc/app", digest, [_sig("in the image's repository")])
    registry.push_signature_layers("disc/signatures", digest, [_sig("in the signature repository")])
    attach_referrer(
        registry, "disc/signatures", digest, SIGSTORE_BUNDLE_V03, [_bundle("sep")], subject_repo="disc/app"
    )
    found = await _found(
        registry.host, "disc/app:v1", signature_repository=f"{registry.host}/disc/signatures"
    )
    assert found.digest == digest
    assert [a.content for a in found.artifacts] == [b"in the signature repository", _bundle("sep").payload]
    assert {a.repository for a in found.artifacts} == {f"{registry.host}/disc/signatures"}
    for bad in (
        "disc/signatures:v1",
        f"{registry.host}/disc/Sigs",
        f"{registry.host}/disc/signatures@{digest}",
    ):
        outcome = await _discover(registry.host, "disc/app:v1", signature_repository=bad)
        assert isinstance(outcome, VerificationError)
        assert outcome.cause.startswith("signature repository: invalid image reference")


async def test_a_signature_only_discovery_does_not_read_the_att_tag(registry: RegistryServer) -> None:
    """The ``.att`` tag holds only attestations: a check of signatures alone saves that request."""
    digest = registry.push_image("disc/signatures-only", "v1")
    async with ReferrersFront(registry) as front:
        registry.push_signature_layers("disc/signatures-only", digest, [_sig("signed")])
        push_att(registry, "disc/signatures-only", digest, [_envelope("attested")])
        found = await _found(front.host, f"disc/signatures-only@{digest}", attestations=False)
        paths = [r.path for r in front.requests]
    assert [artifact.place for artifact in found.artifacts] == ["sig-tag"]
    assert not [path for path in paths if path.endswith(".att")]
    assert [path for path in paths if path.endswith(".sig")]


async def test_nothing_anywhere_is_an_empty_result_not_an_error(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/unsigned", "v1")
    found = await _found(registry.host, "disc/unsigned:v1")
    assert (found.digest, found.artifacts, found.skipped) == (digest, (), ())


@pytest.mark.parametrize("failing", [".sig", ".att", "/referrers/", "/blobs/"])
async def test_registry_trouble_in_any_place_is_an_error_value(
    registry: RegistryServer, failing: str
) -> None:
    digest = registry.push_image("disc/flaky", "v1")
    registry.push_signature_layers("disc/flaky", digest, [_sig("s")])

    async def fail(request: web.Request) -> web.StreamResponse | None:
        if failing in request.path:
            return web.Response(status=403, text="denied")
        return None

    async with FaultyProxy(registry.url, fail) as proxy:
        outcome = await _discover(proxy.host, f"disc/flaky@{digest}")
    assert isinstance(outcome, VerificationError)
    assert "access denied (403)" in outcome.cause


async def test_an_unreachable_registry_is_an_error_value() -> None:
    host = f"127.0.0.1:{free_port()}"
    outcome = await _discover(host, "disc/nowhere:v1")
    assert isinstance(outcome, VerificationError)
    assert host in outcome.cause


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(status=400, text="bad request"),
        web.Response(status=406, text="not acceptable"),
        web.Response(status=200, text="<html>welcome</html>", content_type="text/html"),
    ],
    ids=["400", "406", "200-not-an-index"],
)
async def test_other_ways_of_saying_no_referrers_api_lead_to_the_fallback(
    registry: RegistryServer, answer: web.Response
) -> None:
    digest = registry.push_image("disc/no-api", "v1")
    attach_referrer(registry, "disc/no-api", digest, SIGSTORE_BUNDLE_V03, [_bundle("no api")])

    async def no_api(request: web.Request) -> web.StreamResponse | None:
        return answer if "/referrers/" in request.path else None

    async with FaultyProxy(registry.url, no_api) as proxy:
        found = await _found(proxy.host, f"disc/no-api@{digest}")
    assert _contents(found, "referrers-tag") == [_bundle("no api").payload]


async def test_manifests_with_too_many_layers_and_blobs_over_the_image_budget(
    registry: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = registry.push_image("disc/limits", "v1")
    registry.push_signature_layers("disc/limits", digest, [_sig(f"s{n}") for n in range(MAX_LAYERS + 1)])
    push_att(registry, "disc/limits", digest, [_envelope("first"), _envelope("second")])
    crowded = attach_referrer(
        registry,
        "disc/limits",
        digest,
        SIGSTORE_BUNDLE_V03,
        [_bundle(f"b{n}") for n in range(MAX_LAYERS + 1)],
    )
    # Room for the first envelope only.
    monkeypatch.setattr(discovery, "MAX_TOTAL_BLOB_BYTES", len(_envelope("first").payload) + 1)
    found = await _found(registry.host, f"disc/limits@{digest}")
    assert [(a.content, a.problem) for a in found.artifacts] == [
        (_envelope("first").payload, None),
        (
            None,
            f"layer of {len(_envelope('second').payload)} bytes is over the "
            f"{len(_envelope('first').payload) + 1}-byte budget per image",
        ),
    ]
    assert found.skipped == (
        f"sig-tag {tag_for(digest)}.sig: 65 layers exceed the limit of 64",
        f"referrers-tag {crowded.digest}: 65 layers exceed the limit of 64",
    )


def _index_body(entries: Any) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"manifests":' + b"[" * 50_000 + b"]" * 50_000 + b"}", {}),
        (_index_body("not a list"), {}),
        (_index_body([1, "two", None]), {}),
        (_index_body([{"mediaType": OCI_MANIFEST, "digest": 5, "size": "big"}]), {}),
        (b"\xff\xfe\xfa not utf-8", {}),
        (gzip.compress(_index_body([])), {"Content-Encoding": "gzip"}),
        (b" " * (4 * 1024 * 1024 + 1), {}),
    ],
    ids=[
        "deep-nesting",
        "manifests-string",
        "entries-wrong-types",
        "fields-wrong-types",
        "invalid-utf8",
        "gzip",
        "oversized",
    ],
)
async def test_a_hostile_referrers_list_is_an_error_value(
    registry: RegistryServer, body: bytes, headers: dict[str, str]
) -> None:
    digest = registry.push_image("disc/hostile", "v1")

    async def hostile(request: web.Request) -> web.StreamResponse | None:
        if "/referrers/" in request.path:
            return web.Response(body=body, headers={"Content-Type": OCI_INDEX, **headers})
        return None

    async with FaultyProxy(registry.url, hostile) as proxy:
        outcome = await _discover(proxy.host, f"disc/hostile@{digest}")
    assert isinstance(outcome, VerificationError)
    assert "referrers" in outcome.cause


async def test_a_huge_referrers_list_costs_fifty_fetches_and_missing_referrers_are_skipped(
    registry: RegistryServer,
) -> None:
    digest = registry.push_image("disc/huge", "v1")
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256_digest(str(n).encode()),
            "size": 500,
            "artifactType": SIGSTORE_BUNDLE_V03,
        }
        for n in range(15_000)
    ]
    async with ReferrersFront(registry) as front:
        for entry in entries:
            front.list_referrer("disc/huge", digest, entry)
        found = await _found(front.host, f"disc/huge@{digest}")
        fetched = front.requests_to("/manifests/sha256:")
    assert len(fetched) == MAX_REFERRERS
    assert found.artifacts == ()
    assert found.skipped[0] == "referrers-api: 14950 more referrers not considered (at most 50 per image)"
    # Deleting a referrer leaves it listed in a fallback index: skipped, not an error for the image.
    assert found.skipped[1:] == tuple(
        f"referrers-api {entry['digest']}: listed, but the registry does not have it (404)"
        for entry in entries[:MAX_REFERRERS]
    )


async def test_a_layer_whose_digest_is_no_digest_is_kept_with_a_reason_and_never_requested(
    registry: RegistryServer,
) -> None:
    digest = registry.push_image("disc/odd-layer", "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1}
    odd = {"mediaType": SIGSTORE_BUNDLE_V03, "digest": "sha256:../../../v2/_catalog", "size": 10}
    crafted = referrer_manifest(subject, SIGSTORE_BUNDLE_V03, [])
    document = json.loads(crafted)
    document["layers"] = [odd]
    crafted = json.dumps(document).encode()  # the registry would refuse it: served by a proxy instead
    crafted_digest = sha256_digest(crafted)

    async def serve_crafted(request: web.Request) -> web.StreamResponse | None:
        if request.path.endswith(f"/manifests/{crafted_digest}"):
            return web.Response(body=crafted, headers={"Content-Type": OCI_MANIFEST})
        return None

    async with ReferrersFront(registry) as front:
        front.list_referrer(
            "disc/odd-layer",
            digest,
            {
                "mediaType": OCI_MANIFEST,
                "digest": crafted_digest,
                "size": len(crafted),
                "artifactType": SIGSTORE_BUNDLE_V03,
            },
        )
        async with FaultyProxy(f"http://{front.host}", serve_crafted) as proxy:
            found = await _found(proxy.host, f"disc/odd-layer@{digest}")
            assert not [path for _, path in proxy.requests if "_catalog" in path]
    assert [(a.content, a.problem) for a in found.artifacts] == [
        (None, "layer digest 'sha256:../../../v2/_catalog' is not a sha256 digest")
    ]


async def test_a_paged_referrers_list_is_read_until_it_names_enough_signatures(
    registry: RegistryServer,
) -> None:
    digest = registry.push_image("disc/paged", "v1")
    async with ReferrersFront(registry, page_size=4) as front:
        for number in range(6):
            push_referrer(
                front, "disc/paged", digest, SBOM, [SignatureLayerSpec(f"s{number}".encode(), {}, SBOM)]
            )
        push_referrer(front, "disc/paged", digest, SIGSTORE_BUNDLE_V03, [_bundle("on page 2")])
        found = await _found(front.host, f"disc/paged@{digest}")
        pages = [r.query for r in front.requests_to("/referrers/")]
    assert _contents(found, "referrers-api") == [_bundle("on page 2").payload]
    assert pages == ["", "page=2"]
    assert found.skipped == ()


async def test_a_paged_list_is_read_within_a_bound_of_pages(registry: RegistryServer) -> None:
    digest = registry.push_image("disc/pages", "v1")
    async with ReferrersFront(registry, page_size=1) as front:
        for number in range(MAX_REFERRER_PAGES + 2):
            push_referrer(front, "disc/pages", digest, SIGSTORE_BUNDLE_V03, [_bundle(f"p{number}")])
        found = await _found(front.host, f"disc/pages@{digest}")
        assert len(front.requests_to("/referrers/")) == MAX_REFERRER_PAGES
    assert _contents(found, "referrers-api") == [_bundle(f"p{n}").payload for n in range(MAX_REFERRER_PAGES)]
    assert found.skipped == (f"referrers-api: the list goes on beyond the {MAX_REFERRER_PAGES} pages read",)


@pytest.mark.parametrize(
    "link", ["<http://198.51.100.7/v2/disc/elsewhere/referrers/x?page=2>", "</v2/disc/other/referrers/x>"]
)
async def test_a_next_page_link_that_leaves_the_list_is_an_error_value(
    registry: RegistryServer, link: str
) -> None:
    digest = registry.push_image("disc/link", "v1")

    async def leading_away(request: web.Request) -> web.StreamResponse | None:
        if "/referrers/" in request.path:
            return web.Response(
                body=_index_body([]), headers={"Content-Type": OCI_INDEX, "Link": f'{link}; rel="next"'}
            )
        return None

    async with FaultyProxy(registry.url, leading_away) as proxy:
        outcome = await _discover(proxy.host, f"disc/link@{digest}")
        assert len([path for _, path in proxy.requests if "referrers" in path]) == 1
    assert isinstance(outcome, VerificationError)
    assert "refusing to follow it" in outcome.cause


async def test_an_error_in_one_place_stops_the_requests_still_running_in_the_others(
    registry: RegistryServer,
) -> None:
    digest = registry.push_image("disc/stop", "v1")
    released = asyncio.Event()

    async def deny_sig_hold_the_rest(request: FrontRequest) -> None:
        if not request.path.endswith(".sig"):
            await released.wait()

    async def sig_denied(request: web.Request) -> web.StreamResponse | None:
        return web.Response(status=403, text="denied") if request.path.endswith(".sig") else None

    def discovery_tasks_pending() -> list[asyncio.Task[Any]]:
        return [
            task
            for task in asyncio.all_tasks()
            if not task.done()
            and isinstance(coroutine := task.get_coro(), types.CoroutineType)
            and coroutine.__qualname__ in {"_legacy_tag", "_referrers"}
        ]

    async with (
        ReferrersFront(registry, on_request=deny_sig_hold_the_rest) as front,
        FaultyProxy(f"http://{front.host}", sig_denied) as proxy,
        RegistryClient(RegistryOptions(insecure_registries=frozenset({proxy.host}))) as client,
    ):
        outcome = await discover(client, parse_reference(f"{proxy.host}/disc/stop@{digest}"))
        assert isinstance(outcome, VerificationError) and "403" in outcome.cause
        # The .att and referrers requests are still held at the front: their tasks must end cancelled,
        # not stay behind waiting for answers nobody will use.
        leftovers = discovery_tasks_pending()
        if leftovers:
            _, still_running = await asyncio.wait(leftovers, timeout=5)
            assert not still_running
            assert all(task.cancelled() for task in leftovers)
        released.set()
