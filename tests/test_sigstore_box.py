"""The Sigstore in a box is right: sigstore-python accepts what it signs, and rejects each negative for the
reason the negative is about. Other tests build on the box, so a wrong box would prove nothing."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import rekor_types
import rfc3161_client
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.reference_verifier import ReferenceOutcome, reference_verify, reference_verify_log_entry
from tests.support.registry import BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION
from tests.support.sigstore_box import (
    BUNDLE_V03,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    COSIGN_SIGN_PREDICATE,
    IN_TOTO_PAYLOAD_TYPE,
    RFC3161_ANNOTATION,
    Faults,
    GitHubWorkflow,
    Identity,
    LegacySignature,
    LogKind,
    SignedBundle,
    SigstoreBox,
)

WORKFLOW = GitHubWorkflow(repository="example/app", ref="refs/tags/v1.2.3")
CI = Identity(
    "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.2.3", github=WORKFLOW
)
PERSON = Identity("alice@example.com", "https://accounts.example.com")
IMAGE = "sha256:" + hashlib.sha256(b"the image manifest").hexdigest()
OTHER_IMAGE = "sha256:" + hashlib.sha256(b"another image manifest").hexdigest()
ARTIFACT = b"a release tarball"


@pytest.fixture(scope="module")
def root(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


def check(signed: SignedBundle, root: Path, who: Identity = CI, **kwargs: Any) -> ReferenceOutcome:
    if signed.document.get("messageSignature") is not None:
        kwargs.setdefault("artifact", ARTIFACT)
    else:
        kwargs.setdefault("subject_digest", IMAGE)
    return reference_verify(signed.json, root, identity=who.san, issuer=who.issuer, **kwargs)


# Rekor v2 entries carry no time of their own: they always come with a TSA timestamp.
PROOFS: list[tuple[LogKind, bool]] = [("rekor-v1", False), ("rekor-v1", True), ("rekor-v2", True)]


@pytest.mark.parametrize(("log", "timestamp"), PROOFS)
@pytest.mark.parametrize("who", [CI, PERSON], ids=["github-uri", "email"])
def test_sigstore_python_accepts_message_signature_bundles(
    sigstore_box: SigstoreBox, root: Path, log: LogKind, timestamp: bool, who: Identity
) -> None:
    signed = sigstore_box.message_bundle(ARTIFACT, who, log=log, timestamp=timestamp)
    assert signed.media_type == BUNDLE_V03
    outcome = check(signed, root, who, github=who.github)
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(("log", "timestamp"), PROOFS)
def test_sigstore_python_accepts_dsse_image_bundles(
    sigstore_box: SigstoreBox, root: Path, log: LogKind, timestamp: bool
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, CI, log=log, timestamp=timestamp)
    outcome = check(signed, root, github=WORKFLOW)
    assert outcome.accepted, outcome.reason
    assert outcome.payload_type == "application/vnd.in-toto+json"
    assert outcome.payload is not None and IMAGE.removeprefix("sha256:").encode() in outcome.payload


@pytest.mark.parametrize("version", ["0.1", "0.2"])
@pytest.mark.parametrize("kind", ["message", "dsse"])
def test_older_bundle_layouts_are_accepted(
    sigstore_box: SigstoreBox, root: Path, version: Literal["0.1", "0.2"], kind: str
) -> None:
    signed = (
        sigstore_box.message_bundle(ARTIFACT, CI)
        if kind == "message"
        else sigstore_box.image_bundle(IMAGE, CI)
    )
    older = signed.as_version(version)
    assert older.media_type == f"application/vnd.dev.sigstore.bundle+json;version={version}"
    assert "certificate" not in older.document["verificationMaterial"]
    assert "certificate" in signed.document["verificationMaterial"]
    outcome = check(older, root)
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(("log", "timestamp"), PROOFS)
def test_a_week_old_signature_verifies_by_its_trusted_time(
    sigstore_box: SigstoreBox, root: Path, log: LogKind, timestamp: bool
) -> None:
    """The 10-minute certificate expired long ago; the log's or the TSA's time shows it was valid then."""
    week_ago = sigstore_box.now - datetime.timedelta(days=7)
    signed = sigstore_box.image_bundle(IMAGE, CI, log=log, timestamp=timestamp, at=week_ago)
    assert signed.certificate is not None
    assert signed.certificate.not_valid_after_utc < sigstore_box.now - datetime.timedelta(days=6)
    outcome = check(signed, root)
    assert outcome.accepted, outcome.reason


# --- negatives: each is rejected, and for its own reason ---------------------------------------------

REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "expired certificate at the log's time": (
        {"faults": Faults(expired_certificate=True)},
        "cert is not valid at validation time",
    ),
    "expired certificate at the TSA's time": (
        {"log": "rekor-v2", "timestamp": True, "faults": Faults(expired_certificate=True)},
        "cert is not valid at validation time",
    ),
    "expired certificate and no trusted time": (
        {"log": "rekor-v2", "faults": Faults(expired_certificate=True)},
        "must contain an inclusion promise or signed timestamp",
    ),
    "missing SCT": ({"faults": Faults(no_sct=True)}, "does not contain a signed certificate timestamp"),
    "SCT from an unknown CT log": ({"faults": Faults(untrusted_sct=True)}, "SCT verify failed"),
    "certificate from an unknown CA": (
        {"faults": Faults(untrusted_ca=True)},
        "failed to build timestamp certificate chain: validation failed: candidates exhausted",
    ),
    "bad SET": ({"faults": Faults(bad_set=True)}, "SET: invalid inclusion promise"),
    "checkpoint of another tree head (Rekor v1)": (
        {"faults": Faults(checkpoint_mismatch=True)},
        "Inclusion proof contains invalid root hash",
    ),
    "checkpoint of another tree head (Rekor v2)": (
        {"log": "rekor-v2", "timestamp": True, "faults": Faults(checkpoint_mismatch=True)},
        "Inclusion proof contains invalid root hash",
    ),
    "timestamp over other bytes, no other time": (
        {"log": "rekor-v2", "timestamp": True, "faults": Faults(bad_timestamp=True)},
        "not enough sources of verified time",
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
@pytest.mark.parametrize("kind", ["message", "dsse"])
def test_sigstore_python_rejects_each_negative_for_its_reason(
    sigstore_box: SigstoreBox, root: Path, case: str, kind: str
) -> None:
    options, reason = REJECTIONS[case]
    if kind == "message":
        signed = sigstore_box.message_bundle(ARTIFACT, CI, **options)
    else:
        signed = sigstore_box.image_bundle(IMAGE, CI, **options)
    outcome = check(signed, root)
    assert not outcome.accepted
    assert reason in outcome.reason


def test_the_same_options_without_the_fault_are_accepted(sigstore_box: SigstoreBox, root: Path) -> None:
    """Every negative above is its good twin plus one fault: without the fault, each verifies."""
    for options, _ in REJECTIONS.values():
        good = {**options, "faults": Faults()}
        if good.get("log") == "rekor-v2":
            good["timestamp"] = True
        for signed in (
            sigstore_box.message_bundle(ARTIFACT, CI, **good),
            sigstore_box.image_bundle(IMAGE, CI, **good),
        ):
            outcome = check(signed, root)
            assert outcome.accepted, (options, outcome.reason)


def test_timestamp_over_other_bytes_is_ignored_when_the_log_gives_a_time(
    sigstore_box: SigstoreBox, root: Path
) -> None:
    """sigstore-python needs one verified time: a bad token beside a good SET does not reject."""
    signed = sigstore_box.image_bundle(IMAGE, CI, timestamp=True, faults=Faults(bad_timestamp=True))
    assert check(signed, root).accepted


def test_tampered_dsse_payload_is_rejected(sigstore_box: SigstoreBox, root: Path) -> None:
    signed = sigstore_box.image_bundle(IMAGE, CI, faults=Faults(tampered_payload=True))
    outcome = check(signed, root, subject_digest=None)
    assert not outcome.accepted
    assert "DSSE: invalid signature" in outcome.reason


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("message", "inconsistent with other materials"), ("dsse", "log entry signatures do not match bundle")],
)
def test_log_entry_for_another_signature_is_rejected(
    sigstore_box: SigstoreBox, root: Path, kind: str, reason: str
) -> None:
    faults = Faults(body_mismatch=True)
    signed = (
        sigstore_box.message_bundle(ARTIFACT, CI, faults=faults)
        if kind == "message"
        else sigstore_box.image_bundle(IMAGE, CI, faults=faults)
    )
    outcome = check(signed, root)
    assert not outcome.accepted
    assert reason in outcome.reason


def test_statement_about_another_image_is_rejected(sigstore_box: SigstoreBox, root: Path) -> None:
    signed = sigstore_box.image_bundle(OTHER_IMAGE, CI)
    assert check(signed, root, subject_digest=OTHER_IMAGE).accepted
    outcome = check(signed, root, subject_digest=IMAGE)
    assert not outcome.accepted
    assert outcome.reason == f"statement subject does not name {IMAGE}"


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ({"who": Identity(CI.san + "x", CI.issuer)}, "SANs do not match"),
        ({"who": Identity(CI.san, "https://accounts.example.com")}, "OIDCIssuer does not match"),
        ({"github": GitHubWorkflow(repository="example/other")}, "GitHubWorkflowRepository does not match"),
        ({"github": GitHubWorkflow(repository="example/app", ref="refs/heads/main")}, "GitHubWorkflowRef"),
    ],
    ids=["wrong SAN", "wrong issuer", "wrong repository", "wrong ref"],
)
def test_wrong_identity_is_rejected(
    sigstore_box: SigstoreBox, root: Path, policy: dict[str, Any], reason: str
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, CI)
    assert check(signed, root, github=WORKFLOW).accepted
    outcome = check(signed, root, **policy)
    assert not outcome.accepted
    assert reason in outcome.reason


def test_another_box_trusts_nothing_of_this_one(sigstore_box: SigstoreBox, tmp_path: Path) -> None:
    stranger = SigstoreBox(seed="another deployment")
    foreign_root = stranger.write_trusted_root(tmp_path / "trusted_root.json")
    outcome = check(sigstore_box.image_bundle(IMAGE, CI), foreign_root)
    assert not outcome.accepted


# --- the box's certificates, logs and timestamps, checked on their own ----------------------------------


def extension_values(certificate: x509.Certificate) -> dict[str, bytes]:
    return {
        ext.oid.dotted_string: ext.value.value
        for ext in certificate.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
    }


@pytest.mark.parametrize("encoding", ["both", "v1", "v2"])
def test_fulcio_extensions_in_old_and_new_encodings(
    sigstore_box: SigstoreBox, encoding: Literal["both", "v1", "v2"]
) -> None:
    who = Identity(CI.san, CI.issuer, github=WORKFLOW, issuer_oids=encoding)
    certificate = sigstore_box.image_bundle(IMAGE, who).certificate
    assert certificate is not None
    values = extension_values(certificate)
    old = {
        "1.3.6.1.4.1.57264.1.1": CI.issuer,
        "1.3.6.1.4.1.57264.1.2": WORKFLOW.trigger,
        "1.3.6.1.4.1.57264.1.3": WORKFLOW.sha,
        "1.3.6.1.4.1.57264.1.4": WORKFLOW.name,
        "1.3.6.1.4.1.57264.1.5": WORKFLOW.repository,
        "1.3.6.1.4.1.57264.1.6": WORKFLOW.ref,
    }
    new = {
        "1.3.6.1.4.1.57264.1.8": CI.issuer,
        "1.3.6.1.4.1.57264.1.9": CI.san,
        "1.3.6.1.4.1.57264.1.12": "https://github.com/example/app",
        "1.3.6.1.4.1.57264.1.13": WORKFLOW.sha,
        "1.3.6.1.4.1.57264.1.14": WORKFLOW.ref,
        "1.3.6.1.4.1.57264.1.20": WORKFLOW.trigger,
    }
    expected_old = old if encoding in ("both", "v1") else {}
    expected_new = new if encoding in ("both", "v2") else {}
    assert {oid: values[oid].decode() for oid in values if oid in old} == expected_old
    assert {oid: asn1.decode_der(str, values[oid]) for oid in values if oid in new} == expected_new
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [CI.san]


def test_email_identity_is_an_rfc822_san(sigstore_box: SigstoreBox) -> None:
    certificate = sigstore_box.message_bundle(ARTIFACT, PERSON).certificate
    assert certificate is not None
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [PERSON.san]


def test_every_log_entry_proof_verifies_as_the_tree_grows(tmp_path: Path) -> None:
    """Inclusion proofs for many (index, size) pairs of both logs, checked by sigstore-python's own code."""
    box = SigstoreBox(seed="a growing log")
    root = box.write_trusted_root(tmp_path / "trusted_root.json")
    key = ec.generate_private_key(ec.SECP256R1())
    for i in range(12):
        for log in ("rekor-v1", "rekor-v2"):
            signed = box.dsse_bundle(b"statement %d" % i, key, log=log)
            entry = signed.document["verificationMaterial"]["tlogEntries"][0]
            outcome = reference_verify_log_entry(entry, root)
            assert outcome.accepted, (i, log, outcome.reason)


