"""Signature decisions with freshly made keys, over discovered artifacts (no registry): key types, hashes,
thresholds, payload binding, bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from exporter.cosign import (
    AttestorError,
    CertificateAttestor,
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    KeyLoadError,
    TrustedKey,
    Unsigned,
    VerificationOptions,
    VerificationOutcome,
    Verified,
    load_public_key,
    load_public_keys,
    verify_found,
)
from exporter.cosign.formats.legacy import BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifact, FoundArtifacts
from exporter.registry import parse_reference
from tests.support.artifacts import artifact, found, sig_layer
from tests.support.registry import (
    PrivateKey,
    generate_signing_key,
    public_pem,
    sign_bytes,
    simple_signing_payload,
)

DIGEST = "sha256:" + "4d" * 32
REFERENCE = parse_reference(f"registry.test/team/app:v1@{DIGEST}")
REKOR_VECTOR = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors/ci-key-cosign2-rekor"


def _layer(key: PrivateKey, digest: str = DIGEST, hash_name: str = "sha256") -> FoundArtifact:
    return sig_layer(key, digest, hash_name=hash_name)


def _verify(
    *layers: FoundArtifact, keys: tuple[TrustedKey, ...], threshold: int = 1, **attestor: Any
) -> VerificationOutcome:
    """One key attestor per key (``threshold`` counts distinct keys), as ``trustwatch verify`` builds them."""
    attestors = tuple(KeyAttestor(name=key.name, keys=(key,), **attestor) for key in keys)
    return verify_found(
        found(REFERENCE, DIGEST, *layers), VerificationOptions(attestors=attestors, threshold=threshold)
    )


def _verified(outcome: VerificationOutcome) -> tuple[str, ...]:
    assert isinstance(outcome, Verified), outcome.reason
    return outcome.matched_keys


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"])
def test_every_supported_key_type_verifies_its_signature(kind: str) -> None:
    private = generate_signing_key(kind)
    key = load_public_key(public_pem(private), kind)
    outcome = _verify(_layer(private), keys=(key,))
    assert _verified(outcome) == (kind,)
    assert outcome.reason == f"{DIGEST} is signed by {kind}"
    assert isinstance(outcome, Verified)
    (signature,) = outcome.signatures
    assert (signature.format, signature.place, signature.key) == ("simple-signing", "sig-tag", kind)
    assert (signature.log_index, signature.time_source, signature.identity) == (None, None, None)


@pytest.mark.parametrize("hash_name", ["sha384", "sha512"])
def test_signature_algorithm_option_selects_the_hash(hash_name: str) -> None:
    private = generate_signing_key("ecdsa-p256")
    key = load_public_key(public_pem(private), "k")
    layer = _layer(private, hash_name=hash_name)
    assert isinstance(_verify(layer, keys=(key,)), Invalid)
    assert isinstance(_verify(layer, keys=(key,), hash_algorithm=hash_name), Verified)


def test_no_signature_layers_is_unsigned() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    assert _verify(keys=(key,)) == Unsigned(REFERENCE, DIGEST)


def test_threshold_counts_distinct_keys_and_reports_which_matched() -> None:
    alice, bob, carol = (generate_signing_key() for _ in range(3))
    keys = tuple(
        load_public_key(public_pem(k), n) for k, n in ((alice, "alice"), (bob, "bob"), (carol, "carol"))
    )
    layers = (_layer(alice), _layer(alice), _layer(bob))
    assert _verified(_verify(*layers, keys=keys, threshold=2)) == ("alice", "bob")
    short = _verify(*layers, keys=keys, threshold=3)
    assert isinstance(short, Invalid)
    assert short.reasons == ("threshold: only 2 of the required 3 attestors signed (alice, bob)",)


def _raw_layer(payload: bytes, signature: str | None) -> FoundArtifact:
    annotations = {SIGNATURE_ANNOTATION: signature} if signature is not None else {}
    return artifact("sig-tag", payload, SIMPLE_SIGNING_MEDIA_TYPE, annotations)


def _signed(private: PrivateKey, payload: bytes) -> FoundArtifact:
    return _raw_layer(payload, base64.b64encode(sign_bytes(private, payload)).decode())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "payload is not JSON"),
        (b"[1, 2]", "payload is not a JSON object"),
        (b'{"optional": null}', "no 'critical' object"),
        (
            json.dumps(
                {"critical": {"type": "something else", "image": {"docker-manifest-digest": DIGEST}}}
            ).encode(),
            "critical.type is 'something else'",
        ),
        (
            json.dumps({"critical": {"type": "cosign container image signature", "image": {}}}).encode(),
            "no critical.image.docker-manifest-digest",
        ),
        (b"\xff\xfe", "payload is not JSON"),
    ],
)
def test_signed_but_malformed_payloads_are_invalid_with_a_reason(payload: bytes, reason: str) -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "k")
    outcome = _verify(_signed(private, payload), keys=(key,))
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reasons[0]
    assert "signed by k but" in outcome.reasons[0]


def test_missing_annotation_and_bad_base64_are_reported_per_signature() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "k")
    payload = simple_signing_payload(DIGEST, "registry.test/team/app")
    outcome = _verify(
        _raw_layer(payload, None),
        _raw_layer(payload, "%%%not-base64%%%"),
        _signed(private, payload),
        keys=(key,),
    )
    assert isinstance(outcome, Verified), "a good signature still counts next to broken ones"
    broken = _verify(_raw_layer(payload, None), _raw_layer(payload, "%%%not-base64%%%"), keys=(key,))
    assert isinstance(broken, Invalid)
    assert "no dev.cosignproject.cosign/signature annotation" in broken.reasons[0]
    assert "signature annotation is not valid base64" in broken.reasons[1]


def test_oversized_payload_layer_counts_as_invalid_signature() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    layer = artifact(
        "sig-tag", None, SIMPLE_SIGNING_MEDIA_TYPE, problem="payload of 2000000 bytes exceeds the limit"
    )
    outcome = _verify(layer, keys=(key,))
    assert isinstance(outcome, Invalid)
    assert "exceeds the limit" in outcome.reasons[0]


def test_docker_reference_is_only_enforced_when_asked() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "k")
    elsewhere = sig_layer(private, DIGEST, "elsewhere.test/other/image")
    assert isinstance(_verify(elsewhere, keys=(key,)), Verified)
    strict = _verify(elsewhere, keys=(key,), require_reference=True)
    assert isinstance(strict, Invalid)
    assert "'elsewhere.test/other/image', not registry.test/team/app" in strict.reasons[0]
    assert isinstance(_verify(_layer(private), keys=(key,), require_reference=True), Verified)


@pytest.mark.skipif(not REKOR_VECTOR.exists(), reason="Rekor interop vector absent")
def test_a_genuine_rekor_bundle_of_another_signature_does_not_vouch_for_this_one() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "mine")
    rekor = load_public_key((REKOR_VECTOR / "rekor.pub").read_text(), "rekor")
    stolen = sig_layer(
        private, DIGEST, annotations={BUNDLE_ANNOTATION: (REKOR_VECTOR / "bundle.json").read_text()}
    )
    options = VerificationOptions(
        attestors=(KeyAttestor(name="mine", keys=(key,)),), rekor_keys=(rekor,), ignore_tlog=False
    )
    outcome = verify_found(found(REFERENCE, DIGEST, stolen), options)
    assert isinstance(outcome, Invalid)
    assert "is not about this signature" in outcome.reasons[0]


def test_options_are_validated_with_clear_messages() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    attestor = KeyAttestor(name="k", keys=(key,))
    with pytest.raises(AttestorError, match="k: a key attestor needs at least one public key"):
        KeyAttestor(name="k", keys=())
    with pytest.raises(AttestorError, match="at least one attestor"):
        VerificationOptions(attestors=())
    with pytest.raises(
        AttestorError, match=r"threshold \(count\) 2 must be between 1 and the number of attestors"
    ):
        VerificationOptions(attestors=(attestor,), threshold=2)
    with pytest.raises(AttestorError, match="'md5' is not one of sha256"):
        KeyAttestor(name="k", keys=(key,), hash_algorithm="md5")  # type: ignore[arg-type]
    with pytest.raises(AttestorError, match="attestor names must be distinct"):
        VerificationOptions(attestors=(attestor, attestor))


def test_key_loading_errors_name_the_key() -> None:
    with pytest.raises(KeyLoadError, match="team-key: not a PEM public key"):
        load_public_key("garbage", "team-key")
    with pytest.raises(KeyLoadError, match="no PEM block"):
        load_public_keys("nothing here", "policy/rule")


def test_weak_rsa_and_unsupported_curves_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyLoadError, match="1024 bits is too weak"):
        load_public_key(public_pem(weak), "weak")
    koblitz = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(KeyLoadError, match="curve secp256k1 is not supported"):
        load_public_key(public_pem(koblitz), "k1")


def test_key_names_default_to_a_fingerprint_and_pem_spelling_does_not_matter() -> None:
    pem = public_pem(generate_signing_key())
    first = load_public_key(pem)
    again = load_public_key("\n\n" + pem + "\n")
    assert first.name.startswith("key-")
    assert first.fingerprint == again.fingerprint
    assert first.algorithm == "ECDSA secp256r1"


def test_unsigned_says_what_discovery_skipped() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    skipped = "referrers-tag sha256:abc…: its subject is sha256:def…, not this image"
    nothing = FoundArtifacts(REFERENCE, DIGEST, (), (skipped,))
    outcome = verify_found(nothing, VerificationOptions(attestors=(KeyAttestor(name="k", keys=(key,)),)))
    assert outcome == Unsigned(REFERENCE, DIGEST, None, (skipped,))
    assert outcome.reason == f"{DIGEST} has no cosign signature (skipped: {skipped})"


def test_certificates_a_policy_names_must_parse_when_it_is_loaded() -> None:
    with pytest.raises(AttestorError, match="team: certificate is not PEM certificates"):
        CertificateAttestor(name="team", certificate="not a certificate")
    with pytest.raises(AttestorError, match="team: certificate chain is not PEM certificates"):
        CertificateAttestor(
            name="team", chain="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
    identity = IdentityPolicy(subject="a@example.com")
    with pytest.raises(AttestorError, match="ci: roots is not PEM certificates"):
        KeylessAttestor(name="ci", identities=(identity,), roots="garbage")
    with pytest.raises(AttestorError, match="ci: subjectRegExp"):
        KeylessAttestor(name="ci", identities=(IdentityPolicy(subject_regexp="(unclosed"),))
    with pytest.raises(AttestorError, match="accepting any Fulcio certificate would accept anyone"):
        KeylessAttestor(name="ci", identities=(IdentityPolicy(),))
    key = load_public_key(public_pem(generate_signing_key()), "k")
    with pytest.raises(AttestorError, match="TSA certificate chain 1 is not PEM certificates"):
        VerificationOptions(attestors=(KeyAttestor(name="k", keys=(key,)),), tsa_chains=("garbage",))
