"""Real cosign signatures (shared interop vectors) through the public verification API.

Every ``key`` and ``key+rekor-bundle`` case must reach the verdict ``vectors.json`` states; keyless,
certificate-chain and bundle-v0.3 cases are listed as explicit skips until that support exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.cosign import (
    Invalid,
    SignatureLayer,
    SignatureSet,
    TrustedKey,
    Verified,
    VerifyOptions,
    load_public_key,
    load_public_keys,
    verify_signatures,
)
from exporter.registry import parse_reference

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
KEY_KINDS = ("key", "key+rekor-bundle")
UNSUPPORTED = "keyless/bundle verification not supported yet (issue 3 rejects such policies)"


def _cases() -> dict[str, Any]:
    index = VECTORS / "vectors.json"
    return json.loads(index.read_text()) if index.exists() else {}


CASES = _cases()
pytestmark = pytest.mark.skipif(not CASES, reason=f"cosign interop vectors not found at {VECTORS}")


def _payload(case: str) -> bytes:
    return (VECTORS / case / "payload.json").read_bytes()


def _signed_digest(case: str) -> str:
    digest: str = json.loads(_payload(case))["critical"]["image"]["docker-manifest-digest"]
    return digest


def _annotations(case: str) -> dict[str, str]:
    path = VECTORS / case / "annotations.json"
    return json.loads(path.read_text())["annotations"] if path.exists() else {}


def _signature_set(case: str, digest: str | None = None) -> SignatureSet:
    """The case's signatures as the registry would serve them, for the image the payload names."""
    payload = _payload(case)
    bundle = _annotations(case).get("dev.sigstore.cosign/bundle")
    layers = tuple(
        SignatureLayer("sha256:" + "0" * 64, payload, path.read_text().strip(), bundle)
        for path in sorted((VECTORS / case).glob("signature*.b64"))
    )
    image_digest = digest or _signed_digest(case)
    return SignatureSet(parse_reference(f"example.test/vectors/{case}@{image_digest}"), image_digest, layers)


def _key(case: str, name: str = "key") -> TrustedKey:
    return load_public_key((VECTORS / case / f"{name}.pub").read_text(), name)


def _rekor(case: str) -> tuple[TrustedKey, ...]:
    path = VECTORS / case / "rekor.pub"
    return (load_public_key(path.read_text(), "rekor"),) if path.exists() else ()


def _options(case: str, **overrides: Any) -> VerifyOptions:
    rekor = _rekor(case)
    settings: dict[str, Any] = {"keys": (_key(case),), "rekor_keys": rekor, "require_tlog": bool(rekor)}
    settings.update(overrides)
    return VerifyOptions(**settings)


def _params(kinds: tuple[str, ...], expect: str | None = None) -> list[Any]:
    return [
        pytest.param(name, id=name)
        for name, meta in sorted(CASES.items())
        if meta["kind"] in kinds and (expect is None or meta["expect"] == expect)
    ]


@pytest.mark.parametrize("case", _params(KEY_KINDS, "verified"))
def test_positive_vectors_verify(case: str) -> None:
    outcome = verify_signatures(_signature_set(case), _options(case))
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.digest == _signed_digest(case)
    assert outcome.matched_keys == ("key",)


@pytest.mark.parametrize("case", _params(KEY_KINDS, "verified"))
def test_positive_vectors_prove_nothing_about_another_digest(case: str) -> None:
    other = "sha256:" + "1" * 64
    outcome = verify_signatures(_signature_set(case, digest=other), _options(case))
    assert isinstance(outcome, Invalid)
    assert f"not this image's {other}" in outcome.reasons[0]


@pytest.mark.parametrize("case", _params(KEY_KINDS, "rejected"))
def test_negative_vectors_are_rejected_because_the_key_does_not_verify(case: str) -> None:
    assert "does not verify with key.pub" in CASES[case]["note"]
    outcome = verify_signatures(_signature_set(case), _options(case))
    assert isinstance(outcome, Invalid)
    assert len(outcome.reasons) == 1
    assert "does not verify with any trusted key (key)" in outcome.reasons[0]


MULTI = "cn-key-multi-alice-bob-charlie"
SIGNERS = {"key-alice": 0, "key-bob": 1, "key-charlie": 2}


@pytest.mark.skipif(MULTI not in CASES, reason="multi-signature vector absent")
@pytest.mark.parametrize("signer", sorted(SIGNERS))
def test_multi_signature_each_key_matches_only_its_own_signature(signer: str) -> None:
    full = _signature_set(MULTI)
    outcome = verify_signatures(full, VerifyOptions(keys=(_key(MULTI, signer),)))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == (signer,)
    for index, layer in enumerate(full.layers):
        alone = SignatureSet(full.reference, full.digest, (layer,))
        verdict = verify_signatures(alone, VerifyOptions(keys=(_key(MULTI, signer),)))
        assert verdict.status == ("verified" if index == SIGNERS[signer] else "invalid")


