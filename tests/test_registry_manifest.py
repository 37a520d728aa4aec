"""Manifest parsing on hostile input: whatever a registry serves is a Manifest or a ManifestFormatError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.registry.manifest import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, ManifestFormatError, parse_manifest

DIGEST = "sha256:" + "a" * 64
# Wrong types in every position (deep nesting has its own case below).
json_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=2)
)
descriptor_like = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": json_values | st.just(OCI_MANIFEST),
        "digest": json_values | st.just(DIGEST),
        "size": json_values | st.integers(min_value=-5, max_value=10**12),
        "artifactType": json_values,
        "annotations": json_values | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    },
)
manifest_like = st.fixed_dictionaries(
    {"mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX]) | json_values},
    optional={
        "schemaVersion": json_values,
        "artifactType": json_values,
        "config": descriptor_like | json_values,
        "subject": descriptor_like | json_values,
        "layers": st.lists(descriptor_like, max_size=4) | json_values,
        "manifests": st.lists(descriptor_like, max_size=4) | json_values,
        "annotations": json_values,
    },
)


def _parse_or_refuse(raw: bytes) -> None:
    try:
        manifest = parse_manifest(raw, DIGEST, None)
    except ManifestFormatError as exc:
        assert str(exc)
        return
    assert manifest.media_type in (OCI_MANIFEST, OCI_INDEX) or manifest.media_type.startswith("application/")
    for descriptor in (*manifest.layers, *manifest.manifests):
        assert isinstance(descriptor.digest, str) and isinstance(descriptor.size, int)
        assert descriptor.artifact_type is None or isinstance(descriptor.artifact_type, str)
        assert all(isinstance(v, str) for v in descriptor.annotations.values())
    assert manifest.artifact_type is None or isinstance(manifest.artifact_type, str)


@settings(max_examples=100, deadline=None)
@given(manifest_like)
def test_any_manifest_shaped_document_parses_or_is_refused(document: dict[str, Any]) -> None:
    _parse_or_refuse(json.dumps(document).encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused(raw: bytes) -> None:
    _parse_or_refuse(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"mediaType":"'
            + OCI_INDEX.encode()
            + b'","manifests":'
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            "nested too deeply",
        ),
        (b"\xff\xfe\x00{", "is not JSON"),
        (
            json.dumps({"mediaType": OCI_MANIFEST, "subject": "sha256:abc"}).encode(),
            "subject is not an object",
        ),
        (json.dumps({"mediaType": OCI_MANIFEST, "artifactType": 5}).encode(), "artifactType is not a string"),
        (
            json.dumps(
                {
                    "mediaType": OCI_INDEX,
                    "manifests": [
                        {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1, "artifactType": []}
                    ],
                }
            ).encode(),
            "manifests[0].artifactType is not a string",
        ),
    ],
    ids=[
        "deep-nesting",
        "invalid-utf8",
        "subject-string",
        "artifact-type-number",
        "entry-artifact-type-list",
    ],
)
def test_hostile_manifests_are_refused_with_the_reason(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_manifest(raw, DIGEST, None)


def test_a_referrer_manifest_gives_subject_artifact_type_and_config() -> None:
    config = {"mediaType": OCI_EMPTY, "digest": DIGEST, "size": 2}
    document = {
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [],
        "subject": {**config, "mediaType": OCI_MANIFEST},
    }
    manifest = parse_manifest(json.dumps(document).encode(), DIGEST, None)
    assert manifest.subject is not None and manifest.subject.digest == DIGEST
    # Without artifactType, the config's media type stands in (OCI image spec).
    assert (manifest.artifact_type, manifest.effective_artifact_type) == (None, OCI_EMPTY)
    document["artifactType"] = "application/example"
    document["annotations"] = {"k": "v", "n": 1}
    manifest = parse_manifest(json.dumps(document).encode(), DIGEST, None)
    assert manifest.effective_artifact_type == "application/example"
    assert manifest.annotations == {"k": "v"}
