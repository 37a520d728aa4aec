"""The one entry point: decide whether a signature's material establishes who signed and when.

Order matters for the messages users see: the signature itself, then the proofs of time (log entries,
timestamps), the certificate chain at the proven signing time, the SCT, and only then the identity (a wrong
identity on an untrusted certificate is reported as the untrusted certificate it is).
"""

from __future__ import annotations

from datetime import datetime

from exporter.sigstore.facts import SignerFacts, VerificationFailure
from exporter.sigstore.material import SigningMaterial
from exporter.sigstore.policy import IdentityPolicy, TrustPolicy


def verify_material(
    material: SigningMaterial,
    trust: TrustPolicy,
    identities: tuple[IdentityPolicy, ...] = (),
    *,
    now: datetime | None = None,
) -> SignerFacts | VerificationFailure:
    """Check ``material`` against ``trust`` and, for certificates, against ``identities`` (any one may match;
    empty accepts any identity, for key-signed material or a pinned own-PKI certificate).

    Checks, each failing with a ``VerificationFailure`` naming the check:
    - the signature verifies over ``material.signed`` with the certificate's key or ``material.public_key``;
    - every transparency-log entry: from a trusted log, its body records this signature, payload hash and key
      or certificate, its SET (Rekor v1) and inclusion proof against a signed checkpoint verify; at least one
      is required unless ``trust.require_tlog`` is False;
    - every RFC 3161 timestamp: signed by a trusted TSA, imprint over ``material.timestamp_message``;
    - a certificate chains to a trusted CA whose validity window covers the signing time, was itself valid
      then, and (Fulcio) carries an SCT that verifies with a trusted CT log key unless SCTs are ignored;
    - the certificate identity matches one of ``identities``.

    Pure CPU work, no I/O, safe to call from worker threads; ``now`` replaces the clock (tests), and is used
    only when no proof gives a signing time.
    """
    del material, trust, identities, now
    return VerificationFailure("material", "Sigstore material verification is not available yet")
