"""Signature decisions with freshly made keys: key types, hashes, thresholds, payload binding, bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from exporter.cosign import (
    Invalid,
    KeyLoadError,
    SignatureLayer,
    SignatureSet,
    Unsigned,
    Verified,
    VerifyOptions,
    load_public_key,
    load_public_keys,
    verify_signatures,
)
from exporter.registry import parse_reference
from tests.support.registry import (
    PrivateKey,
    cosign_signature_layer,
    generate_signing_key,
    public_pem,
    sign_bytes,
    simple_signing_payload,
)

DIGEST = "sha256:" + "4d" * 32
REFERENCE = parse_reference(f"registry.test/team/app:v1@{DIGEST}")
REKOR_VECTOR = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors/ci-key-cosign2-rekor"


def _layer(key: PrivateKey, digest: str = DIGEST, hash_name: str = "sha256") -> SignatureLayer:
    spec = cosign_signature_layer(key, digest, "registry.test/team/app", hash_name=hash_name)
    return SignatureLayer(
        "sha256:" + "0" * 64, spec.payload, spec.annotations.get("dev.cosignproject.cosign/signature")
    )


def _set(*layers: SignatureLayer) -> SignatureSet:
    return SignatureSet(REFERENCE, DIGEST, layers)


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"])
def test_every_supported_key_type_verifies_its_signature(kind: str) -> None:
    private = generate_signing_key(kind)
    key = load_public_key(public_pem(private), kind)
    outcome = verify_signatures(_set(_layer(private)), VerifyOptions(keys=(key,)))
    assert outcome == Verified(REFERENCE, DIGEST, (kind,))
    assert outcome.reason == f"{DIGEST} is signed by {kind}"


@pytest.mark.parametrize("hash_name", ["sha384", "sha512"])
def test_signature_algorithm_option_selects_the_hash(hash_name: str) -> None:
    private = generate_signing_key("ecdsa-p256")
    key = load_public_key(public_pem(private), "k")
    signatures = _set(_layer(private, hash_name=hash_name))
    assert isinstance(verify_signatures(signatures, VerifyOptions(keys=(key,))), Invalid)
    matching = VerifyOptions(keys=(key,), signature_algorithm=hash_name)
    assert isinstance(verify_signatures(signatures, matching), Verified)


def test_no_signature_layers_is_unsigned() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    assert verify_signatures(_set(), VerifyOptions(keys=(key,))) == Unsigned(REFERENCE, DIGEST)


def test_threshold_counts_distinct_keys_and_reports_which_matched() -> None:
    alice, bob, carol = (generate_signing_key() for _ in range(3))
    keys = tuple(
        load_public_key(public_pem(k), n) for k, n in ((alice, "alice"), (bob, "bob"), (carol, "carol"))
    )
    signatures = _set(_layer(alice), _layer(alice), _layer(bob))
    assert verify_signatures(signatures, VerifyOptions(keys=keys, threshold=2)) == Verified(
        REFERENCE, DIGEST, ("alice", "bob")
    )
    short = verify_signatures(signatures, VerifyOptions(keys=keys, threshold=3))
    assert isinstance(short, Invalid)
    assert short.reasons == ("only 2 of the required 3 keys signed (alice, bob)",)


def _raw_layer(payload: bytes, signature: str | None) -> SignatureLayer:
    return SignatureLayer("sha256:" + "e" * 64, payload, signature)


def _signed(private: PrivateKey, payload: bytes) -> SignatureLayer:
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
    outcome = verify_signatures(_set(_signed(private, payload)), VerifyOptions(keys=(key,)))
    assert isinstance(outcome, Invalid)
    assert reason in outcome.reasons[0]
    assert "signed by k but" in outcome.reasons[0]


def test_missing_annotation_and_bad_base64_are_reported_per_signature() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "k")
    payload = simple_signing_payload(DIGEST, "registry.test/team/app")
    outcome = verify_signatures(
        _set(_raw_layer(payload, None), _raw_layer(payload, "%%%not-base64%%%"), _signed(private, payload)),
        VerifyOptions(keys=(key,)),
    )
    assert isinstance(outcome, Verified), "a good signature still counts next to broken ones"
    broken = verify_signatures(
        _set(_raw_layer(payload, None), _raw_layer(payload, "%%%not-base64%%%")), VerifyOptions(keys=(key,))
    )
    assert isinstance(broken, Invalid)
    assert "no dev.cosignproject.cosign/signature annotation" in broken.reasons[0]
    assert "signature annotation is not valid base64" in broken.reasons[1]


def test_oversized_payload_layer_counts_as_invalid_signature() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    layer = SignatureLayer(
        "sha256:" + "f" * 64, b"", "c2ln", problem="payload of 2000000 bytes exceeds the limit"
    )
    outcome = verify_signatures(_set(layer), VerifyOptions(keys=(key,)))
    assert isinstance(outcome, Invalid)
    assert "exceeds the limit" in outcome.reasons[0]


def test_docker_reference_is_only_enforced_when_asked() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "k")
    spec = cosign_signature_layer(private, DIGEST, "elsewhere.test/other/image")
    signature = spec.annotations["dev.cosignproject.cosign/signature"]
    signatures = _set(SignatureLayer("sha256:" + "0" * 64, spec.payload, signature))
    assert isinstance(verify_signatures(signatures, VerifyOptions(keys=(key,))), Verified)
    strict = verify_signatures(signatures, VerifyOptions(keys=(key,), require_reference=True))
    assert isinstance(strict, Invalid)
    assert "'elsewhere.test/other/image', not registry.test/team/app" in strict.reasons[0]
    same = _set(_layer(private))
    assert isinstance(verify_signatures(same, VerifyOptions(keys=(key,), require_reference=True)), Verified)


@pytest.mark.skipif(not REKOR_VECTOR.exists(), reason="Rekor interop vector absent")
def test_a_genuine_rekor_bundle_of_another_signature_does_not_vouch_for_this_one() -> None:
    private = generate_signing_key()
    key = load_public_key(public_pem(private), "mine")
    rekor = load_public_key((REKOR_VECTOR / "rekor.pub").read_text(), "rekor")
    layer = _layer(private)
    bundle = (REKOR_VECTOR / "bundle.json").read_text()
    stolen = SignatureLayer(layer.digest, layer.payload, layer.signature, bundle)
    outcome = verify_signatures(
        _set(stolen), VerifyOptions(keys=(key,), rekor_keys=(rekor,), require_tlog=True)
    )
    assert isinstance(outcome, Invalid)
    assert "Rekor entry records a different signature" in outcome.reasons[0]


def test_options_are_validated_with_clear_messages() -> None:
    key = load_public_key(public_pem(generate_signing_key()), "k")
    with pytest.raises(ValueError, match="at least one trusted public key"):
        VerifyOptions(keys=())
    with pytest.raises(ValueError, match=r"threshold \(count\) 2 must be between 1 and the number of keys"):
        VerifyOptions(keys=(key,), threshold=2)
    with pytest.raises(ValueError, match="'md5' is not one of sha256"):
        VerifyOptions(keys=(key,), signature_algorithm="md5")
    with pytest.raises(ValueError, match="needs a Rekor public key"):
        VerifyOptions(keys=(key,), require_tlog=True)


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
