"""Real cosign signatures (shared interop vectors) through the public verification API.

Every vector reaches the verdict ``vectors.json`` states, for the reason it states: key signatures (with and
without a Rekor bundle), keyless Fulcio + Rekor signatures in ``.sig`` layers, a certificate of the user's
own PKI, and a cosign 3 Sigstore bundle (v0.3, DSSE) as a referrer. Each is presented as discovery finds it
in its real layout (the ``.sig`` layer's payload and annotations, or the bundle as a referrer's layer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.cosign import (
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    TrustedKey,
    VerificationOptions,
    VerificationOutcome,
    Verified,
    load_public_key,
    load_public_keys,
    verify_found,
)
from exporter.cosign.formats.legacy import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
)
from exporter.cosign.found import FoundArtifact
from exporter.registry import parse_reference
from tests.support.artifacts import artifact, found

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
# Who signed each keyless vector (read from its certificate), as a policy would name them.
KEYLESS_IDENTITIES = {
    "ci-keyless-fulcio-rekor-2022": IdentityPolicy(subject="mitr@redhat.com", issuer=GITHUB_OAUTH),
    "ci-keyless-fulcio-rekor-2023": IdentityPolicy(subject="mitr@redhat.com", issuer=GITHUB_OAUTH),
    "ratify-keyless-2023": IdentityPolicy(subject="sozercan@gmail.com", issuer=GITHUB_OAUTH),
    "ratify-neg-keyless-corrupt-set": IdentityPolicy(subject="sozercan@gmail.com", issuer=GITHUB_OAUTH),
    # 2021: Fulcio wrote no OIDC issuer extension yet, and embedded no SCT.
    "rs-keyless-rekord-2021": IdentityPolicy(subject="flavio@castelli.me"),
}
NO_SCT = frozenset({"rs-keyless-rekord-2021"})
BUNDLE_CASE = "rs-bundle-v03-dsse-2026"
BUNDLE_IDENTITY = IdentityPolicy(
    subject="https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
    issuer=GITHUB_ISSUER,
)
BUNDLE_DIGEST = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"


def _cases() -> dict[str, Any]:
    index = VECTORS / "vectors.json"
    return json.loads(index.read_text()) if index.exists() else {}


CASES = _cases()
pytestmark = pytest.mark.skipif(not CASES, reason=f"cosign interop vectors not found at {VECTORS}")


def _read(case: str, name: str) -> str | None:
    path = VECTORS / case / name
    return path.read_text() if path.exists() else None


def _payload(case: str) -> bytes:
    return (VECTORS / case / "payload.json").read_bytes()


def _signed_digest(case: str) -> str:
    digest: str = json.loads(_payload(case))["critical"]["image"]["docker-manifest-digest"]
    return digest


def sig_annotations(case: str) -> list[dict[str, str]]:
    """The case's ``.sig`` layer annotations as cosign wrote them (one dict per signature layer)."""
    manifest = _read(case, "sig-manifest.json")
    if manifest is not None:
        return [layer["annotations"] for layer in json.loads(manifest)["layers"]]
    served = _read(case, "annotations.json")
    if served is not None:
        return [json.loads(served)["annotations"]]
    annotations = {SIGNATURE_ANNOTATION: (_read(case, "signature.b64") or "").strip()}
    for name, annotation in (
        ("bundle.json", BUNDLE_ANNOTATION),
        ("cert.pem", CERTIFICATE_ANNOTATION),
        ("chain.pem", CHAIN_ANNOTATION),
    ):
        text = _read(case, name)
        if text is not None:
            annotations[annotation] = text
    return [annotations]


def _layers(case: str) -> tuple[FoundArtifact, ...]:
    return tuple(
        artifact("sig-tag", _payload(case), SIMPLE_SIGNING_MEDIA_TYPE, annotations)
        for annotations in sig_annotations(case)
    )


def _check(case: str, options: VerificationOptions, digest: str | None = None) -> VerificationOutcome:
    image_digest = digest or _signed_digest(case)
    reference = parse_reference(f"example.test/vectors/{case}@{image_digest}")
    return verify_found(found(reference, image_digest, *_layers(case)), options)


