"""verify_material on real signatures (the shared interop vectors): keyless cosign signatures with Rekor
bundles from 2021 to 2023, a Sigstore v0.3 DSSE bundle with inclusion proof, checkpoint and RFC 3161
timestamp, a private-PKI certificate chain, and tampered variants of each."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from exporter.sigstore import (
    IdentityPolicy,
    SignedEnvelope,
    SignedMessage,
    SignerFacts,
    SigningMaterial,
    TrustPolicy,
    VerificationFailure,
    load_trusted_root,
    public_good_root,
    verify_material,
)
from exporter.sigstore.keys import load_public_key
from tests.support.sigstore_material import bundle_material, cosign_bundle_entry, legacy_material

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"interop vectors not found at {VECTORS}")
GITHUB_LOGIN = "https://github.com/login/oauth"
KEYLESS = {
    "ci-keyless-fulcio-rekor-2022": (
        "mitr@redhat.com",
        8949589,
        datetime(2022, 12, 12, 18, 48, 19, tzinfo=UTC),
    ),
    "ci-keyless-fulcio-rekor-2023": (
        "mitr@redhat.com",
        11605770,
        datetime(2023, 1, 20, 20, 51, 33, tzinfo=UTC),
    ),
    "ratify-keyless-2023": ("sozercan@gmail.com", 13452680, datetime(2023, 2, 16, 5, 23, 5, tzinfo=UTC)),
}


def _keyless(case: str, *, entry_from: str | None = None) -> SigningMaterial:
    payload = (VECTORS / case / "payload.json").read_bytes()
    chain = x509.load_pem_x509_certificates((VECTORS / case / "cert.pem").read_bytes())
    if (VECTORS / case / "chain.pem").exists():
        chain += x509.load_pem_x509_certificates((VECTORS / case / "chain.pem").read_bytes())
    return SigningMaterial(
        signature=base64.b64decode((VECTORS / case / "signature.b64").read_text()),
        signed=SignedMessage(hashlib.sha256(payload).digest(), payload),
        certificate_chain=tuple(chain),
        tlog_entries=(cosign_bundle_entry((VECTORS / (entry_from or case) / "bundle.json").read_text()),),
    )


def _facts(result: SignerFacts | VerificationFailure) -> SignerFacts:
    assert isinstance(result, SignerFacts), result
    return result


def _failure(result: SignerFacts | VerificationFailure) -> VerificationFailure:
    assert isinstance(result, VerificationFailure), result
    return result


PUBLIC_GOOD = TrustPolicy(public_good_root())


@pytest.mark.parametrize("case", sorted(KEYLESS))
def test_keyless_cosign_signatures_verify(case: str) -> None:
    subject, log_index, integrated = KEYLESS[case]
    facts = _facts(
        verify_material(_keyless(case), PUBLIC_GOOD, (IdentityPolicy(subject, issuer=GITHUB_LOGIN),))
    )
    assert facts.identity is not None and facts.identity.subject == subject
    assert facts.identity.issuer == GITHUB_LOGIN
    assert [(entry.log_index, entry.integrated_time) for entry in facts.log_entries] == [
        (log_index, integrated)
    ]
    assert (facts.signing_time, facts.time_source, facts.sct_verified) == (integrated, "tlog", True)


def test_wrong_identity_is_an_identity_failure() -> None:
    result = verify_material(
        _keyless("ratify-keyless-2023"),
        PUBLIC_GOOD,
        (
            IdentityPolicy("mitr@redhat.com", issuer=GITHUB_LOGIN),
            IdentityPolicy(subject_regexp="@redhat\\.com$"),
        ),
    )
    failure = _failure(result)
    assert failure.check == "identity" and "sozercan@gmail.com" in failure.reason


def test_corrupt_signed_entry_timestamp_is_rejected() -> None:
    failure = _failure(verify_material(_keyless("ratify-neg-keyless-corrupt-set"), PUBLIC_GOOD))
    assert failure.check == "tlog" and "signed entry timestamp does not verify" in failure.reason


def test_log_entry_of_another_signature_is_rejected() -> None:
    material = _keyless("ci-keyless-fulcio-rekor-2023", entry_from="ci-keyless-fulcio-rekor-2022")
    failure = _failure(verify_material(material, PUBLIC_GOOD))
    assert failure.check == "tlog" and "is not about this signature" in failure.reason


def test_tampered_signature_or_payload_is_rejected() -> None:
    material = _keyless("ci-keyless-fulcio-rekor-2023")
    flipped = dataclasses.replace(
        material, signature=material.signature[:-1] + bytes([material.signature[-1] ^ 1])
    )
    assert _failure(verify_material(flipped, PUBLIC_GOOD)).check == "signature"
    payload = b" " + (VECTORS / "ci-keyless-fulcio-rekor-2023/payload.json").read_bytes()
    other = dataclasses.replace(material, signed=SignedMessage(hashlib.sha256(payload).digest(), payload))
    assert _failure(verify_material(other, PUBLIC_GOOD)).check == "signature"


def test_2021_certificate_without_sct_needs_ignore_sct() -> None:
    material = _keyless("rs-keyless-rekord-2021")
    failure = _failure(verify_material(material, PUBLIC_GOOD))
    assert failure.check == "sct" and "no embedded SCT" in failure.reason
    facts = _facts(verify_material(material, dataclasses.replace(PUBLIC_GOOD, require_sct=False)))
    assert facts.identity is not None and facts.identity.subject == "flavio@castelli.me"
    assert facts.log_entries[0].log_index == 783607 and not facts.sct_verified
    # Its CA (the first Fulcio root) is trusted only until the end of 2022: the same signature made later
    # would not chain. The rekord entry kind (2021) is matched like hashedrekord.
    assert facts.signing_time == datetime(2021, 10, 20, 7, 25, 17, tzinfo=UTC)


def test_without_log_entry_short_lived_certificate_cannot_verify() -> None:
    material = dataclasses.replace(_keyless("ci-keyless-fulcio-rekor-2023"), tlog_entries=())
    required = _failure(verify_material(material, PUBLIC_GOOD))
    assert required.check == "tlog" and "ignoreTlog" in required.reason
    ignored = _failure(verify_material(material, dataclasses.replace(PUBLIC_GOOD, require_tlog=False)))
    assert ignored.check == "certificate-validity" and "current time was used" in ignored.reason
    # With a clock inside the certificate's ten minutes the wall clock alone is accepted (tlog ignored).
    during = datetime(2023, 1, 20, 20, 55, tzinfo=UTC)
    facts = _facts(
        verify_material(material, dataclasses.replace(PUBLIC_GOOD, require_tlog=False), now=during)
    )
    assert (facts.time_source, facts.signing_time, facts.log_entries) == ("current-time", during, ())


def test_explicit_rekor_key_replaces_the_roots_logs() -> None:
    rekor = load_public_key((VECTORS / "ci-keyless-fulcio-rekor-2023/rekor.pub").read_text(), "rekor.pub")
    material = _keyless("ci-keyless-fulcio-rekor-2023")
    assert isinstance(
        verify_material(material, dataclasses.replace(PUBLIC_GOOD, rekor_keys=(rekor,))), SignerFacts
    )
    other = load_public_key((VECTORS / "ci-key-cosign-valid/key.pub").read_text(), "other.pub")
    failure = _failure(verify_material(material, dataclasses.replace(PUBLIC_GOOD, rekor_keys=(other,))))
    assert failure.check == "tlog" and "not trusted" in failure.reason


@pytest.mark.parametrize("case", ["ci-keyless-fulcio-rekor-2023", "rs-bundle-v03-dsse-2026"])
def test_rekor_url_of_the_public_good_log_accepts_its_entries_and_another_url_refuses(case: str) -> None:
    identities: tuple[IdentityPolicy, ...] = ()
    if case in KEYLESS:
        material, trust = _keyless(case), PUBLIC_GOOD
    else:
        material, trust, identities = _bundle_material(), BUNDLE_TRUST, (KUBEWARDEN,)
    public_good = dataclasses.replace(trust, rekor_url="https://rekor.sigstore.dev")
    facts = _facts(verify_material(material, public_good, identities))
    assert facts.log_entries[0].log_url == "https://rekor.sigstore.dev"
    staging = dataclasses.replace(trust, rekor_url="https://rekor.sigstage.dev")
    failure = _failure(verify_material(material, staging, identities))
    assert failure.check == "tlog" and "no transparency log at https://rekor.sigstage.dev" in failure.reason
    # The Rekor v2 log of the same root is a log of its own: its URL does not accept a v1 entry.
    other = dataclasses.replace(trust, rekor_url="https://log2025-1.rekor.sigstore.dev")
    failure = _failure(verify_material(material, other, identities))
    assert failure.check == "tlog" and "not trusted" in failure.reason


def test_explicit_ct_log_key_replaces_the_roots_ct_logs() -> None:
    ctfe = load_public_key((VECTORS / "_trust/ctfe-2022.pub").read_text(), "ctfe")
    material = _keyless("ci-keyless-fulcio-rekor-2023")
    assert isinstance(
        verify_material(material, dataclasses.replace(PUBLIC_GOOD, ctlog_keys=(ctfe,))), SignerFacts
    )
    rekor = load_public_key((VECTORS / "_trust/rekor-public-good.pub").read_text(), "rekor")
    failure = _failure(verify_material(material, dataclasses.replace(PUBLIC_GOOD, ctlog_keys=(rekor,))))
    assert failure.check == "sct" and "not trusted" in failure.reason


BUNDLE = VECTORS / "rs-bundle-v03-dsse-2026"
KUBEWARDEN = IdentityPolicy(
    subject="https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
    issuer="https://token.actions.githubusercontent.com",
    extensions={
        "githubWorkflowRepository": "kubewarden/kubewarden-controller",
        "runnerEnvironment": "github-hosted",
    },
)


def _bundle_material() -> SigningMaterial:
    return bundle_material(json.loads((BUNDLE / "bundle.sigstore.json").read_text()))


BUNDLE_TRUST = (
    TrustPolicy(load_trusted_root(BUNDLE / "trusted_root.json")) if BUNDLE.is_dir() else PUBLIC_GOOD
)


def test_v03_dsse_bundle_verifies_with_proof_checkpoint_and_timestamp() -> None:
    facts = _facts(verify_material(_bundle_material(), BUNDLE_TRUST, (KUBEWARDEN,)))
    entry = facts.log_entries[0]
    assert (entry.log_url, entry.log_index, entry.inclusion_proven) == (
        "https://rekor.sigstore.dev",
        1261105807,
        True,
    )
    assert facts.time_source == "tlog" and facts.timestamp_times == (
        datetime(2026, 4, 9, 7, 23, 29, tzinfo=UTC),
    )
    assert (
        facts.identity is not None and facts.identity.extensions["sourceRepositoryIdentifier"] == "318490971"
    )


def _with_entry(material: SigningMaterial, **changes: Any) -> SigningMaterial:
    return dataclasses.replace(
        material, tlog_entries=(dataclasses.replace(material.tlog_entries[0], **changes),)
    )


def test_v03_bundle_time_from_the_timestamp_authority_when_the_entry_has_no_set() -> None:
    material = _with_entry(_bundle_material(), signed_entry_timestamp=None, integrated_time=None)
    facts = _facts(verify_material(material, BUNDLE_TRUST, (KUBEWARDEN,)))
    assert facts.time_source == "timestamp-authority" and facts.log_entries[0].integrated_time is None
    # Inclusion alone (as with a Rekor v2 entry) proves no time: without the timestamp nothing does.
    untimed = dataclasses.replace(material, timestamps=())
    assert _failure(verify_material(untimed, BUNDLE_TRUST)).check == "timestamp"
    # With the log not required, the clock is all that is left: the certificate expired long ago.
    relaxed = dataclasses.replace(BUNDLE_TRUST, require_tlog=False)
    assert _failure(verify_material(untimed, relaxed)).check == "certificate-validity"


def test_v03_bundle_tampered_proofs_are_rejected() -> None:
    material = _bundle_material()
    proof = material.tlog_entries[0].inclusion_proof
    assert proof is not None
    swapped = dataclasses.replace(proof, hashes=(proof.hashes[1], proof.hashes[0], *proof.hashes[2:]))
    failure = _failure(verify_material(_with_entry(material, inclusion_proof=swapped), BUNDLE_TRUST))
    assert failure.check == "tlog" and "does not lead to the proof's root hash" in failure.reason
    assert proof.checkpoint is not None
    forged = proof.checkpoint.replace("\n1139201557\n", "\n1139201558\n")
    failure = _failure(
        verify_material(
            _with_entry(material, inclusion_proof=dataclasses.replace(proof, checkpoint=forged)), BUNDLE_TRUST
        )
    )
    assert failure.check == "tlog" and "checkpoint" in failure.reason
    restamped = dataclasses.replace(material, timestamped=b"other bytes")
    failure = _failure(verify_material(restamped, BUNDLE_TRUST))
    assert failure.check == "timestamp" and "Mismatch between messages" in failure.reason


def test_a_proof_without_checkpoint_counts_only_beside_a_set() -> None:
    """Bundles v0.1 may carry an inclusion proof without a checkpoint: the SET still vouches for the entry."""
    material = _bundle_material()
    proof = material.tlog_entries[0].inclusion_proof
    assert proof is not None
    bare = _with_entry(material, inclusion_proof=dataclasses.replace(proof, checkpoint=None))
    facts = _facts(verify_material(bare, BUNDLE_TRUST))
    assert not facts.log_entries[0].inclusion_proven and facts.time_source == "tlog"
    broken = dataclasses.replace(proof, checkpoint=None, hashes=proof.hashes[1:])
    assert (
        _failure(verify_material(_with_entry(material, inclusion_proof=broken), BUNDLE_TRUST)).check == "tlog"
    )
    unsigned = _with_entry(bare, signed_entry_timestamp=None, integrated_time=None)
    failure = _failure(verify_material(unsigned, BUNDLE_TRUST))
    assert failure.check == "tlog" and "no signed checkpoint" in failure.reason


def test_v03_bundle_tampered_payload_fails_the_signature() -> None:
    material = _bundle_material()
    assert isinstance(material.signed, SignedEnvelope)
    payload = material.signed.payload.replace(b"c811d58d", b"c811d58e")
    tampered = dataclasses.replace(material, signed=dataclasses.replace(material.signed, payload=payload))
    assert _failure(verify_material(tampered, BUNDLE_TRUST)).check == "signature"


PKI = VECTORS / "ci-byo-pki-rsa4096"


def _pki_material() -> SigningMaterial:
    annotations = json.loads((PKI / "annotations.json").read_text())["annotations"]
    return legacy_material((PKI / "payload.json").read_bytes(), annotations)


def test_private_pki_certificate_chain() -> None:
    root = x509.load_pem_x509_certificate((PKI / "pki-root.pem").read_bytes())
    own = TrustPolicy(public_good_root(), require_tlog=False, require_sct=False, certificate_roots=(root,))
    facts = _facts(verify_material(_pki_material(), own, (IdentityPolicy(subject="qiwan@redhat.com"),)))
    assert facts.identity is not None and facts.identity.subject_alternative_names == (
        "qiwan@redhat.com",
        "myhost.example.com",
    )
    assert facts.time_source == "current-time"
    fulcio = dataclasses.replace(own, certificate_roots=())
    assert _failure(verify_material(_pki_material(), fulcio)).check == "certificate-chain"
    other_root = x509.load_pem_x509_certificate((VECTORS / "_trust/fulcio-root-v1.pem").read_bytes())
    failure = _failure(
        verify_material(_pki_material(), dataclasses.replace(own, certificate_roots=(other_root,)))
    )
    assert failure.check == "certificate-chain" and "does not chain to the given root" in failure.reason
