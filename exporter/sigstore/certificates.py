"""Certificate chains: a signing certificate must chain to a trusted CA (a Fulcio CA of the trusted root, or
your own PKI's roots) *at the signing time*, and be fit for code signing.

Path building and RFC 5280 checks are ``cryptography``'s (the same verifier sigstore-python uses); what
differs is the extension policy. Fulcio certificates follow the Web PKI profile with a code-signing EKU.
Private PKIs are often older and laxer (roots without key usage, leaves without EKU, as Go's verifier that
cosign uses accepts): there a CA must still be a CA (basic constraints) and an EKU, when present, must allow
code signing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from exporter.sigstore.cache import BoundedCache
from exporter.sigstore.facts import VerificationFailure
from exporter.sigstore.trusted_root import CertificateAuthority

_ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")


def _code_signing_eku(
    _policy: Policy, _certificate: x509.Certificate, value: x509.ExtendedKeyUsage | None
) -> None:
    if value is not None and ExtendedKeyUsageOID.CODE_SIGNING not in value and _ANY_EKU not in value:
        raise ValueError("extended key usage does not allow code signing")


def _is_ca(_policy: Policy, _certificate: x509.Certificate, value: x509.BasicConstraints | None) -> None:
    if value is None or not value.ca:
        raise ValueError("not a CA (basic constraints)")


def _signs_certificates(_policy: Policy, _certificate: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError("key usage does not allow signing certificates")


def _fulcio_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    return (
        ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        ),
        ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, _code_signing_eku
        ),
    )


def _private_pki_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _signs_certificates),
        ExtensionPolicy.permit_all().may_be_present(
            x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing_eku
        ),
    )


def _leaf_usage_problem(leaf: x509.Certificate) -> str | None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.digital_signature else "its key usage does not allow digital signatures"


# Chain building is the costliest step of a keyless verification (several ECDSA P-384 checks) and the same
# certificates come back for every attestor, policy and replica of a workload. A verified path depends on the
# certificates and the extension policy, not on the time, except through validity periods: remember paths,
# and re-check only the validity periods for another signing time.
_paths: BoundedCache[bytes, tuple[x509.Certificate, ...]] = BoundedCache(1024)


def clear_chain_cache() -> None:
    """Forget verified certificate paths (benchmarks of cold verification, tests)."""
    _paths.clear()


def _path_key(
    leaf: x509.Certificate,
    roots: tuple[x509.Certificate, ...],
    intermediates: list[x509.Certificate],
    kind: str,
) -> bytes:
    digest = hashlib.sha256(kind.encode())
    for certificate in (leaf, *roots, *intermediates):
        digest.update(certificate.fingerprint(hashes.SHA256()))
    return digest.digest()


def _valid_at(path: tuple[x509.Certificate, ...], at: datetime) -> bool:
    return all(cert.not_valid_before_utc <= at <= cert.not_valid_after_utc for cert in path)


def _build(
    leaf: x509.Certificate,
    roots: tuple[x509.Certificate, ...],
    intermediates: list[x509.Certificate],
    at: datetime,
    kind: str,
) -> tuple[x509.Certificate, ...] | str:
    key = _path_key(leaf, roots, intermediates, kind)
    cached = _paths.get(key)
    if cached is not None and _valid_at(cached, at):
        return cached
    ca_policy, ee_policy = _fulcio_policies() if kind == "fulcio" else _private_pki_policies()
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(at)
        .max_chain_depth(8)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        path = tuple(verifier.verify(leaf, intermediates).chain)
    except (VerificationError, ValueError) as exc:
        return str(exc)
    _paths.put(key, path)
    return path


def _describe(leaf: x509.Certificate) -> str:
    return (
        f"certificate {leaf.subject.rfc4514_string() or 'with empty subject'} (serial {leaf.serial_number:x})"
    )


def _leaf_problem(leaf: x509.Certificate, at: datetime) -> VerificationFailure | None:
    """The signing certificate itself: valid at the signing time, and allowed to sign."""
    if not at.tzinfo:
        raise ValueError("signing time must be timezone-aware")
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        return VerificationFailure(
            "certificate-validity",
            f"{_describe(leaf)} was not valid at the signing time {at.isoformat()} (valid "
            f"{leaf.not_valid_before_utc.isoformat()} to {leaf.not_valid_after_utc.isoformat()})",
        )
    usage = _leaf_usage_problem(leaf)
    if usage is not None:
        return VerificationFailure("certificate-chain", f"{_describe(leaf)}: {usage}")
    return None


def verify_fulcio_chain(
    leaf: x509.Certificate,
    carried: tuple[x509.Certificate, ...],
    authorities: tuple[CertificateAuthority, ...],
    at: datetime,
) -> tuple[x509.Certificate, ...] | VerificationFailure:
    """The verified chain (leaf first, root last) to a CA whose validity window covers ``at``, or why none."""
    problem = _leaf_problem(leaf, at)
    if problem is not None:
        return problem
    current = [ca for ca in authorities if ca.valid.covers(at)]
    if not current:
        return VerificationFailure(
            "certificate-chain",
            f"no trusted Fulcio CA was valid at the signing time {at.isoformat()} (check the trusted root)",
        )
    problems = []
    for authority in current:
        chain = _build(leaf, (authority.root,), [*authority.chain[:-1], *carried], at, "fulcio")
        if isinstance(chain, tuple):
            return chain
        problems.append(f"{authority.uri or authority.root.subject.rfc4514_string()}: {chain}")
    return VerificationFailure(
        "certificate-chain",
        f"{_describe(leaf)} does not chain to a trusted Fulcio CA ({'; '.join(problems)})",
    )


def verify_private_chain(
    leaf: x509.Certificate,
    carried: tuple[x509.Certificate, ...],
    roots: tuple[x509.Certificate, ...],
    intermediates: tuple[x509.Certificate, ...],
    at: datetime,
) -> tuple[x509.Certificate, ...] | VerificationFailure:
    """The verified chain to one of your own ``roots`` (Kyverno ``certificates``/``roots``), or why none."""
    problem = _leaf_problem(leaf, at)
    if problem is not None:
        return problem
    chain = _build(leaf, roots, [*intermediates, *carried], at, "private")
    if isinstance(chain, str):
        return VerificationFailure(
            "certificate-chain", f"{_describe(leaf)} does not chain to the given root certificates ({chain})"
        )
    return chain