def _key(case: str, name: str = "key") -> TrustedKey:
    return load_public_key((VECTORS / case / f"{name}.pub").read_text(), name)


def _rekor(case: str) -> tuple[TrustedKey, ...]:
    text = _read(case, "rekor.pub")
    return (load_public_key(text, "rekor"),) if text else ()


def key_options(case: str, **overrides: Any) -> VerificationOptions:
    """The case's key; its Rekor key (then a log entry is required), as a policy with ``rekor.pubkey``."""
    rekor = _rekor(case)
    settings: dict[str, Any] = {
        "attestors": (KeyAttestor(name="key", keys=(_key(case),)),),
        "rekor_keys": rekor,
        "ignore_tlog": False if rekor else None,
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


def keyless_options(case: str, **overrides: Any) -> VerificationOptions:
    """The signer's identity, the shipped public-good root; SCTs required unless the vector has none."""
    settings: dict[str, Any] = {
        "attestors": (KeylessAttestor(name="keyless", identities=(KEYLESS_IDENTITIES[case],)),),
        "ignore_sct": case in NO_SCT,
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


def _params(kinds: tuple[str, ...], expect: str | None = None) -> list[Any]:
    return [
        pytest.param(name, id=name)
        for name, meta in sorted(CASES.items())
        if meta["kind"] in kinds and (expect is None or meta["expect"] == expect)
    ]


# --- key-based ---


@pytest.mark.parametrize("case", _params(("key", "key+rekor-bundle"), "verified"))
def test_positive_key_vectors_verify(case: str) -> None:
    outcome = _check(case, key_options(case))
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.digest == _signed_digest(case)
    assert outcome.matched_keys == ("key",)
    (signature,) = outcome.signatures
    assert (signature.format, signature.place) == ("simple-signing", "sig-tag")
    if _rekor(case):
        assert signature.time_source == "tlog"
        assert signature.log_index == json.loads(_read(case, "bundle.json") or "")["Payload"]["logIndex"]


@pytest.mark.parametrize("case", _params(("key", "key+rekor-bundle"), "verified"))
def test_positive_key_vectors_prove_nothing_about_another_digest(case: str) -> None:
    other = "sha256:" + "1" * 64
    outcome = _check(case, key_options(case), digest=other)
    assert isinstance(outcome, Invalid)
    assert f"not this image's {other}" in outcome.reasons[0]


@pytest.mark.parametrize("case", _params(("key",), "rejected"))
def test_negative_key_vectors_are_rejected_because_the_key_does_not_verify(case: str) -> None:
    assert "does not verify with key.pub" in CASES[case]["note"]
    outcome = _check(case, key_options(case))
    assert isinstance(outcome, Invalid)
    assert len(outcome.reasons) == 1
    assert "does not verify with any trusted key (key)" in outcome.reasons[0]


MULTI = "cn-key-multi-alice-bob-charlie"
SIGNERS = {"key-alice": 0, "key-bob": 1, "key-charlie": 2}


def _each_key(*names: str, threshold: int = 1) -> VerificationOptions:
    attestors = tuple(KeyAttestor(name=name, keys=(_key(MULTI, name),)) for name in names)
    return VerificationOptions(attestors=attestors, threshold=threshold)


@pytest.mark.parametrize("signer", sorted(SIGNERS))
def test_multi_signature_each_key_matches_only_its_own_signature(signer: str) -> None:
    outcome = _check(MULTI, _each_key(signer))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == (signer,)
    layers = _layers(MULTI)
    reference = parse_reference(f"example.test/vectors/multi@{_signed_digest(MULTI)}")
    for index, layer in enumerate(layers):
        alone = verify_found(found(reference, _signed_digest(MULTI), layer), _each_key(signer))
        assert alone.status == ("verified" if index == SIGNERS[signer] else "invalid")


def test_multi_signature_non_signer_and_threshold() -> None:
    outsider = _check(MULTI, _each_key("key-default-NOT-A-SIGNER"))
    assert isinstance(outsider, Invalid)
    assert len(outsider.reasons) == 3
    outcome = _check(MULTI, _each_key(*SIGNERS, threshold=3))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == ("key-alice", "key-bob", "key-charlie")
    short = _check(MULTI, _each_key("key-alice", "key-bob", "key-default-NOT-A-SIGNER", threshold=3))
    assert isinstance(short, Invalid)
    assert short.reasons[-1] == "threshold: only 2 of the required 3 attestors signed (key-alice, key-bob)"


def test_several_keys_in_one_pem_text_as_kyverno_public_keys() -> None:
    text = "\n".join((VECTORS / MULTI / f"{name}.pub").read_text() for name in SIGNERS)
    keys = load_public_keys(text, "attestor")
    assert [key.name for key in keys] == ["attestor#1", "attestor#2", "attestor#3"]
    options = VerificationOptions(attestors=(KeyAttestor(name="attestor", keys=keys),))
    outcome = _check(MULTI, options)
    assert isinstance(outcome, Verified)
    assert outcome.matched_attestors == ("attestor",)
    assert {signature.key for signature in outcome.signatures} == {"attestor#1", "attestor#2", "attestor#3"}


REKOR = "ci-key-cosign2-rekor"


def _rekor_layer(bundle: str | None) -> tuple[FoundArtifact, ...]:
    annotations = dict(sig_annotations(REKOR)[0])
    annotations.pop(BUNDLE_ANNOTATION)
    if bundle is not None:
        annotations[BUNDLE_ANNOTATION] = bundle
    return (artifact("sig-tag", _payload(REKOR), SIMPLE_SIGNING_MEDIA_TYPE, annotations),)


def _rekor_check(bundle: str | None, **overrides: Any) -> VerificationOutcome:
    digest = _signed_digest(REKOR)
    reference = parse_reference(f"example.test/vectors/rekor@{digest}")
    return verify_found(found(reference, digest, *_rekor_layer(bundle)), key_options(REKOR, **overrides))


def _bundle_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / REKOR / "bundle.json").read_text())
    return document