@pytest.mark.skipif(MULTI not in CASES, reason="multi-signature vector absent")
def test_multi_signature_non_signer_and_threshold() -> None:
    signatures = _signature_set(MULTI)
    outsider = verify_signatures(signatures, VerifyOptions(keys=(_key(MULTI, "key-default-NOT-A-SIGNER"),)))
    assert isinstance(outsider, Invalid)
    assert len(outsider.reasons) == 3
    all_three = tuple(_key(MULTI, name) for name in SIGNERS)
    outcome = verify_signatures(signatures, VerifyOptions(keys=all_three, threshold=3))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == ("key-alice", "key-bob", "key-charlie")
    with_outsider = (*all_three[:2], _key(MULTI, "key-default-NOT-A-SIGNER"))
    short = verify_signatures(signatures, VerifyOptions(keys=with_outsider, threshold=3))
    assert isinstance(short, Invalid)
    assert short.reasons[-1] == "only 2 of the required 3 keys signed (key-alice, key-bob)"


@pytest.mark.skipif(MULTI not in CASES, reason="multi-signature vector absent")
def test_several_keys_in_one_pem_text_as_kyverno_public_keys() -> None:
    text = "\n".join((VECTORS / MULTI / f"{name}.pub").read_text() for name in SIGNERS)
    keys = load_public_keys(text, "attestor")
    assert [key.name for key in keys] == ["attestor#1", "attestor#2", "attestor#3"]
    outcome = verify_signatures(_signature_set(MULTI), VerifyOptions(keys=keys, threshold=2))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == ("attestor#1", "attestor#2", "attestor#3")


REKOR = "ci-key-cosign2-rekor"


def _rekor_set(bundle: str | None, signature: str | None = None) -> SignatureSet:
    base = _signature_set(REKOR)
    layer = base.layers[0]
    changed = SignatureLayer(layer.digest, layer.payload, signature or layer.signature, bundle)
    return SignatureSet(base.reference, base.digest, (changed,))


def _bundle_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / REKOR / "bundle.json").read_text())
    return document


@pytest.mark.skipif(REKOR not in CASES, reason="Rekor vector absent")
def test_rekor_bundle_with_a_tampered_timestamp_is_rejected() -> None:
    document = _bundle_document()
    document["Payload"]["integratedTime"] += 1
    outcome = verify_signatures(_rekor_set(json.dumps(document)), _options(REKOR))
    assert isinstance(outcome, Invalid)
    assert "signed entry timestamp does not verify" in outcome.reasons[0]


@pytest.mark.skipif(REKOR not in CASES, reason="Rekor vector absent")
def test_rekor_bundle_from_an_untrusted_log_is_rejected() -> None:
    outcome = verify_signatures(
        _rekor_set(json.dumps(_bundle_document())), _options(REKOR, rekor_keys=(_key(REKOR),))
    )
    assert isinstance(outcome, Invalid)
    assert "matches no trusted Rekor key" in outcome.reasons[0]


@pytest.mark.skipif(REKOR not in CASES, reason="Rekor vector absent")
def test_tlog_required_but_bundle_missing_and_optional_when_not_required() -> None:
    required = verify_signatures(_rekor_set(None), _options(REKOR))
    assert isinstance(required, Invalid)
    assert "no Rekor bundle" in required.reasons[0]
    optional = verify_signatures(_rekor_set(None), _options(REKOR, require_tlog=False))
    assert isinstance(optional, Verified)


@pytest.mark.skipif(REKOR not in CASES, reason="Rekor vector absent")
def test_rekor_bundle_is_checked_whenever_a_rekor_key_is_configured() -> None:
    document = _bundle_document()
    document["SignedEntryTimestamp"] = "not base64!"
    outcome = verify_signatures(_rekor_set(json.dumps(document)), _options(REKOR, require_tlog=False))
    assert isinstance(outcome, Invalid)
    assert "SignedEntryTimestamp is not base64" in outcome.reasons[0]
    garbage = verify_signatures(_rekor_set("{not json"), _options(REKOR, require_tlog=False))
    assert isinstance(garbage, Invalid)
    assert "bundle annotation is not JSON" in garbage.reasons[0]


@pytest.mark.parametrize("case", _params(("keyless", "certificate-chain", "sigstore-bundle-v0.3")))
def test_keyless_and_bundle_vectors_are_not_supported_yet(case: str) -> None:
    pytest.skip(f"{case} ({CASES[case]['kind']}): {UNSUPPORTED}")
