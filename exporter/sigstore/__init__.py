"""Sigstore trust: who signed and when, established offline from a signature's material.

``verify_material(SigningMaterial, TrustPolicy, identities) -> SignerFacts | VerificationFailure`` is the
entry point; the trust material is a ``trusted_root.json`` (``load_trusted_root``, or the shipped
``public_good_root()``). Light imports only (``cryptography``, ``rfc3161-client``): ``trustwatch verify``
starts fast.
"""

from exporter.sigstore.facts import (
    CertificateIdentity,
    FailedCheck,
    LogEntryFacts,
    SignerFacts,
    TimeSource,
    VerificationFailure,
)
from exporter.sigstore.identity import IdentityPolicyError, validate_identity_policy
from exporter.sigstore.material import (
    InclusionProof,
    SignedEnvelope,
    SignedMessage,
    SigningMaterial,
    TlogEntry,
)
from exporter.sigstore.policy import IdentityPolicy, TrustPolicy
from exporter.sigstore.trusted_root import (
    TrustedRoot,
    TrustedRootError,
    load_trusted_root,
    parse_trusted_root,
    public_good_root,
)
from exporter.sigstore.verify import clear_verification_caches, verify_material

__all__ = [
    "CertificateIdentity",
    "FailedCheck",
    "IdentityPolicy",
    "IdentityPolicyError",
    "InclusionProof",
    "LogEntryFacts",
    "SignedEnvelope",
    "SignedMessage",
    "SignerFacts",
    "SigningMaterial",
    "TimeSource",
    "TlogEntry",
    "TrustPolicy",
    "TrustedRoot",
    "TrustedRootError",
    "VerificationFailure",
    "clear_verification_caches",
    "load_trusted_root",
    "parse_trusted_root",
    "public_good_root",
    "validate_identity_policy",
    "verify_material",
]
