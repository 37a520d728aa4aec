"""Sigstore bundle JSON as real signers and parsers treat it, beyond the camelCase v0.3 our box writes:
what each bundle version must carry (sigstore-go and sigstore-python refuse a v0.2+ log entry without an
inclusion proof and a v0.1 one without an inclusion promise; so must we), and the protobuf field names that
protobuf JSON parsers (sigstore-go's protojson) accept besides the JSON names."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.cosign import Invalid, Verified, verify_found
from exporter.sigstore import TrustedRoot, load_trusted_root
from tests.support.artifacts import artifact
from tests.support.reference_verifier import reference_verify
from tests.support.sigstore_box import SignedBundle, SigstoreBox
from tests.test_cosign_pipeline import IMAGE, MANIFEST, SIGNER, _found, _keyless, _referrer


@pytest.fixture(scope="module")
def root_path(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


@pytest.fixture(scope="module")
def root(root_path: Path) -> TrustedRoot:
    return load_trusted_root(root_path)


def _with(signed: SignedBundle, document: dict[str, Any]) -> SignedBundle:
    return dataclasses.replace(signed, document=document)


def _reference_accepts(signed: SignedBundle, root_path: Path) -> bool:
    outcome = reference_verify(
        signed.json, root_path, identity=SIGNER.san, issuer=SIGNER.issuer, subject_digest=IMAGE
    )
    return outcome.accepted


@pytest.mark.parametrize(
    ("version", "removed"),
    [("0.3", "inclusionProof"), ("0.2", "inclusionProof"), ("0.1", "inclusionPromise")],
)
def test_a_log_entry_without_what_its_bundle_version_requires_is_refused(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path, version: str, removed: str
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, SIGNER)
    if version != "0.3":
        signed = signed.as_version(version)  # type: ignore[arg-type]
    assert verify_found(_found(_referrer(signed)), _keyless(root)).__class__ is Verified
    document = copy.deepcopy(signed.document)
    del document["verificationMaterial"]["tlogEntries"][0][removed]
    stripped = _with(signed, document)
    outcome = verify_found(_found(_referrer(stripped)), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert f"has no {removed}, which a v{version} bundle must carry" in outcome.reason
    assert not _reference_accepts(stripped, root_path)


def _proto_names(value: Any) -> Any:
    """Every field under its protobuf name (``log_index``), as protojson's ``UseProtoNames`` writes it."""
    if isinstance(value, dict):
        return {re.sub("([A-Z])", r"_\1", k).lower(): _proto_names(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_proto_names(item) for item in value]
    return value


@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_bundles_with_protobuf_field_names_verify_as_with_json_names(
    sigstore_box: SigstoreBox, root: TrustedRoot, kind: str
) -> None:
    if kind == "dsse":
        signed = sigstore_box.image_bundle(IMAGE, SIGNER, timestamp=True)
    else:
        signed = sigstore_box.message_bundle(MANIFEST, SIGNER, timestamp=True)
    renamed = _proto_names(signed.document)
    assert renamed["media_type"] == signed.media_type and "rfc3161_timestamps" in str(renamed)
    content = _with(signed, renamed).json
    outcome = verify_found(_found(artifact("referrers-api", content, signed.media_type)), _keyless(root))
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert signature.log_index == (signed.log_entry.log_index if signed.log_entry else None)


def test_a_field_given_under_both_names_is_refused(sigstore_box: SigstoreBox, root: TrustedRoot) -> None:
    signed = sigstore_box.image_bundle(IMAGE, SIGNER)
    document = copy.deepcopy(signed.document)
    entry = document["verificationMaterial"]["tlogEntries"][0]
    entry["log_index"] = str(int(entry["logIndex"]) + 1)
    outcome = verify_found(_found(_referrer(_with(signed, document))), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert "bundle field 'logIndex' is given twice (as 'log_index')" in outcome.reason