def test_rekor_bundle_with_a_tampered_timestamp_is_rejected() -> None:
    document = _bundle_document()
    document["Payload"]["integratedTime"] += 1
    outcome = _rekor_check(json.dumps(document))
    assert isinstance(outcome, Invalid)
    assert "signed entry timestamp does not verify" in outcome.reasons[0]


def test_rekor_bundle_from_an_untrusted_log_is_rejected() -> None:
    outcome = _rekor_check(json.dumps(_bundle_document()), rekor_keys=(_key(REKOR),))
    assert isinstance(outcome, Invalid)
    assert "matches no trusted Rekor key" in outcome.reasons[0]


def test_tlog_required_but_bundle_missing_and_optional_when_not_required() -> None:
    required = _rekor_check(None)
    assert isinstance(required, Invalid)
    assert "no Rekor bundle" in required.reasons[0]
    assert isinstance(_rekor_check(None, ignore_tlog=None), Verified)


def test_rekor_bundle_is_checked_whenever_a_rekor_key_is_configured() -> None:
    document = _bundle_document()
    document["SignedEntryTimestamp"] = "not base64!"
    outcome = _rekor_check(json.dumps(document), ignore_tlog=None)
    assert isinstance(outcome, Invalid)
    assert "bundle.SignedEntryTimestamp is not valid base64" in outcome.reasons[0]
    garbage = _rekor_check("{not json", ignore_tlog=None)
    assert isinstance(garbage, Invalid)
    assert "bundle annotation is not JSON" in garbage.reasons[0]


# --- not verified through this API yet ---


@pytest.mark.parametrize("case", _params(("keyless", "certificate-chain", "sigstore-bundle-v0.3")))
def test_keyless_and_bundle_vectors_are_not_supported_yet(case: str) -> None:
    pytest.skip(f"{case} ({CASES[case]['kind']}): needs the Sigstore trust checks (exporter.sigstore)")
