"""Real cosign signatures (shared interop vectors) through the public verification API.

Every vector reaches the verdict ``vectors.json`` states, for the reason it states: key signatures (with and
without a Rekor bundle), keyless Fulcio + Rekor signatures in ``.sig`` layers, a certificate of the user's
own PKI, and a cosign 3 Sigstore bundle (v0.3, DSSE) as a referrer. Each is presented as discovery finds it
in its real layout (the ``.sig`` layer's payload and annotations, or the bundle as a referrer's layer).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.cosign import (
    CertificateAttestor,
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    VerificationOptions,
    VerificationOutcome,
    Verified,
    load_public_keys,
    verify_found,
)
from exporter.cosign.formats.legacy import BUNDLE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifact, FoundArtifacts
from exporter.registry import parse_reference
from tests.support.artifacts import artifact, found
from tests.support.cosign_vectors import (
    BUNDLE_CASE,
    BUNDLE_DIGEST,
    BUNDLE_IDENTITY,
    CASES,
    GITHUB_ISSUER,
    GITHUB_OAUTH,
    KEYLESS_IDENTITIES,
    PKI,
    VECTORS,
    bundle_content,
    bundle_options,
    case_key,
    expectation,
    key_options,
    keyless_options,
    payload,
    pki_options,
    read,
    rekor_keys,
    sig_annotations,
    signed_digest,
)
from tests.support.reference_verifier import reference_verify

pytestmark = pytest.mark.skipif(not CASES, reason=f"cosign interop vectors not found at {VECTORS}")


def _layers(case: str) -> tuple[FoundArtifact, ...]:
    return tuple(
        artifact("sig-tag", payload(case), SIMPLE_SIGNING_MEDIA_TYPE, annotations)
        for annotations in sig_annotations(case)
    )


def _found(case: str, digest: str | None = None) -> FoundArtifacts:
    """The case as discovery hands it over: its ``.sig`` layers, or its bundle as a referrer."""
    if case == BUNDLE_CASE:
        return _bundle_found(digest or BUNDLE_DIGEST)
    image_digest = digest or signed_digest(case)
    reference = parse_reference(f"example.test/vectors/{case}@{image_digest}")
    return found(reference, image_digest, *_layers(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_vector_reaches_its_stated_verdict_for_its_stated_reason(case: str) -> None:
    expected = expectation(case)
    expected.check(verify_found(_found(case), expected.options))


def _check(case: str, options: VerificationOptions, digest: str | None = None) -> VerificationOutcome:
    image_digest = digest or signed_digest(case)
    reference = parse_reference(f"example.test/vectors/{case}@{image_digest}")
    return verify_found(found(reference, image_digest, *_layers(case)), options)


def _params(kinds: tuple[str, ...], expect: str | None = None) -> list[Any]:
    return [
        pytest.param(name, id=name)
        for name, meta in sorted(CASES.items())
        if meta["kind"] in kinds and (expect is None or meta["expect"] == expect)
    ]


def test_every_vector_is_covered_by_a_test_here() -> None:
    covered = {
        *(p.values[0] for p in _params(("key", "key+rekor-bundle"))),
        *KEYLESS_IDENTITIES,
        "ci-byo-pki-rsa4096",
        BUNDLE_CASE,
    }
    assert covered == set(CASES), f"vectors without a test: {sorted(set(CASES) - covered)}"


# --- key-based ---


@pytest.mark.parametrize("case", _params(("key", "key+rekor-bundle"), "verified"))
def test_positive_key_vectors_verify(case: str) -> None:
    outcome = _check(case, key_options(case))
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.digest == signed_digest(case)
    assert outcome.matched_keys == ("key",)
    (signature,) = outcome.signatures
    assert (signature.format, signature.place) == ("simple-signing", "sig-tag")
    if rekor_keys(case):
        assert signature.time_source == "tlog"
        assert signature.log_index == json.loads(read(case, "bundle.json") or "")["Payload"]["logIndex"]


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
    attestors = tuple(KeyAttestor(name=name, keys=(case_key(MULTI, name),)) for name in names)
    return VerificationOptions(attestors=attestors, threshold=threshold)


@pytest.mark.parametrize("signer", sorted(SIGNERS))
def test_multi_signature_each_key_matches_only_its_own_signature(signer: str) -> None:
    outcome = _check(MULTI, _each_key(signer))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == (signer,)
    layers = _layers(MULTI)
    reference = parse_reference(f"example.test/vectors/multi@{signed_digest(MULTI)}")
    for index, layer in enumerate(layers):
        alone = verify_found(found(reference, signed_digest(MULTI), layer), _each_key(signer))
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
    return (artifact("sig-tag", payload(REKOR), SIMPLE_SIGNING_MEDIA_TYPE, annotations),)


def _rekor_check(bundle: str | None, **overrides: Any) -> VerificationOutcome:
    digest = signed_digest(REKOR)
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
    outcome = _rekor_check(json.dumps(_bundle_document()), rekor_keys=(case_key(REKOR),))
    assert isinstance(outcome, Invalid)
    assert "is from log c0d23d6ad406973f…, which is not trusted" in outcome.reasons[0]


def test_tlog_required_but_bundle_missing_and_optional_when_not_required() -> None:
    required = _rekor_check(None)
    assert isinstance(required, Invalid)
    assert "signed by key but signature has no transparency-log (Rekor) entry" in required.reasons[0]
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


# --- keyless (Fulcio certificate + Rekor entry in the .sig layer) ---


@pytest.mark.parametrize("case", _params(("keyless",), "verified"))
def test_positive_keyless_vectors_verify_with_the_signers_identity(case: str) -> None:
    outcome = _check(case, keyless_options(case))
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.format, signature.place, signature.attestor) == ("simple-signing", "sig-tag", "keyless")
    assert signature.identity is not None
    assert KEYLESS_IDENTITIES[case].subject in signature.identity.subject_alternative_names
    bundle = json.loads(read(case, "bundle.json") or "")["Payload"]
    assert signature.log_index == bundle["logIndex"]
    assert signature.time_source == "tlog"
    assert signature.signing_time is not None
    assert int(signature.signing_time.timestamp()) == bundle["integratedTime"]


@pytest.mark.parametrize("case", _params(("keyless",), "verified"))
def test_positive_keyless_vectors_reject_another_identity_and_another_digest(case: str) -> None:
    stranger = IdentityPolicy(subject="someone-else@example.com", issuer=GITHUB_OAUTH)
    wrong = _check(
        case, keyless_options(case, attestors=(KeylessAttestor(name="k", identities=(stranger,)),))
    )
    assert isinstance(wrong, Invalid)
    assert "someone-else@example.com" in wrong.reasons[0]
    other = "sha256:" + "2" * 64
    elsewhere = _check(case, keyless_options(case), digest=other)
    assert isinstance(elsewhere, Invalid)
    assert f"not this image's {other}" in elsewhere.reasons[0]


def test_keyless_vector_without_an_sct_needs_ignore_sct() -> None:
    outcome = _check("rs-keyless-rekord-2021", keyless_options("rs-keyless-rekord-2021", ignore_sct=False))
    assert isinstance(outcome, Invalid)
    assert "SCT" in outcome.reasons[0]


def test_keyless_vector_with_a_corrupt_signed_entry_timestamp_is_rejected_for_it() -> None:
    case = "ratify-neg-keyless-corrupt-set"
    assert "signed entry timestamp" in CASES[case]["note"]
    outcome = _check(case, keyless_options(case))
    assert isinstance(outcome, Invalid)
    assert len(outcome.reasons) == 1
    assert "bundle.SignedEntryTimestamp is not valid base64" in outcome.reasons[0]


def test_keyless_signatures_are_not_key_signatures() -> None:
    case = "ci-keyless-fulcio-rekor-2023"
    (rekor,) = rekor_keys(case)
    outcome = _check(case, VerificationOptions(attestors=(KeyAttestor(name="rekor-key", keys=(rekor,)),)))
    assert isinstance(outcome, Invalid)
    assert "does not verify with any trusted key (rekor)" in outcome.reasons[0]


# --- the user's own PKI ---


def test_own_pki_certificate_chain_vector_verifies() -> None:
    outcome = _check(PKI, pki_options())
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert signature.identity is not None
    assert "qiwan@redhat.com" in signature.identity.subject_alternative_names
    assert (signature.time_source, signature.log_index) == ("current-time", None)


def test_own_pki_vector_needs_its_root_and_a_log_entry_unless_ignored() -> None:
    fulcio_only = _check(
        PKI,
        pki_options(
            attestors=(KeylessAttestor(name="k", identities=(IdentityPolicy(subject="qiwan@redhat.com"),)),)
        ),
    )
    assert isinstance(fulcio_only, Invalid)
    logged = _check(PKI, pki_options(ignore_tlog=None))
    assert isinstance(logged, Invalid)
    assert "no transparency-log (Rekor) entry" in logged.reasons[0]
    unlogged_certificate = _check(PKI, pki_options(ignore_sct=False))
    assert isinstance(unlogged_certificate, Invalid)
    assert "no embedded SCT" in unlogged_certificate.reasons[0]


def test_own_pki_pinned_certificate_verifies_and_pins() -> None:
    pinned = _check(
        PKI, pki_options(attestors=(CertificateAttestor(name="pin", certificate=read(PKI, "cert.pem")),))
    )
    assert isinstance(pinned, Verified), pinned.reason
    other = read("ci-keyless-fulcio-rekor-2023", "cert.pem")
    mismatch = _check(PKI, pki_options(attestors=(CertificateAttestor(name="pin", certificate=other),)))
    assert isinstance(mismatch, Invalid)
    assert "different certificate" in mismatch.reasons[0]


# --- cosign 3: Sigstore bundle v0.3 (DSSE) as a referrer ---


def _bundle_found(digest: str = BUNDLE_DIGEST) -> FoundArtifacts:
    layer = artifact("referrers-api", bundle_content(), "application/vnd.dev.sigstore.bundle.v0.3+json")
    return found(parse_reference(f"ghcr.io/kubewarden/kubewarden-controller@{digest}"), digest, layer)


def test_cosign3_bundle_vector_verifies_as_an_image_signature() -> None:
    outcome = verify_found(_bundle_found(), bundle_options())
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.format, signature.bundle_version, signature.place) == (
        "bundle-dsse",
        "0.3",
        "referrers-api",
    )
    assert signature.predicate_type == "https://sigstore.dev/cosign/sign/v1"
    assert signature.log_index == 1261105807
    assert signature.identity is not None
    assert signature.identity.issuer == GITHUB_ISSUER


def test_cosign3_bundle_vector_is_about_its_image_only_and_only_for_its_signer() -> None:
    other = "sha256:" + "3" * 64
    elsewhere = verify_found(_bundle_found(other), bundle_options())
    assert isinstance(elsewhere, Invalid)
    assert f"not this image's {other}" in elsewhere.reasons[0]
    stranger = IdentityPolicy(subject_regexp="^https://github.com/someone/", issuer=GITHUB_ISSUER)
    wrong = verify_found(
        _bundle_found(), bundle_options(attestors=(KeylessAttestor(name="x", identities=(stranger,)),))
    )
    assert isinstance(wrong, Invalid)
    assert "none of the expected identities matched what was in the certificate" in wrong.reasons[0]


def test_sigstore_python_agrees_on_the_cosign3_bundle_vector() -> None:
    theirs = reference_verify(
        bundle_content(),
        VECTORS / BUNDLE_CASE / "trusted_root.json",
        identity=BUNDLE_IDENTITY.subject or "",
        issuer=GITHUB_ISSUER,
        subject_digest=BUNDLE_DIGEST,
    )
    assert theirs.accepted, theirs.reason
    other = reference_verify(
        bundle_content(),
        VECTORS / BUNDLE_CASE / "trusted_root.json",
        identity=BUNDLE_IDENTITY.subject or "",
        issuer=GITHUB_ISSUER,
        subject_digest="sha256:" + "3" * 64,
    )
    assert not other.accepted
