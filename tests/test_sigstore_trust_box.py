"""The trust checks against a Sigstore of our own (tests/support/sigstore_box.py): good keyless signatures in
every shape (DSSE and message bundles, Rekor v1 and v2, RFC 3161 timestamps, legacy .sig layers) and one
negative per broken proof or identity. sigstore-python, the reference verifier, must agree on every bundle:
whatever verify_material accepts it accepts, and whatever it rejects we reject."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.sigstore import (
    FailedCheck,
    IdentityPolicy,
    SignerFacts,
    TrustPolicy,
    VerificationFailure,
    load_trusted_root,
    verify_material,
)
from exporter.sigstore.keys import load_public_key
from tests.support.reference_verifier import reference_verify
from tests.support.sigstore_box import (
    GITHUB_ISSUER,
    NO_FAULTS,
    Faults,
    GitHubWorkflow,
    Identity,
    LogKind,
    SignedBundle,
    SigstoreBox,
)
from tests.support.sigstore_material import bundle_material, legacy_material

IMAGE = "sha256:" + "ab" * 32
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
GITHUB = GitHubWorkflow(repository="acme/app", ref="refs/tags/v1.2.0")
SIGNER = Identity(WORKFLOW, GITHUB_ISSUER, github=GITHUB)
EXACT = IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER)


@pytest.fixture(scope="module")
def root_path(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


@pytest.fixture(scope="module")
def trust(root_path: Path) -> TrustPolicy:
    return TrustPolicy(load_trusted_root(root_path))


def _ours(
    signed: SignedBundle, trust: TrustPolicy, *identities: IdentityPolicy
) -> SignerFacts | VerificationFailure:
    return verify_material(bundle_material(signed.document), trust, identities or (EXACT,))


def _theirs(signed: SignedBundle, root_path: Path, who: Identity = SIGNER) -> bool:
    artifact = IMAGE.encode() if "messageSignature" in signed.document else None
    outcome = reference_verify(signed.json, root_path, identity=who.san, issuer=who.issuer, artifact=artifact)
    return outcome.accepted


def _bundle(
    box: SigstoreBox,
    kind: str,
    *,
    log: LogKind = "rekor-v1",
    timestamp: bool = False,
    faults: Faults = NO_FAULTS,
    who: Identity = SIGNER,
) -> SignedBundle:
    if kind == "message":
        return box.message_bundle(IMAGE.encode(), who, log=log, timestamp=timestamp, faults=faults)
    return box.image_bundle(IMAGE, who, log=log, timestamp=timestamp, faults=faults)


GOOD: list[tuple[str, LogKind, bool, str]] = [
    ("dsse", "rekor-v1", False, "tlog"),
    ("dsse", "rekor-v1", True, "tlog"),
    ("dsse", "rekor-v2", True, "timestamp-authority"),
    ("dsse", "none", True, "timestamp-authority"),
    ("message", "rekor-v1", False, "tlog"),
    ("message", "rekor-v2", True, "timestamp-authority"),
]


@pytest.mark.parametrize("case", GOOD, ids=["-".join(map(str, case[:3])) for case in GOOD])
def test_good_keyless_bundles_verify_and_the_reference_agrees(
    sigstore_box: SigstoreBox, trust: TrustPolicy, root_path: Path, case: tuple[str, LogKind, bool, str]
) -> None:
    kind, log, timestamp, source = case
    signed = _bundle(sigstore_box, kind, log=log, timestamp=timestamp)
    policy = trust if log != "none" else dataclasses.replace(trust, require_tlog=False)
    facts = _ours(signed, policy)
    assert isinstance(facts, SignerFacts), facts
    assert facts.time_source == source and facts.signing_time == signed.signing_time
    assert facts.identity is not None and facts.identity.subject == WORKFLOW
    assert facts.identity.extensions["githubWorkflowRepository"] == "acme/app"
    if log != "none":
        entry = facts.log_entries[0]
        assert entry.inclusion_proven and signed.log_entry is not None
        assert entry.log_index == signed.log_entry.log_index
        assert (entry.integrated_time is None) is (log == "rekor-v2")
    # sigstore-python has no "ignore the log" mode: it only judges bundles with a log entry.
    assert _theirs(signed, root_path) or log == "none"


NEGATIVE: list[tuple[str, LogKind, Faults, bool, FailedCheck]] = [
    ("expired with a log time", "rekor-v1", Faults(expired_certificate=True), False, "certificate-validity"),
    ("expired with a TSA time", "rekor-v2", Faults(expired_certificate=True), True, "certificate-validity"),
    ("no SCT", "rekor-v1", Faults(no_sct=True), False, "sct"),
    ("SCT of an untrusted CT log", "rekor-v1", Faults(untrusted_sct=True), False, "sct"),
    ("bad SET", "rekor-v1", Faults(bad_set=True), False, "tlog"),
    ("proof not matching the checkpoint", "rekor-v1", Faults(checkpoint_mismatch=True), False, "tlog"),
    ("proof not matching the checkpoint (v2)", "rekor-v2", Faults(checkpoint_mismatch=True), True, "tlog"),
    ("tampered DSSE payload", "rekor-v1", Faults(tampered_payload=True), False, "signature"),
    ("untrusted CA", "rekor-v1", Faults(untrusted_ca=True), False, "certificate-chain"),
    ("entry of another signature", "rekor-v1", Faults(body_mismatch=True), False, "tlog"),
    ("entry of another signature (v2)", "rekor-v2", Faults(body_mismatch=True), True, "tlog"),
    ("Rekor v2 without a timestamp", "rekor-v2", NO_FAULTS, False, "timestamp"),
    ("Rekor v2 with a timestamp of other bytes", "rekor-v2", Faults(bad_timestamp=True), True, "timestamp"),
]


@pytest.mark.parametrize("negative", NEGATIVE, ids=[negative[0] for negative in NEGATIVE])
def test_broken_proofs_are_rejected_by_both_verifiers(
    sigstore_box: SigstoreBox,
    trust: TrustPolicy,
    root_path: Path,
    negative: tuple[str, LogKind, Faults, bool, FailedCheck],
) -> None:
    case, log, faults, timestamp, check = negative
    signed = _bundle(sigstore_box, "dsse", log=log, timestamp=timestamp, faults=faults)
    failure = _ours(signed, trust)
    assert isinstance(failure, VerificationFailure), case
    assert failure.check == check, failure.reason
    assert not _theirs(signed, root_path)


def test_ignore_sct_accepts_a_certificate_without_one(sigstore_box: SigstoreBox, trust: TrustPolicy) -> None:
    signed = _bundle(sigstore_box, "dsse", faults=Faults(no_sct=True))
    facts = _ours(signed, dataclasses.replace(trust, require_sct=False))
    assert isinstance(facts, SignerFacts) and not facts.sct_verified


def test_rekor_url_keeps_only_the_roots_log_at_that_url(
    sigstore_box: SigstoreBox, trust: TrustPolicy
) -> None:
    """Kyverno ``rekor.url``: an entry counts only from the trusted root's log at that URL (scheme, host and
    path compared, a trailing slash dropped); with explicit Rekor keys the URL only names the log."""
    v1, v2 = sigstore_box.rekor.base_url, sigstore_box.rekor_v2.base_url
    signed = _bundle(sigstore_box, "dsse")
    for url in (v1, v1.upper().replace("HTTPS", "https") + "/"):
        facts = _ours(signed, dataclasses.replace(trust, rekor_url=url))
        assert isinstance(facts, SignerFacts) and facts.log_entries[0].log_url == v1, url
    other_log = _ours(signed, dataclasses.replace(trust, rekor_url=v2))
    assert isinstance(other_log, VerificationFailure) and other_log.check == "tlog"
    assert "not trusted" in other_log.reason
    absent = _ours(signed, dataclasses.replace(trust, rekor_url="https://rekor.elsewhere.test"))
    assert isinstance(absent, VerificationFailure) and absent.check == "tlog"
    assert absent.reason == (
        "no transparency log at https://rekor.elsewhere.test in the trusted root; give rekor.pubkey or a "
        "trusted root that lists it"
    )
    key = load_public_key(sigstore_box.rekor_public_pem, "rekor.pub")
    named = dataclasses.replace(trust, rekor_keys=(key,), rekor_url="https://rekor.private.test")
    facts = _ours(signed, named)
    assert isinstance(facts, SignerFacts) and facts.log_entries[0].log_url == "https://rekor.private.test"


def test_expired_certificate_without_any_log_or_timestamp(
    sigstore_box: SigstoreBox, trust: TrustPolicy
) -> None:
    """No proof of time: only the clock is left, and a short-lived certificate is long expired by then."""
    signed = _bundle(sigstore_box, "dsse", log="none", faults=Faults(expired_certificate=True))
    failure = _ours(signed, dataclasses.replace(trust, require_tlog=False))
    assert isinstance(failure, VerificationFailure) and failure.check == "certificate-validity"
    assert "current time was used" in failure.reason
    required = _ours(signed, trust)
    assert isinstance(required, VerificationFailure) and required.check == "tlog"


def test_legacy_sig_layer_with_certificate_chain_bundle_and_timestamp(
    sigstore_box: SigstoreBox, trust: TrustPolicy
) -> None:
    legacy = sigstore_box.legacy_signature(IMAGE, "registry.test/acme/app", SIGNER, timestamp=True)
    facts = verify_material(legacy_material(legacy.payload, legacy.annotations), trust, (EXACT,))
    assert isinstance(facts, SignerFacts), facts
    assert facts.time_source == "tlog" and len(facts.timestamp_times) == 1
    assert legacy.log_entry is not None and facts.log_entries[0].log_index == legacy.log_entry.log_index
    bad = sigstore_box.legacy_signature(IMAGE, "registry.test/acme/app", SIGNER, faults=Faults(bad_set=True))
    failure = verify_material(legacy_material(bad.payload, bad.annotations), trust, (EXACT,))
    assert isinstance(failure, VerificationFailure) and failure.check == "tlog"


@pytest.mark.parametrize(
    ("policy", "accepted"),
    [
        (IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER), True),
        (IdentityPolicy(subject=WORKFLOW + "x", issuer=GITHUB_ISSUER), False),
        (IdentityPolicy(subject=WORKFLOW, issuer="https://accounts.google.com"), False),
        (IdentityPolicy(subject_regexp="acme/app", issuer_regexp="githubusercontent"), True),  # unanchored
        (IdentityPolicy(subject_regexp="^acme/app", issuer=GITHUB_ISSUER), False),  # anchored at the start
        (
            IdentityPolicy(
                subject_regexp=r"^https://github\.com/acme/.+@refs/tags/v1\.", issuer=GITHUB_ISSUER
            ),
            True,
        ),
        (IdentityPolicy(subject_regexp=r"^https://github\.com/acme/app$", issuer=GITHUB_ISSUER), False),
        (IdentityPolicy(subject_regexp="https://github.com/acme/app/", issuer_regexp="^https://token"), True),
        (
            IdentityPolicy(
                subject=WORKFLOW, issuer_regexp=r"^https://token\.actions\.githubusercontent\.com$"
            ),
            True,
        ),
        (IdentityPolicy(subject=WORKFLOW, issuer_regexp=r"\.com/$"), False),
        (IdentityPolicy(subject=WORKFLOW, extensions={"githubWorkflowRef": "refs/tags/v1.2.0"}), True),
        (IdentityPolicy(subject=WORKFLOW, extensions={"githubWorkflowRef": "refs/heads/main"}), False),
        (
            IdentityPolicy(
                subject=WORKFLOW,
                extensions={"githubWorkflowTrigger": "push", "githubWorkflowName": "Release"},
            ),
            True,
        ),
        (
            IdentityPolicy(
                subject=WORKFLOW, extensions={"sourceRepositoryURI": "https://github.com/acme/app"}
            ),
            True,
        ),
    ],
)
def test_identity_policies_on_a_keyless_bundle(
    sigstore_box: SigstoreBox, trust: TrustPolicy, policy: IdentityPolicy, accepted: bool
) -> None:
    signed = _bundle(sigstore_box, "dsse")
    result = _ours(signed, trust, policy)
    assert isinstance(result, SignerFacts) is accepted, result
    if not accepted:
        assert isinstance(result, VerificationFailure) and result.check == "identity"


@pytest.mark.parametrize("oids", ["v1", "v2", "both"])
def test_issuer_and_github_extensions_in_old_and_new_encodings(
    sigstore_box: SigstoreBox, trust: TrustPolicy, root_path: Path, oids: Literal["v1", "v2", "both"]
) -> None:
    who = dataclasses.replace(SIGNER, issuer_oids=oids)
    signed = _bundle(sigstore_box, "dsse", who=who)
    wanted = IdentityPolicy(
        subject=WORKFLOW,
        issuer=GITHUB_ISSUER,
        extensions={
            "githubWorkflowTrigger": "push",
            "githubWorkflowSha": GITHUB.sha,
            "githubWorkflowRepository": "acme/app",
            "githubWorkflowRef": "refs/tags/v1.2.0",
        },
    )
    facts = _ours(signed, trust, wanted)
    assert isinstance(facts, SignerFacts), facts
    # sigstore-python reads the issuer from the old OID only: it agrees wherever that one is present.
    assert _theirs(signed, root_path, who) is (oids != "v2")


def test_a_signature_from_another_sigstore_is_not_trusted(trust: TrustPolicy) -> None:
    stranger = SigstoreBox(seed="another deployment")
    signed = stranger.image_bundle(IMAGE, SIGNER)
    failure = _ours(signed, trust)
    assert isinstance(failure, VerificationFailure) and failure.check == "tlog"
    assert "not trusted" in failure.reason


def test_signing_time_outside_the_roots_validity_windows(
    sigstore_box: SigstoreBox, trust: TrustPolicy
) -> None:
    """A log entry integrated before the trusted root's CA and log keys were valid proves nothing."""
    early = sigstore_box.valid_from - datetime.timedelta(hours=1)
    signed = sigstore_box.image_bundle(IMAGE, SIGNER, at=early)
    failure = _ours(signed, trust)
    assert isinstance(failure, VerificationFailure) and failure.check == "tlog"
    assert "not trusted at the integrated time" in failure.reason


