"""cosign and Sigstore signature verification: who may sign (attestors), how (options), the pipeline that
finds, parses and checks signatures and attestations, and its outcomes as values.

Entry points: :func:`verify_image` and :func:`verify_attestations` (fetch and decide), and
:func:`verify_found`/:func:`verify_found_attestations` (decide on already discovered artifacts). Trust
material checks (certificate chains, SCTs, Rekor entries, timestamps, identities) live in
``exporter.sigstore``; finding signatures in a registry in ``exporter.cosign.discovery``.
"""

from exporter.cosign.attestors import (
    AttestorError,
    AttestorSpec,
    CertificateAttestor,
    KeyAttestor,
    KeylessAttestor,
)
from exporter.cosign.options import VerificationOptions
from exporter.cosign.outcomes import (
    Format,
    Invalid,
    Rejection,
    Unsigned,
    VerificationError,
    VerificationOutcome,
    Verified,
    VerifiedSignature,
    VerifiedStatement,
)
from exporter.cosign.pipeline import (
    verify_attestations,
    verify_found,
    verify_found_attestations,
    verify_image,
)
from exporter.sigstore import IdentityPolicy
from exporter.sigstore.keys import KeyLoadError, TrustedKey, load_public_key, load_public_keys

__all__ = [
    "AttestorError",
    "AttestorSpec",
    "CertificateAttestor",
    "Format",
    "IdentityPolicy",
    "Invalid",
    "KeyAttestor",
    "KeyLoadError",
    "KeylessAttestor",
    "Rejection",
    "TrustedKey",
    "Unsigned",
    "VerificationError",
    "VerificationOptions",
    "VerificationOutcome",
    "Verified",
    "VerifiedSignature",
    "VerifiedStatement",
    "load_public_key",
    "load_public_keys",
    "verify_attestations",
    "verify_found",
    "verify_found_attestations",
    "verify_image",
]
