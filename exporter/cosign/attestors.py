"""Who may sign: the three kinds of attestor a policy or the CLI names, as typed, validated values.

Kyverno's ``attestors[].entries[]`` are ``keys``, ``certificates`` or ``keyless``; cosign's CLI has the same
three (``--key``, ``--cert``/``--cert-chain``, ``--certificate-identity``…). Each attestor has a ``name`` by
which outcomes say who signed (a policy path such as ``.attestors[0].entries[1]``, or a key file name).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exporter.cosign.formats.fields import FormatError
from exporter.cosign.formats.legacy import load_certificates
from exporter.sigstore import IdentityPolicy, IdentityPolicyError, validate_identity_policy
from exporter.sigstore.keys import HASH_NAMES, HashName, KeyLoadError, TrustedKey, load_public_key


class AttestorError(ValueError):
    """An attestor that can never verify anything (no key, bad regexp…); says which field to fix."""


def _validate_pem(name: str, field: str, pem: str | None) -> None:
    """Certificates a policy names must parse at load, not fail every verification later."""
    if pem is None:
        return
    try:
        load_certificates(pem, f"{name}: {field}")
    except FormatError as exc:
        raise AttestorError(str(exc)) from None


@lru_cache(maxsize=64)
def pinned_certificate(pem: str, name: str) -> tuple[x509.Certificate, TrustedKey]:
    """A certificate attestor's certificate (the first in ``pem``) and its public key as a trusted key."""
    try:
        certificate = load_certificates(pem, f"{name}: certificate")[0]
        key = certificate.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return certificate, load_public_key(key, name)
    except (FormatError, KeyLoadError, UnsupportedAlgorithm, ValueError) as exc:
        raise AttestorError(
            str(exc) if isinstance(exc, FormatError) else f"{name}: certificate: {exc}"
        ) from None


def _validate_identities(name: str, identities: tuple[IdentityPolicy, ...]) -> None:
    for identity in identities:
        try:
            validate_identity_policy(identity)
        except IdentityPolicyError as exc:
            raise AttestorError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class KeyAttestor:
    """Signatures made with one of ``keys`` (Kyverno ``keys``, cosign ``--key``).

    ``hash_algorithm`` is what the signer hashed with (cosign: SHA-256 whatever the key; Kyverno's
    ``signatureAlgorithm``). ``require_reference`` also requires a simple-signing payload's
    ``docker-reference`` to name the image's repository.
    """

    name: str
    keys: tuple[TrustedKey, ...]
    hash_algorithm: HashName = "sha256"
    require_reference: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise AttestorError(f"{self.name}: a key attestor needs at least one public key")
        if self.hash_algorithm not in HASH_NAMES:
            raise AttestorError(
                f"{self.name}: hash algorithm {self.hash_algorithm!r} is not one of {', '.join(HASH_NAMES)}"
            )


@dataclass(frozen=True)
class CertificateAttestor:
    """Signatures by a certificate of the user's own PKI (Kyverno ``certificates``, cosign ``--cert``).

    ``certificate`` (PEM) pins the exact signing certificate; ``chain`` (PEM, intermediates then root) is what
    a signature's own certificate must chain to. At least one is needed; with only ``chain`` any certificate
    issued under it signs. ``identities``, when given, constrain the certificate's SAN/issuer as for
    keyless (any one may match).
    """

    name: str
    certificate: str | None = None
    chain: str | None = None
    identities: tuple[IdentityPolicy, ...] = ()

    def __post_init__(self) -> None:
        if not (self.certificate or self.chain):
            raise AttestorError(f"{self.name}: a certificate attestor needs a certificate, a chain or both")
        if self.certificate is not None:
            pinned_certificate(self.certificate, self.name)
        _validate_pem(self.name, "certificate chain", self.chain)
        _validate_identities(self.name, self.identities)


@dataclass(frozen=True)
class KeylessAttestor:
    """Signatures by a short-lived Fulcio certificate whose identity is one of ``identities``.

    The certificate must chain to a Fulcio CA of the trusted root (or to ``roots``, PEM, when given, as
    Kyverno's ``keyless.roots``), carry a verifying SCT unless SCTs are ignored, and have been valid at the
    signing time proven by a Rekor entry or an RFC 3161 timestamp.
    """

    name: str
    identities: tuple[IdentityPolicy, ...]
    roots: str | None = None

    def __post_init__(self) -> None:
        if not self.identities:
            raise AttestorError(
                f"{self.name}: a keyless attestor needs an identity (subject or subjectRegExp, issuer or "
                "issuerRegExp)"
            )
        _validate_pem(self.name, "roots", self.roots)
        _validate_identities(self.name, self.identities)
        for identity in self.identities:
            if (identity.subject, identity.subject_regexp, identity.issuer, identity.issuer_regexp) == (
                None,
            ) * 4:
                raise AttestorError(
                    f"{self.name}: an identity needs subject/subjectRegExp or issuer/issuerRegExp; "
                    "accepting any Fulcio certificate would accept anyone"
                )


AttestorSpec = KeyAttestor | CertificateAttestor | KeylessAttestor