def test_more_material_than_allowed_is_refused(sigstore_box: SigstoreBox, trust: TrustPolicy) -> None:
    material = bundle_material(_bundle(sigstore_box, "dsse").document)
    flood = dataclasses.replace(material, tlog_entries=material.tlog_entries * 9)
    failure = verify_material(flood, trust, (EXACT,))
    assert isinstance(failure, VerificationFailure) and "more than 8" in failure.reason
    twice = dataclasses.replace(material, timestamps=(b"x", b"x"))
    failure = verify_material(twice, trust, (EXACT,))
    assert isinstance(failure, VerificationFailure) and failure.check == "timestamp"


def test_key_signed_bundles_bind_the_log_entry_to_the_key(
    sigstore_box: SigstoreBox, trust: TrustPolicy
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    trusted = load_public_key(pem, "cosign.pub")
    for log in ("rekor-v1", "rekor-v2"):
        signed = sigstore_box.image_bundle(IMAGE, key, log=log, timestamp=log == "rekor-v2")
        facts = verify_material(bundle_material(signed.document, public_key=trusted), trust)
        assert isinstance(facts, SignerFacts), facts
        assert facts.identity is None and facts.log_entries[0].inclusion_proven
        with_identity = verify_material(bundle_material(signed.document, public_key=trusted), trust, (EXACT,))
        assert isinstance(with_identity, VerificationFailure) and with_identity.check == "identity"
    other = load_public_key(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "other.pub",
    )
    failure = verify_material(bundle_material(signed.document, public_key=other), trust)
    assert isinstance(failure, VerificationFailure) and failure.check == "signature"


def test_a_timestamp_that_does_not_verify_fails_even_beside_a_good_log_entry(
    sigstore_box: SigstoreBox, trust: TrustPolicy, root_path: Path
) -> None:
    """Stricter than sigstore-python, which skips a bad timestamp when the log entry gives a time: a proof
    that does not verify is a sign of tampering, never something to ignore."""
    signed = _bundle(sigstore_box, "dsse", timestamp=True, faults=Faults(bad_timestamp=True))
    failure = _ours(signed, trust)
    assert isinstance(failure, VerificationFailure) and failure.check == "timestamp"
    assert _theirs(signed, root_path)
