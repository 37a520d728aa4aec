"""The verification pipeline against a Sigstore of our own (tests/support/sigstore_box.py), over artifacts
as discovery hands them over: keyless signatures in both layouts (legacy ``.sig`` layers, cosign 3 bundles),
key-signed bundles, attestations (``.att`` layers and DSSE bundles) and one negative per broken proof,
identity or binding. sigstore-python must agree on every keyless bundle verified here."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.cosign import (
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    Unsigned,
    VerificationOptions,
    VerificationOutcome,
    Verified,
    load_public_key,
    verify_found,
    verify_found_attestations,
)
from exporter.cosign.formats.legacy import DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifact, FoundArtifacts, Place
from exporter.registry import parse_reference
from exporter.sigstore import TrustedRoot, load_trusted_root
from tests.support.artifacts import (
    artifact,
    att_layer,
    b64,
    dsse_bundle,
    envelope,
    found,
    message_bundle,
    statement,
)
from tests.support.reference_verifier import reference_verify, reference_verify_log_entry
from tests.support.registry import public_pem, sign_bytes
from tests.support.sigstore_box import (
    COSIGN_SIGN_PREDICATE,
    GITHUB_ISSUER,
    SLSA_PROVENANCE_V02,
    Faults,
    GitHubWorkflow,
    Identity,
    LegacySignature,
    SignedBundle,
    SigstoreBox,
)

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
IMAGE = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER_IMAGE = "sha256:" + "0f" * 32
REFERENCE = parse_reference(f"registry.test/acme/app@{IMAGE}")
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
GITHUB = GitHubWorkflow(repository="acme/app", ref="refs/tags/v1.2.0", trigger="push")
SIGNER = Identity(WORKFLOW, GITHUB_ISSUER, github=GITHUB)
EXACT = IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER)
SLSA_V1 = "https://slsa.dev/provenance/v1"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.fixture(scope="module")
def root_path(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


@pytest.fixture(scope="module")
def root(root_path: Path) -> TrustedRoot:
    return load_trusted_root(root_path)


def _keyless(root: TrustedRoot, *identities: IdentityPolicy, **overrides: Any) -> VerificationOptions:
    attestor = KeylessAttestor(name="ci", identities=identities or (EXACT,))
    return VerificationOptions(attestors=(attestor,), trusted_root=root, **overrides)


def _referrer(signed: SignedBundle, place: Place = "referrers-api") -> FoundArtifact:
    return artifact(place, signed.json, signed.media_type)


def _sig(legacy: LegacySignature) -> FoundArtifact:
    return artifact("sig-tag", legacy.layer.payload, SIMPLE_SIGNING_MEDIA_TYPE, legacy.annotations)


def _found(*artifacts: FoundArtifact, digest: str = IMAGE) -> FoundArtifacts:
    return found(REFERENCE.with_digest(digest), digest, *artifacts)


def _agrees(
    signed: SignedBundle, root_path: Path, outcome: VerificationOutcome, who: Identity = SIGNER
) -> None:
    """sigstore-python, given the same bundle, trusted root and identity, reaches the same verdict."""
    artifact_bytes = MANIFEST if "messageSignature" in signed.document else None
    subject = None if artifact_bytes is not None else IMAGE
    theirs = reference_verify(
        signed.json,
        root_path,
        identity=who.san,
        issuer=who.issuer,
        artifact=artifact_bytes,
        subject_digest=subject,
    )
    assert theirs.accepted == isinstance(outcome, Verified), (theirs.reason, outcome.reason)


# --- keyless, both layouts ---


@pytest.mark.parametrize(
    ("log", "timestamp", "time_source"),
    [("rekor-v1", False, "tlog"), ("rekor-v2", True, "timestamp-authority"), ("rekor-v1", True, "tlog")],
)
def test_keyless_cosign3_bundle_verifies_and_says_who_where_and_when(  # noqa: PLR0917
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path, log: Any, timestamp: bool, time_source: str
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, log=log, timestamp=timestamp)
    outcome = verify_found(_found(_referrer(signed, "referrers-tag")), _keyless(root))
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.format, signature.bundle_version, signature.place) == (
        "bundle-dsse",
        "0.3",
        "referrers-tag",
    )
    assert signature.predicate_type == COSIGN_SIGN_PREDICATE
    assert signature.identity is not None
    assert signature.identity.subject_alternative_names == (WORKFLOW,)
    assert signature.identity.issuer == GITHUB_ISSUER
    assert signature.identity.extensions["githubWorkflowRepository"] == "acme/app"
    assert signature.time_source == time_source
    assert signature.signing_time == signed.signing_time
    if log == "rekor-v1":
        assert signed.log_entry is not None
        assert signature.log_index == signed.log_entry.log_index
        assert signature.integrated_time == signed.signing_time
    _agrees(signed, root_path, outcome)


def test_keyless_message_signature_over_the_image_digest(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path
) -> None:
    signed = sigstore_box.message_bundle(MANIFEST, SIGNER)
    outcome = verify_found(_found(_referrer(signed)), _keyless(root))
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.signatures[0].format == "bundle-message-signature"
    _agrees(signed, root_path, outcome)
    elsewhere = verify_found(_found(_referrer(signed), digest=OTHER_IMAGE), _keyless(root))
    assert isinstance(elsewhere, Invalid)
    assert f"message signature over digest {IMAGE}, not this image's {OTHER_IMAGE}" in elsewhere.reasons[0]


def test_keyless_legacy_sig_layer_verifies(sigstore_box: SigstoreBox, root: TrustedRoot) -> None:
    legacy = sigstore_box.legacy_signature(IMAGE, "registry.test/acme/app", SIGNER, timestamp=True)
    outcome = verify_found(_found(_sig(legacy)), _keyless(root))
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.format, signature.place, signature.time_source) == ("simple-signing", "sig-tag", "tlog")
    assert legacy.log_entry is not None
    assert signature.log_index == legacy.log_entry.log_index


IDENTITIES = {
    "exact": (IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER), True),
    "regexp matches anywhere unless anchored": (
        IdentityPolicy(subject_regexp="acme/app/", issuer_regexp="githubusercontent"),
        True,
    ),
    "anchored regexp must match the whole value": (
        IdentityPolicy(subject_regexp="^acme/app/.*$", issuer=GITHUB_ISSUER),
        False,
    ),
    "dot in a regexp is any character": (
        IdentityPolicy(subject_regexp=r"^https://github.com/acme/app/", issuer=GITHUB_ISSUER),
        True,
    ),
    "wrong SAN": (IdentityPolicy(subject=WORKFLOW + "x", issuer=GITHUB_ISSUER), False),
    "SAN prefix is not the SAN": (IdentityPolicy(subject=WORKFLOW[:-1], issuer=GITHUB_ISSUER), False),
    "wrong issuer": (IdentityPolicy(subject=WORKFLOW, issuer="https://accounts.google.com"), False),
    "GitHub extensions": (
        IdentityPolicy(
            subject=WORKFLOW,
            issuer=GITHUB_ISSUER,
            extensions={"githubWorkflowRepository": "acme/app", "githubWorkflowTrigger": "push"},
        ),
        True,
    ),
    "wrong GitHub repository": (
        IdentityPolicy(
            subject=WORKFLOW, issuer=GITHUB_ISSUER, extensions={"githubWorkflowRepository": "evil/app"}
        ),
        False,
    ),
}


@pytest.mark.parametrize("case", list(IDENTITIES))
@pytest.mark.parametrize("layout", ["bundle", "sig"])
def test_identities_in_both_layouts(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path, case: str, layout: str
) -> None:
    policy, accepted = IDENTITIES[case]
    signed = sigstore_box.image_bundle(IMAGE, SIGNER)
    if layout == "bundle":
        layer = _referrer(signed)
    else:
        layer = _sig(sigstore_box.legacy_signature(IMAGE, "registry.test/acme/app", SIGNER))
    outcome = verify_found(_found(layer), _keyless(root, policy))
    if accepted:
        assert isinstance(outcome, Verified), outcome.reason
        if layout == "bundle":
            # sigstore-python matches identities exactly: it is given the signer's own.
            _agrees(signed, root_path, outcome)
    else:
        assert isinstance(outcome, Invalid), outcome.reason
        assert "expected" in outcome.reasons[0]


def test_one_of_several_identities_is_enough(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path
) -> None:
    other = IdentityPolicy(subject="someone@example.com", issuer="https://accounts.google.com")
    signed = sigstore_box.image_bundle(IMAGE, SIGNER)
    outcome = verify_found(_found(_referrer(signed)), _keyless(root, other, EXACT))
    assert isinstance(outcome, Verified), outcome.reason
    _agrees(signed, root_path, outcome)


NEGATIVES: dict[str, tuple[dict[str, Any], str]] = {
    "expired certificate (log time)": ({"faults": Faults(expired_certificate=True)}, "certificate"),
    "expired certificate (timestamp time)": (
        {"log": "rekor-v2", "timestamp": True, "faults": Faults(expired_certificate=True)},
        "certificate",
    ),
    "missing SCT": ({"faults": Faults(no_sct=True)}, "SCT"),
    "SCT of an untrusted log": ({"faults": Faults(untrusted_sct=True)}, "SCT"),
    "bad SET": ({"faults": Faults(bad_set=True)}, "signed entry timestamp"),
    "inclusion proof not matching the checkpoint": (
        {"faults": Faults(checkpoint_mismatch=True)},
        "checkpoint",
    ),
    "tampered DSSE payload": ({"faults": Faults(tampered_payload=True)}, "signature"),
    "certificate of an untrusted CA": ({"faults": Faults(untrusted_ca=True)}, "certificate"),
    "log entry of another signature": ({"faults": Faults(body_mismatch=True)}, "not about this signature"),
    "no log entry": ({"log": "none"}, "no transparency-log (Rekor) entry"),
}


@pytest.mark.parametrize("case", list(NEGATIVES))
def test_each_broken_proof_is_rejected_for_its_reason_and_the_reference_agrees(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path, case: str
) -> None:
    options, reason = NEGATIVES[case]
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, **options)
    outcome = verify_found(_found(_referrer(signed)), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert reason.lower() in outcome.reasons[0].lower(), outcome.reasons
    _agrees(signed, root_path, outcome)


def test_missing_sct_is_accepted_only_with_ignore_sct(sigstore_box: SigstoreBox, root: TrustedRoot) -> None:
    # sigstore-python has no ignore-SCT option: it rejects this bundle, as we do without ignore_sct (above).
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, faults=Faults(no_sct=True))
    assert isinstance(verify_found(_found(_referrer(signed)), _keyless(root, ignore_sct=True)), Verified)


def test_expired_certificate_without_a_log_time_is_rejected_even_when_the_log_is_ignored(
    sigstore_box: SigstoreBox, root: TrustedRoot
) -> None:
    """Without a log entry or timestamp there is no proven signing time: the certificate must be valid now.
    (sigstore-python always requires a log entry: it rejects both bundles, as we do by default.)"""
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, log="none", faults=Faults(expired_certificate=True))
    outcome = verify_found(_found(_referrer(signed)), _keyless(root, ignore_tlog=True))
    assert isinstance(outcome, Invalid)
    assert "certificate" in outcome.reasons[0]
    valid_now = sigstore_box.image_bundle(IMAGE, SIGNER, log="none")
    assert isinstance(verify_found(_found(_referrer(valid_now)), _keyless(root, ignore_tlog=True)), Verified)


def test_statement_about_another_image_is_rejected_by_both(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path
) -> None:
    signed = sigstore_box.image_bundle(OTHER_IMAGE, SIGNER)
    outcome = verify_found(_found(_referrer(signed)), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert f"statement subject is {OTHER_IMAGE}, not this image's {IMAGE}" in outcome.reasons[0]
    assert f"signed by {WORKFLOW}" in outcome.reasons[0]
    _agrees(signed, root_path, outcome)


def test_tampered_legacy_payload_is_rejected(sigstore_box: SigstoreBox, root: TrustedRoot) -> None:
    legacy = sigstore_box.legacy_signature(
        IMAGE, "registry.test/acme/app", SIGNER, faults=Faults(tampered_payload=True)
    )
    outcome = verify_found(_found(_sig(legacy)), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert "signature" in outcome.reasons[0]


def test_a_keyless_attestor_ignores_key_signatures_and_a_key_attestor_keyless_ones(
    sigstore_box: SigstoreBox, root: TrustedRoot
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_signed = _referrer(sigstore_box.image_bundle(IMAGE, key))
    keyless = _referrer(sigstore_box.image_bundle(IMAGE, SIGNER))
    only_key = verify_found(_found(key_signed), _keyless(root))
    assert isinstance(only_key, Invalid)
    assert "has no signing certificate" in only_key.reasons[0]
    trusted = load_public_key(public_pem(key), "release")
    as_key = VerificationOptions(attestors=(KeyAttestor(name="release", keys=(trusted,)),), trusted_root=root)
    assert isinstance(verify_found(_found(keyless), as_key), Invalid)
    both = VerificationOptions(
        attestors=(*as_key.attestors, *_keyless(root).attestors), threshold=2, trusted_root=root
    )
    outcome = verify_found(_found(key_signed, keyless), both)
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.matched_attestors == ("release", "ci")


# --- key-signed bundles ---


def test_key_signed_bundle_needs_its_log_entry_by_default(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    options = VerificationOptions(
        attestors=(KeyAttestor(name="release", keys=(load_public_key(public_pem(key), "release.pub"),)),),
        trusted_root=root,
    )
    logged = sigstore_box.image_bundle(IMAGE, key)
    outcome = verify_found(_found(_referrer(logged)), options)
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.key, signature.time_source) == ("release.pub", "tlog")
    assert signature.identity is None
    # sigstore-python cannot verify key-signed bundles; it agrees on their log entry.
    assert reference_verify_log_entry(
        logged.document["verificationMaterial"]["tlogEntries"][0], root_path
    ).accepted
    unlogged = sigstore_box.image_bundle(IMAGE, key, log="none")
    rejected = verify_found(_found(_referrer(unlogged)), options)
    assert isinstance(rejected, Invalid)
    assert "signed by release.pub but signature has no transparency-log (Rekor) entry" in rejected.reasons[0]
    ignoring = VerificationOptions(attestors=options.attestors, trusted_root=root, ignore_tlog=True)
    assert isinstance(verify_found(_found(_referrer(unlogged)), ignoring), Verified)
    timestamped = sigstore_box.image_bundle(IMAGE, key, log="none", timestamp=True)
    by_timestamp = verify_found(_found(_referrer(timestamped)), options)
    assert isinstance(by_timestamp, Verified), by_timestamp.reason
    assert by_timestamp.signatures[0].time_source == "timestamp-authority"


@pytest.mark.parametrize(
    ("media_type", "version"),
    [
        ("application/vnd.dev.sigstore.bundle+json;version=0.1", "0.1"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", "0.2"),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", "0.3"),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "0.3"),
    ],
)
def test_bundle_versions_are_read_and_reported(media_type: str, version: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attestor = KeyAttestor(name="k", keys=(load_public_key(public_pem(key), "k"),))
    outcome = verify_found(
        _found(message_bundle(key, IMAGE, media_type=media_type)),
        VerificationOptions(attestors=(attestor,), ignore_tlog=True),
    )
    assert isinstance(outcome, Verified), outcome.reason
    assert (outcome.signatures[0].format, outcome.signatures[0].bundle_version) == (
        "bundle-message-signature",
        version,
    )


# --- attestations ---


def test_legacy_keyless_attestation_gives_the_verified_statement(
    sigstore_box: SigstoreBox, root: TrustedRoot
) -> None:
    predicate = {"builder": {"id": "https://github.com/acme/app/.github/workflows/release.yml"}}
    legacy = sigstore_box.legacy_attestation(IMAGE, "registry.test/acme/app", SIGNER, predicate=predicate)
    layer = artifact("att-tag", legacy.layer.payload, DSSE_MEDIA_TYPE, legacy.annotations)
    outcome = verify_found_attestations(_found(layer), _keyless(root), SLSA_PROVENANCE_V02)
    assert isinstance(outcome, Verified), outcome.reason
    (verified,) = outcome.statements
    assert (verified.predicate_type, verified.predicate) == (SLSA_PROVENANCE_V02, predicate)
    assert verified.statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert (verified.signature.format, verified.signature.place) == ("dsse-attestation", "att-tag")
    other_type = verify_found_attestations(_found(layer), _keyless(root), SLSA_V1)
    assert other_type == Unsigned(REFERENCE.with_digest(IMAGE), IMAGE, SLSA_V1)
    assert isinstance(verify_found(_found(layer), _keyless(root)), Unsigned), "an attestation is no signature"


def test_attestation_bundle_is_an_attestation_not_an_image_signature(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, predicate_type=SLSA_V1, predicate={"buildType": "x"})
    outcome = verify_found_attestations(_found(_referrer(signed)), _keyless(root), SLSA_V1)
    assert isinstance(outcome, Verified), outcome.reason
    assert [s.predicate for s in outcome.statements] == [{"buildType": "x"}]
    _agrees(signed, root_path, outcome)
    assert isinstance(verify_found(_found(_referrer(signed)), _keyless(root)), Unsigned)


def test_attestation_about_another_image_or_tampered_gives_no_statement(
    sigstore_box: SigstoreBox, root: TrustedRoot
) -> None:
    elsewhere = sigstore_box.image_bundle(OTHER_IMAGE, SIGNER, predicate_type=SLSA_V1, predicate={})
    tampered = sigstore_box.image_bundle(
        IMAGE, SIGNER, predicate_type=SLSA_V1, predicate={}, faults=Faults(tampered_payload=True)
    )
    for signed in (elsewhere, tampered):
        outcome = verify_found_attestations(_found(_referrer(signed)), _keyless(root), SLSA_V1)
        assert isinstance(outcome, Invalid), outcome.reason


def test_key_signed_legacy_attestation(sigstore_box: SigstoreBox) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attestor = KeyAttestor(name="k", keys=(load_public_key(public_pem(key), "k"),))
    options = VerificationOptions(attestors=(attestor,))
    layer = att_layer(key, statement(IMAGE, SLSA_V1, {"ok": True}, version="v0.1"))
    outcome = verify_found_attestations(_found(layer), options, SLSA_V1)
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.statements[0].predicate == {"ok": True}
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = att_layer(stranger, statement(IMAGE, SLSA_V1, {"ok": True}))
    rejected = verify_found_attestations(_found(forged), options, SLSA_V1)
    assert isinstance(rejected, Invalid)
    assert "does not verify with any trusted key (k)" in rejected.reasons[0]


def test_dsse_signature_is_over_pae_not_the_bare_payload() -> None:
    """A signature over the payload alone (not its PAE encoding) does not verify a DSSE envelope."""
    key = ec.generate_private_key(ec.SECP256R1())
    payload = statement(IMAGE, SLSA_V1, {})
    bare = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": b64(payload),
        "signatures": [{"sig": b64(sign_bytes(key, payload))}],
    }
    layer = artifact("att-tag", json.dumps(bare).encode(), DSSE_MEDIA_TYPE)
    attestor = KeyAttestor(name="k", keys=(load_public_key(public_pem(key), "k"),))
    outcome = verify_found_attestations(_found(layer), VerificationOptions(attestors=(attestor,)), SLSA_V1)
    assert isinstance(outcome, Invalid)
    assert "does not verify with any trusted key" in outcome.reasons[0]


def test_statement_with_a_non_in_toto_payload_type_is_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    document = envelope(key, statement(IMAGE, SLSA_V1, {}), payload_type="text/plain")
    layer = artifact("att-tag", json.dumps(document).encode(), DSSE_MEDIA_TYPE)
    attestor = KeyAttestor(name="k", keys=(load_public_key(public_pem(key), "k"),))
    outcome = verify_found_attestations(_found(layer), VerificationOptions(attestors=(attestor,)), SLSA_V1)
    assert isinstance(outcome, Invalid)
    assert "DSSE payload type is 'text/plain'" in outcome.reasons[0]


@pytest.mark.parametrize("version", ["0.1", "0.2"])
@pytest.mark.parametrize("kind", ["dsse", "message"])
def test_keyless_bundles_in_older_layouts(
    sigstore_box: SigstoreBox, root: TrustedRoot, root_path: Path, version: Any, kind: str
) -> None:
    if kind == "dsse":
        signed = sigstore_box.image_bundle(IMAGE, SIGNER).as_version(version)
    else:
        signed = sigstore_box.message_bundle(MANIFEST, SIGNER).as_version(version)
    outcome = verify_found(_found(_referrer(signed)), _keyless(root))
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.signatures[0].bundle_version == version
    _agrees(signed, root_path, outcome)


@pytest.mark.parametrize("layout", ["sig", "att"])
def test_legacy_layers_timed_by_an_rfc3161_timestamp_alone(
    sigstore_box: SigstoreBox, root: TrustedRoot, layout: str
) -> None:
    """cosign timestamps a ``.sig`` layer's signature but an ``.att`` layer's whole envelope: each token must
    be checked over the right bytes to give the signing time."""
    if layout == "sig":
        legacy = sigstore_box.legacy_signature(
            IMAGE, "registry.test/acme/app", SIGNER, log="none", timestamp=True
        )
        outcome = verify_found(_found(_sig(legacy)), _keyless(root))
    else:
        legacy = sigstore_box.legacy_attestation(
            IMAGE, "registry.test/acme/app", SIGNER, log="none", timestamp=True
        )
        layer = artifact("att-tag", legacy.layer.payload, DSSE_MEDIA_TYPE, legacy.annotations)
        outcome = verify_found_attestations(_found(layer), _keyless(root), SLSA_PROVENANCE_V02)
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.time_source, signature.log_index) == ("timestamp-authority", None)


def test_a_signed_envelope_that_is_no_statement_is_reported_not_ignored() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attestor = KeyAttestor(name="k", keys=(load_public_key(public_pem(key), "k"),))
    options = VerificationOptions(attestors=(attestor,), ignore_tlog=True)
    for layer in (dsse_bundle(key, b"not json"), att_layer(key, b'{"_type": "something else"}')):
        outcome = verify_found_attestations(_found(layer), options, SLSA_V1)
        assert isinstance(outcome, Invalid), outcome.reason
        assert "signed by k but" in outcome.reasons[0]
        assert "statement" in outcome.reasons[0]


# --- bundle JSON as other signers and parsers treat it: what each version's log entries must carry
# (sigstore-go and sigstore-python refuse a v0.2+ entry without an inclusion proof, a v0.1 one without a
# promise), and the protobuf field names that protobuf JSON parsers (sigstore-go's protojson) accept too.


def _with(signed: SignedBundle, document: dict[str, Any]) -> SignedBundle:
    return dataclasses.replace(signed, document=document)


@pytest.mark.parametrize(
    ("version", "removed"),
    [("0.3", "inclusionProof"), ("0.2", "inclusionProof"), ("0.1", "inclusionPromise")],
)
def test_a_log_entry_without_what_its_bundle_version_requires_is_refused(
    sigstore_box: SigstoreBox,
    root: TrustedRoot,
    root_path: Path,
    version: Literal["0.1", "0.2", "0.3"],
    removed: str,
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, SIGNER)
    if version != "0.3":
        signed = signed.as_version(version)
    assert verify_found(_found(_referrer(signed)), _keyless(root)).__class__ is Verified
    document = copy.deepcopy(signed.document)
    del document["verificationMaterial"]["tlogEntries"][0][removed]
    stripped = _with(signed, document)
    outcome = verify_found(_found(_referrer(stripped)), _keyless(root))
    assert isinstance(outcome, Invalid)
    assert f"has no {removed}, which a v{version} bundle must carry" in outcome.reason
    _agrees(stripped, root_path, outcome)


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
