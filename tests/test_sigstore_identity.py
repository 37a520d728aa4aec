"""Certificate identities: SANs, OIDC issuer and Fulcio extensions (old and new OIDs), matched exactly or by
Go regular expressions (unanchored unless anchored), on real Fulcio certificates and minted ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from exporter.sigstore import IdentityPolicy, IdentityPolicyError, validate_identity_policy
from exporter.sigstore.identity import certificate_identity, compile_go_regexp, match_identity

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
GITHUB = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"


def _utf8(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _certificate(san: x509.GeneralName, extensions: dict[str, bytes]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
    )
    for oid, value in extensions.items():
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier(oid), value), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def _github_certificate(*, old: bool, new: bool) -> x509.Certificate:
    extensions: dict[str, bytes] = {}
    if old:
        extensions |= {
            "1.3.6.1.4.1.57264.1.1": GITHUB.encode(),
            "1.3.6.1.4.1.57264.1.2": b"push",
            "1.3.6.1.4.1.57264.1.3": b"a" * 40,
            "1.3.6.1.4.1.57264.1.4": b"Release",
            "1.3.6.1.4.1.57264.1.5": b"acme/app",
            "1.3.6.1.4.1.57264.1.6": b"refs/tags/v1",
        }
    if new:
        extensions |= {
            "1.3.6.1.4.1.57264.1.8": _utf8(GITHUB),
            "1.3.6.1.4.1.57264.1.12": _utf8("https://github.com/acme/app"),
            "1.3.6.1.4.1.57264.1.13": _utf8("a" * 40),
            "1.3.6.1.4.1.57264.1.14": _utf8("refs/tags/v1"),
            "1.3.6.1.4.1.57264.1.20": _utf8("push"),
            "1.3.6.1.4.1.57264.1.11": _utf8("github-hosted"),
        }
    return _certificate(x509.UniformResourceIdentifier(WORKFLOW), extensions)


def _check(certificate: x509.Certificate, policy: IdentityPolicy) -> str | None:
    failure = match_identity(certificate, certificate_identity(certificate), policy)
    return None if failure is None else failure.reason


@pytest.mark.skipif(not VECTORS.is_dir(), reason="interop vectors not present")
def test_real_fulcio_certificates() -> None:
    cert = x509.load_pem_x509_certificate((VECTORS / "ci-keyless-fulcio-rekor-2023/cert.pem").read_bytes())
    identity = certificate_identity(cert)
    assert identity.subject == "mitr@redhat.com"
    assert identity.issuer == "https://github.com/login/oauth"
    assert (
        _check(cert, IdentityPolicy(subject="mitr@redhat.com", issuer="https://github.com/login/oauth"))
        is None
    )
    # cosign's wording, which Kyverno passes on, then what the policy expected.
    assert _check(cert, IdentityPolicy(subject="mitr@redhat.co")) == (
        "none of the expected identities matched what was in the certificate, got subjects "
        "[mitr@redhat.com] with issuer https://github.com/login/oauth (expected subject=mitr@redhat.co)"
    )
    bundle = x509.load_pem_x509_certificate(
        b"-----BEGIN CERTIFICATE-----"
        + (VECTORS / "rs-keyless-rekord-2021/cert.pem").read_bytes().split(b"-----BEGIN CERTIFICATE-----")[1]
    )
    # 2021 Fulcio certificates predate the issuer extension: an issuer requirement cannot be met.
    assert certificate_identity(bundle).issuer is None
    assert "with issuer  (expected issuer=https://accounts.google.com)" in str(
        _check(bundle, IdentityPolicy(issuer="https://accounts.google.com"))
    )


@pytest.mark.parametrize(("old", "new"), [(True, False), (False, True), (True, True)])
def test_github_extensions_old_and_new_oids(old: bool, new: bool) -> None:
    cert = _github_certificate(old=old, new=new)
    identity = certificate_identity(cert)
    assert identity.issuer == GITHUB
    assert identity.extensions["githubWorkflowRepository"] == "acme/app"
    policy = IdentityPolicy(
        subject=WORKFLOW,
        issuer=GITHUB,
        extensions={
            "githubWorkflowTrigger": "push",
            "githubWorkflowSha": "a" * 40,
            "githubWorkflowRepository": "acme/app",
            "githubWorkflowRef": "refs/tags/v1",
        },
    )
    assert _check(cert, policy) is None
    wrong = IdentityPolicy(subject=WORKFLOW, extensions={"githubWorkflowRef": "refs/heads/main"})
    assert "githubWorkflowRef is 'refs/tags/v1', expected 'refs/heads/main'" in str(_check(cert, wrong))


def test_workflow_name_and_new_extensions_by_name_or_oid() -> None:
    cert = _github_certificate(old=True, new=True)
    assert _check(cert, IdentityPolicy(extensions={"githubWorkflowName": "Release"})) is None
    assert _check(cert, IdentityPolicy(extensions={"runnerEnvironment": "github-hosted"})) is None
    assert _check(cert, IdentityPolicy(extensions={"1.3.6.1.4.1.57264.1.11": "github-hosted"})) is None
    assert _check(cert, IdentityPolicy(extensions={"1.3.6.1.4.1.57264.1.11": "self-hosted"})) is not None
    only_new = _github_certificate(old=False, new=True)
    # The workflow name has no successor extension: a certificate without the old OID cannot match it.
    assert "githubWorkflowName is None" in str(
        _check(only_new, IdentityPolicy(extensions={"githubWorkflowName": "Release"}))
    )


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("acme", WORKFLOW, True),  # unanchored: anywhere in the value
        ("^acme", WORKFLOW, False),
        (r"^https://github\.com/acme/.*@refs/tags/v\d+$", WORKFLOW, True),
        (
            r"^https://github\.com/acme/app/$",
            "https://github.com/acme/app/\n",
            False,
        ),  # Go's $ is end of text
        (r"app/\z", "https://github.com/acme/app/", True),
        (r"^\w+$", "é", False),  # Go's \w is ASCII
        ("(?i)ACME", WORKFLOW, True),
        ("(?m)^x$", "a\nx\nb", True),
    ],
)
def test_go_regexp_semantics(pattern: str, value: str, matches: bool) -> None:
    assert (compile_go_regexp(pattern).search(value) is not None) is matches


def test_subject_regexp_and_issuer_regexp_on_a_certificate() -> None:
    cert = _github_certificate(old=False, new=True)
    assert (
        _check(
            cert,
            IdentityPolicy(subject_regexp=r"^https://github\.com/acme/", issuer_regexp="githubusercontent"),
        )
        is None
    )
    wrong_subject = _check(cert, IdentityPolicy(subject_regexp=r"^https://github\.com/evil/"))
    assert f"got subjects [{WORKFLOW}] with issuer {GITHUB} (expected subjectRegExp=" in str(wrong_subject)
    wrong_issuer = _check(cert, IdentityPolicy(issuer_regexp=r"^https://accounts\.google\.com$"))
    assert str(wrong_issuer).startswith("none of the expected identities matched what was in the certificate")


def test_other_name_san_is_a_subject() -> None:
    other = x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), _utf8("alice"))
    cert = _certificate(other, {"1.3.6.1.4.1.57264.1.8": _utf8("https://issuer.example")})
    assert certificate_identity(cert).subject == "alice"
    assert _check(cert, IdentityPolicy(subject="alice", issuer="https://issuer.example")) is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (IdentityPolicy(subject_regexp="("), "subjectRegExp: '(' is not a valid regular expression"),
        (IdentityPolicy(issuer_regexp="(?=x)"), "issuerRegExp"),
        (IdentityPolicy(extensions={"githubWorkflowBranch": "main"}), "neither a Fulcio extension name"),
    ],
)
def test_invalid_policies_are_refused_at_load(policy: IdentityPolicy, message: str) -> None:
    with pytest.raises(IdentityPolicyError) as raised:
        validate_identity_policy(policy)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("policy", "accepted"),
    [
        # Kyverno's documented examples: wildcards in subject (and issuer, additionalExtensions)
        (
            IdentityPolicy(
                subject="https://github.com/acme/app/.github/workflows/*@refs/tags/*", wildcards=True
            ),
            True,
        ),
        (
            IdentityPolicy(
                subject="https://github.com/acme/*", issuer="https://token.actions.*", wildcards=True
            ),
            True,
        ),
        (IdentityPolicy(subject="https://github.com/other/*", wildcards=True), False),
        (IdentityPolicy(subject="*/release.yml@refs/tags/v?", wildcards=True), True),
        (IdentityPolicy(subject="*/release.yml@refs/tags/v??", wildcards=True), False),  # whole value
        (IdentityPolicy(extensions={"githubWorkflowRef": "refs/tags/*"}, wildcards=True), True),
        (IdentityPolicy(extensions={"githubWorkflowRef": "refs/heads/*"}, wildcards=True), False),
        # cosign's flags are exact: a star is a star
        (IdentityPolicy(subject="https://github.com/acme/*"), False),
        (IdentityPolicy(extensions={"githubWorkflowRef": "refs/tags/*"}), False),
    ],
)
def test_kyverno_wildcards(policy: IdentityPolicy, accepted: bool) -> None:
    cert = _github_certificate(old=True, new=True)
    assert (_check(cert, policy) is None) is accepted


def test_wildcards_on_email_subjects() -> None:
    cert = _certificate(
        x509.RFC822Name("alice@nirmata.com"), {"1.3.6.1.4.1.57264.1.8": _utf8("https://accounts.google.com")}
    )
    assert (
        _check(
            cert,
            IdentityPolicy(subject="*@nirmata.com", issuer="https://accounts.google.com", wildcards=True),
        )
        is None
    )
    assert _check(cert, IdentityPolicy(subject="*@example.com", wildcards=True)) is not None