def test_key_signed_image_bundle_is_what_cosign_3_writes(sigstore_box: SigstoreBox, root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = sigstore_box.image_bundle(IMAGE, key)
    document = signed.document
    material = document["verificationMaterial"]
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert material["publicKey"] == {"hint": base64.b64encode(hashlib.sha256(public_der).digest()).decode()}
    assert "certificate" not in material
    envelope = document["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["predicateType"] == COSIGN_SIGN_PREDICATE
    assert statement["subject"] == [{"digest": {"sha256": IMAGE.removeprefix("sha256:")}}]
    signed_bytes = b"DSSEv1 %d %s %d %s" % (
        len(IN_TOTO_PAYLOAD_TYPE),
        IN_TOTO_PAYLOAD_TYPE.encode(),
        len(payload),
        payload,
    )
    key.public_key().verify(
        base64.b64decode(envelope["signatures"][0]["sig"]), signed_bytes, ec.ECDSA(hashes.SHA256())
    )
    entry = material["tlogEntries"][0]
    assert reference_verify_log_entry(entry, root).accepted
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    verifier_pem = base64.b64decode(body["spec"]["signatures"][0]["verifier"])
    assert (
        serialization.load_pem_public_key(verifier_pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public_der
    )
    assert body["spec"]["payloadHash"]["value"] == hashlib.sha256(payload).hexdigest()


def test_timestamp_tokens_verify_with_rfc3161_client(sigstore_box: SigstoreBox) -> None:
    signed = sigstore_box.image_bundle(IMAGE, CI, timestamp=True)
    assert signed.timestamp is not None
    response = rfc3161_client.decode_timestamp_response(signed.timestamp)
    verifier = (
        rfc3161_client.VerifierBuilder()
        .tsa_certificate(sigstore_box.tsa.certificate)
        .add_root_certificate(sigstore_box.tsa.root)
        .build()
    )
    signature = base64.b64decode(signed.document["dsseEnvelope"]["signatures"][0]["sig"])
    assert verifier.verify_message(response, signature)
    assert response.tst_info.gen_time == signed.signing_time
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, signature + b"x")


# --- the legacy .sig layer, against cosign's real output ------------------------------------------------

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "interop" / "cosign-vectors"
needs_vectors = pytest.mark.skipif(
    not (VECTORS / "vectors.json").is_file(), reason=f"no vectors at {VECTORS}"
)


def shape(value: object) -> object:
    """The structure of a JSON document: keys in order, with the type of each leaf."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def extension_layout(certificate: x509.Certificate) -> list[tuple[str, bool]]:
    return [(ext.oid.dotted_string, ext.critical) for ext in certificate.extensions]


def pem_certificates(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


@needs_vectors
def test_legacy_keyless_layer_has_cosigns_layout(sigstore_box: SigstoreBox) -> None:
    real = json.loads((VECTORS / "ci-keyless-fulcio-rekor-2023" / "annotations.json").read_text())
    real_annotations = real["annotations"]
    # The real signer: an e-mail identity from an OAuth issuer, in a certificate from before the v2 OIDs.
    who = Identity("mitr@redhat.com", "https://github.com/login/oauth", issuer_oids="v1")
    ours = sigstore_box.legacy_signature(IMAGE, "registry.example/app", who)
    assert ours.layer.media_type == real["mediaType"]
    assert sorted(ours.annotations) == sorted(real_annotations)
    real_bundle = json.loads(real_annotations[BUNDLE_ANNOTATION])
    our_bundle = json.loads(ours.annotations[BUNDLE_ANNOTATION])
    assert shape(our_bundle) == shape(real_bundle)
    real_body = json.loads(base64.b64decode(real_bundle["Payload"]["body"]))
    our_body = json.loads(base64.b64decode(our_bundle["Payload"]["body"]))
    assert shape(our_body) == shape(real_body)
    assert our_body["spec"]["data"]["hash"]["value"] == hashlib.sha256(ours.payload).hexdigest()
    (real_leaf,) = pem_certificates(real_annotations[CERTIFICATE_ANNOTATION])
    (our_leaf,) = pem_certificates(ours.annotations[CERTIFICATE_ANNOTATION])
    assert extension_layout(our_leaf) == extension_layout(real_leaf)
    real_chain = pem_certificates(real_annotations[CHAIN_ANNOTATION])
    our_chain = pem_certificates(ours.annotations[CHAIN_ANNOTATION])
    assert len(our_chain) == len(real_chain) == 2
    for leaf, chain in ((real_leaf, real_chain), (our_leaf, our_chain)):
        leaf.verify_directly_issued_by(chain[0])
        chain[0].verify_directly_issued_by(chain[1])
        chain[1].verify_directly_issued_by(chain[1])
    real_payload = json.loads((VECTORS / "ci-keyless-fulcio-rekor-2023" / "payload.json").read_text())
    assert shape(json.loads(ours.payload)) == shape({**real_payload, "optional": None})


@needs_vectors
def test_keyless_dsse_bundle_has_the_layout_of_a_real_one(sigstore_box: SigstoreBox) -> None:
    real = json.loads((VECTORS / "rs-bundle-v03-dsse-2026" / "bundle.sigstore.json").read_text())
    ours = sigstore_box.image_bundle(IMAGE, CI, timestamp=True).document
    assert shape(ours) == shape(real)
    real_entry = real["verificationMaterial"]["tlogEntries"][0]
    our_entry = ours["verificationMaterial"]["tlogEntries"][0]
    real_body = json.loads(base64.b64decode(real_entry["canonicalizedBody"]))
    our_body = json.loads(base64.b64decode(our_entry["canonicalizedBody"]))
    assert shape(our_body) == shape(real_body)
    checkpoint = re.compile(r"(\S+) - \d+\n\d+\n[A-Za-z0-9+/=]{44}\n\n\u2014 \1 [A-Za-z0-9+/=]+\n")
    assert checkpoint.fullmatch(real_entry["inclusionProof"]["checkpoint"]["envelope"])
    assert checkpoint.fullmatch(our_entry["inclusionProof"]["checkpoint"]["envelope"])
    real_leaf = x509.load_der_x509_certificate(
        base64.b64decode(real["verificationMaterial"]["certificate"]["rawBytes"])
    )
    our_leaf = x509.load_der_x509_certificate(
        base64.b64decode(ours["verificationMaterial"]["certificate"]["rawBytes"])
    )
    assert set(extension_layout(our_leaf)) <= set(extension_layout(real_leaf))
    assert (
        json.loads(base64.b64decode(ours["dsseEnvelope"]["payload"])).keys()
        <= json.loads(base64.b64decode(real["dsseEnvelope"]["payload"])).keys()
    )


def legacy_as_bundle(signature: LegacySignature) -> bytes:
    """The legacy layer's annotations re-encoded as a v0.3 message-signature bundle, adding only the
    inclusion proof (which the .sig layout does not carry), so that sigstore-python can judge them."""
    annotations = signature.annotations
    assert signature.log_entry is not None
    set_bundle = json.loads(annotations[BUNDLE_ANNOTATION])
    (leaf,) = pem_certificates(annotations[CERTIFICATE_ANNOTATION])
    entry = signature.log_entry.bundle_json()
    entry.update(
        logIndex=str(set_bundle["Payload"]["logIndex"]),
        logId={"keyId": base64.b64encode(bytes.fromhex(set_bundle["Payload"]["logID"])).decode()},
        integratedTime=str(set_bundle["Payload"]["integratedTime"]),
        inclusionPromise={"signedEntryTimestamp": set_bundle["SignedEntryTimestamp"]},
        canonicalizedBody=set_bundle["Payload"]["body"],
    )
    digest = base64.b64encode(hashlib.sha256(signature.payload).digest()).decode()
    document = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {
                "rawBytes": base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
            },
            "tlogEntries": [entry],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": digest},
            "signature": annotations[SIGNATURE_ANNOTATION],
        },
    }
    return json.dumps(document).encode()


def test_legacy_layer_content_verifies_with_sigstore_python(sigstore_box: SigstoreBox, root: Path) -> None:
    legacy = sigstore_box.legacy_signature(IMAGE, "registry.example/app", CI)
    assert json.loads(legacy.payload)["critical"]["image"]["docker-manifest-digest"] == IMAGE
    outcome = reference_verify(
        legacy_as_bundle(legacy), root, identity=CI.san, issuer=CI.issuer, artifact=legacy.payload
    )
    assert outcome.accepted, outcome.reason
    assert legacy.annotations[CHAIN_ANNOTATION] == sigstore_box.chain_pem


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        (Faults(bad_set=True), "SET: invalid inclusion promise"),
        (Faults(expired_certificate=True), "cert is not valid at validation time"),
        (Faults(no_sct=True), "does not contain a signed certificate timestamp"),
        (Faults(body_mismatch=True), "inconsistent with other materials"),
    ],
    ids=["bad SET", "expired", "no SCT", "entry for another signature"],
)
def test_legacy_layer_negatives_are_rejected_by_sigstore_python(
    sigstore_box: SigstoreBox, root: Path, faults: Faults, reason: str
) -> None:
    legacy = sigstore_box.legacy_signature(IMAGE, "registry.example/app", CI, faults=faults)
    outcome = reference_verify(
        legacy_as_bundle(legacy), root, identity=CI.san, issuer=CI.issuer, artifact=legacy.payload
    )
    assert not outcome.accepted
    assert reason in outcome.reason


def test_legacy_layer_variants(sigstore_box: SigstoreBox) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    keyed = sigstore_box.legacy_signature(IMAGE, "registry.example/app", key)
    assert set(keyed.annotations) == {BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION}
    key.public_key().verify(keyed.signature, keyed.payload, ec.ECDSA(hashes.SHA256()))
    unlogged = sigstore_box.legacy_signature(
        IMAGE, "registry.example/app", CI, log="none", faults=Faults(expired_certificate=True)
    )
    assert BUNDLE_ANNOTATION not in unlogged.annotations
    assert unlogged.certificate is not None
    assert unlogged.certificate.not_valid_after_utc < sigstore_box.now
    stamped = sigstore_box.legacy_signature(IMAGE, "registry.example/app", CI, timestamp=True)
    token = base64.b64decode(json.loads(stamped.annotations[RFC3161_ANNOTATION])["SignedRFC3161Timestamp"])
    response = rfc3161_client.decode_timestamp_response(token)
    assert response.tst_info.message_imprint.message == hashlib.sha256(stamped.signature).digest()
    tampered = sigstore_box.legacy_signature(
        IMAGE, "registry.example/app", key, faults=Faults(tampered_payload=True)
    )
    with pytest.raises(InvalidSignature):
        key.public_key().verify(tampered.signature, tampered.payload, ec.ECDSA(hashes.SHA256()))


def test_legacy_attestation_layer(sigstore_box: SigstoreBox, root: Path) -> None:
    attestation = sigstore_box.legacy_attestation(
        IMAGE, "registry.example/app", CI, predicate={"builder": {"id": "ci"}}, timestamp=True
    )
    annotations = attestation.annotations
    assert attestation.layer.media_type == "application/vnd.dsse.envelope.v1+json"
    assert annotations[SIGNATURE_ANNOTATION] == ""
    assert annotations["predicateType"] == "https://slsa.dev/provenance/v0.2"
    envelope = json.loads(attestation.payload)
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert statement["subject"] == [
        {"name": "registry.example/app", "digest": {"sha256": IMAGE.removeprefix("sha256:")}}
    ]
    assert statement["predicate"] == {"builder": {"id": "ci"}}
    (leaf,) = pem_certificates(annotations[CERTIFICATE_ANNOTATION])
    payload_type = envelope["payloadType"].encode()
    signed_bytes = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    leaf_key = leaf.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    leaf_key.verify(signature, signed_bytes, ec.ECDSA(hashes.SHA256()))
    assert attestation.log_entry is not None
    assert reference_verify_log_entry(attestation.log_entry.bundle_json(), root).accepted
    body_bytes = base64.b64decode(json.loads(annotations[BUNDLE_ANNOTATION])["Payload"]["body"])
    rekor_types.Intoto.model_validate_json(body_bytes)  # Rekor's own schema for intoto entries
    content = json.loads(body_bytes)["spec"]["content"]
    assert content["hash"]["value"] == hashlib.sha256(attestation.payload).hexdigest()
    assert content["payloadHash"]["value"] == hashlib.sha256(payload).hexdigest()
    assert "payload" not in content["envelope"]
    (logged,) = content["envelope"]["signatures"]
    assert base64.b64decode(base64.b64decode(logged["sig"])) == signature
    assert base64.b64decode(logged["publicKey"]).decode() == annotations[CERTIFICATE_ANNOTATION]
    token = base64.b64decode(json.loads(annotations[RFC3161_ANNOTATION])["SignedRFC3161Timestamp"])
    imprint = rfc3161_client.decode_timestamp_response(token).tst_info.message_imprint.message
    assert imprint == hashlib.sha256(attestation.payload).digest()
