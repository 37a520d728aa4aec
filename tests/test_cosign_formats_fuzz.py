"""Hostile signature containers: whatever a registry serves as a ``.sig``/``.att`` layer, its annotations or a
bundle referrer (random bytes, invalid UTF-8, deep nesting, huge arrays, any field replaced by a value of the
wrong type), parsing yields candidates or a reason and verification yields an outcome value; nothing raises
(the admission path would turn an exception into a 500)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cosign import (
    IdentityPolicy,
    KeyAttestor,
    KeylessAttestor,
    VerificationOptions,
    load_public_key,
    verify_found,
    verify_found_attestations,
)
from exporter.cosign.formats import parse_found
from exporter.cosign.formats.legacy import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    DSSE_MEDIA_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    TIMESTAMP_ANNOTATION,
)
from exporter.cosign.found import FoundArtifact, Place
from exporter.cosign.outcomes import Invalid, Unsigned, VerificationError, Verified
from exporter.registry import parse_reference
from tests.support.artifacts import artifact, envelope, found, image_signature_bundle, sig_layer, statement
from tests.support.cosign_vectors import BUNDLE_CASE, CASES, bundle_content
from tests.support.registry import public_pem

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIGEST = "sha256:" + "5e" * 32
REFERENCE = parse_reference(f"registry.test/fuzz/app@{DIGEST}")
KEY = ec.generate_private_key(ec.SECP256R1())
ATTESTORS = (
    KeyAttestor(name="key", keys=(load_public_key(public_pem(KEY), "key"),)),
    KeylessAttestor(name="ci", identities=(IdentityPolicy(subject_regexp=".", issuer_regexp="."),)),
)
OPTIONS = VerificationOptions(attestors=ATTESTORS)
MEDIA_TYPES = (
    SIMPLE_SIGNING_MEDIA_TYPE,
    DSSE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/octet-stream",
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=40).map(lambda data: base64.b64encode(data).decode()),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)

# Valid containers to mutate: a key-signed cosign 3 bundle, a legacy .att envelope, and (when present) the
# real cosign 3 bundle of the interop vectors.
SEEDS: list[dict[str, Any]] = [
    json.loads(image_signature_bundle(KEY, DIGEST).content or b"{}"),
    envelope(KEY, statement(DIGEST, "https://slsa.dev/provenance/v1", {"a": [1, 2]})),
]
if BUNDLE_CASE in CASES:
    SEEDS.append(json.loads(bundle_content()))


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            paths += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths += _paths(value, (*prefix, index))
    return paths


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    changed = copy.deepcopy(document)
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def _decide(*artifacts: FoundArtifact) -> None:
    """Parsing and every verification entry point answer with values."""
    found_artifacts = found(REFERENCE, DIGEST, *artifacts)
    parsed = parse_found(found_artifacts)
    assert len(parsed.candidates) + len(parsed.unreadable) >= len(artifacts)
    outcomes = (
        verify_found(found_artifacts, OPTIONS),
        verify_found_attestations(found_artifacts, OPTIONS, "https://slsa.dev/provenance/v1"),
    )
    for outcome in outcomes:
        assert isinstance(outcome, Verified | Unsigned | Invalid | VerificationError)
        assert isinstance(outcome.reason, str)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(MEDIA_TYPES))
def test_any_layer_bytes(content: bytes, media_type: str) -> None:
    place: Place = "sig-tag" if media_type == SIMPLE_SIGNING_MEDIA_TYPE else "referrers-api"
    _decide(artifact(place, content, media_type, {SIGNATURE_ANNOTATION: base64.b64encode(content).decode()}))


@FUZZ
@given(st.sampled_from(range(len(SEEDS))), st.data(), JSON)
def test_any_field_of_a_valid_container_replaced(seed: int, data: st.DataObject, value: Any) -> None:
    document = SEEDS[seed]
    path = data.draw(st.sampled_from(_paths(document)))
    content = json.dumps(_replaced(document, path, value)).encode()
    media_type = (
        DSSE_MEDIA_TYPE if "payloadType" in document else "application/vnd.dev.sigstore.bundle.v0.3+json"
    )
    _decide(artifact("att-tag" if media_type == DSSE_MEDIA_TYPE else "referrers-tag", content, media_type))


@FUZZ
@given(
    st.sampled_from(
        (
            SIGNATURE_ANNOTATION,
            CERTIFICATE_ANNOTATION,
            CHAIN_ANNOTATION,
            BUNDLE_ANNOTATION,
            TIMESTAMP_ANNOTATION,
        )
    ),
    st.one_of(st.text(max_size=300), JSON.map(json.dumps)),
)
def test_any_annotation_value_on_a_signed_layer(name: str, value: str) -> None:
    layer = sig_layer(KEY, DIGEST, annotations={name: value})
    _decide(layer)


def test_deep_nesting_huge_arrays_and_invalid_utf8() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    nested_payload = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(deep).decode(),
    }
    huge = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"tlogEntries": [{}] * 100_000},
    }
    _decide(
        artifact("referrers-api", deep, "application/vnd.dev.sigstore.bundle.v0.3+json"),
        artifact(
            "att-tag",
            json.dumps({**nested_payload, "signatures": [{"sig": "AAAA"}] * 10_000}).encode(),
            DSSE_MEDIA_TYPE,
        ),
        artifact("referrers-api", json.dumps(huge).encode(), "application/vnd.dev.sigstore.bundle.v0.3+json"),
        artifact("sig-tag", b"\xff\xfe{\x80", SIMPLE_SIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: "\udcff"}),
        artifact("sig-tag", b"{}", SIMPLE_SIGNING_MEDIA_TYPE, {BUNDLE_ANNOTATION: "[" * 50_000}),
        artifact("sig-tag", b"{}", SIMPLE_SIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: "A" * 400_000}),
        artifact(
            "referrers-api",
            b'{"logIndex": ' + b"9" * 5000 + b"}",
            "application/vnd.dev.sigstore.bundle.v0.3+json",
        ),
    )
    outcome = verify_found(
        found(REFERENCE, DIGEST, artifact("sig-tag", deep, SIMPLE_SIGNING_MEDIA_TYPE, {})), OPTIONS
    )
    assert isinstance(outcome, Invalid)
