"""The one entry point: decide whether a signature's material establishes who signed and when.

Order matters for the messages users see: the signature itself, then the proofs of time (log entries,
timestamps), the certificate chain at the proven signing time, the SCT, and only then the identity (a wrong
identity on an untrusted certificate is reported as the untrusted certificate it is).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from exporter.sigstore.certificates import clear_chain_cache, verify_fulcio_chain, verify_private_chain
from exporter.sigstore.facts import (
    CertificateIdentity,
    LogEntryFacts,
    SignerFacts,
    TimeSource,
    VerificationFailure,
)
from exporter.sigstore.identity import certificate_identity, match_identity
from exporter.sigstore.keys import TrustedKey, digest_signature_is_valid, load_public_key, signature_is_valid
from exporter.sigstore.material import SignedEnvelope, SignedMessage, SigningMaterial
from exporter.sigstore.policy import IdentityPolicy, TrustPolicy, log_url
from exporter.sigstore.rekor import RekorLog, Signer, verify_entry
from exporter.sigstore.sct import CtLogKey, verify_embedded_sct
from exporter.sigstore.timestamps import (
    MAX_TIMESTAMPS,
    TimestampAuthority,
    clear_timestamp_cache,
    verify_timestamp,
)

MAX_TLOG_ENTRIES = 8


def _rekor_logs(trust: TrustPolicy) -> tuple[RekorLog, ...]:
    """The logs whose entries count: the policy's keys, else the trusted root's (at ``rekor_url``, if set)."""
    if trust.rekor_keys:
        name = trust.rekor_url or ""
        return tuple(RekorLog(bytes.fromhex(key.fingerprint), key, name) for key in trust.rekor_keys)
    wanted = None if trust.rekor_url is None else log_url(trust.rekor_url)
    return tuple(
        RekorLog(log.log_id, log.key, log.base_url, log.valid)
        for log in trust.trusted_root.tlogs
        if wanted is None or log_url(log.base_url) == wanted
    )


def _ct_logs(trust: TrustPolicy) -> tuple[CtLogKey, ...]:
    if trust.ctlog_keys:
        return tuple(CtLogKey(bytes.fromhex(key.fingerprint), key) for key in trust.ctlog_keys)
    return tuple(CtLogKey(log.log_id, log.key, log.valid) for log in trust.trusted_root.ctlogs)


def _timestamp_authorities(trust: TrustPolicy) -> tuple[TimestampAuthority, ...]:
    if trust.tsa_chains:
        return tuple(TimestampAuthority(chain, None, "tsaCertChain") for chain in trust.tsa_chains)
    return tuple(
        TimestampAuthority(authority.chain, authority.valid, authority.uri)
        for authority in trust.trusted_root.timestamp_authorities
    )


def _signing_key(material: SigningMaterial) -> TrustedKey | VerificationFailure:
    """The key that made the signature; a certificate's key must be one cosign accepts (no weak RSA)."""
    if material.public_key is not None:
        return material.public_key
    try:
        pem = (
            material.certificate_chain[0]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return load_public_key(pem, "the signing certificate's key")
    except (ValueError, UnsupportedAlgorithm) as exc:
        return VerificationFailure("material", f"signing certificate has an unusable key ({exc})")


def _signature_verifies(key: TrustedKey, signature: bytes, signed: SignedMessage | SignedEnvelope) -> bool:
    """Over a DSSE envelope's PAE, a message's bytes, or (bundles) only its digest, as cosign signs."""
    if isinstance(signed, SignedEnvelope):
        return signature_is_valid(key, signed.pae(), signature)
    if signed.content is None:
        return digest_signature_is_valid(key, signed.digest, signature, signed.algorithm)
    # The log entry is matched by the digest: it must be the content's.
    if hashlib.new(signed.algorithm, signed.content).digest() != signed.digest:
        return False
    return signature_is_valid(key, signed.content, signature, signed.algorithm)


def _log_entries(
    material: SigningMaterial, trust: TrustPolicy, signer: Signer
) -> tuple[LogEntryFacts, ...] | VerificationFailure:
    if len(material.tlog_entries) > MAX_TLOG_ENTRIES:
        return VerificationFailure("tlog", f"more than {MAX_TLOG_ENTRIES} transparency-log entries")
    logs = _rekor_logs(trust)
    if trust.rekor_url is not None and not logs:
        return VerificationFailure(
            "tlog",
            f"no transparency log at {trust.rekor_url} in the trusted root; give rekor.pubkey or a trusted "
            "root that lists it",
        )
    verified = []
    for entry in material.tlog_entries:
        facts = verify_entry(entry, logs, material.signature, material.signed, signer)
        if isinstance(facts, VerificationFailure):
            return facts
        verified.append(facts)
    if trust.require_tlog and not verified:
        return VerificationFailure(
            "tlog",
            "signature has no transparency-log (Rekor) entry; sign with a Rekor upload, or set "
            "ignoreTlog / --insecure-ignore-tlog if your signers deliberately do not log",
        )
    return tuple(verified)


def _timestamp_times(
    material: SigningMaterial, trust: TrustPolicy
) -> tuple[datetime, ...] | VerificationFailure:
    if len(material.timestamps) > MAX_TIMESTAMPS:
        return VerificationFailure("timestamp", f"more than {MAX_TIMESTAMPS} RFC 3161 timestamps")
    if len(set(material.timestamps)) != len(material.timestamps):
        return VerificationFailure("timestamp", "the same RFC 3161 timestamp is given twice")
    authorities = _timestamp_authorities(trust)
    times = []
    for token in material.timestamps:
        moment = verify_timestamp(token, material.timestamp_message, authorities)
        if isinstance(moment, VerificationFailure):
            return moment
        times.append(moment)
    return tuple(times)


def _certificate_checks(
    material: SigningMaterial,
    trust: TrustPolicy,
    identities: tuple[IdentityPolicy, ...],
    times: tuple[datetime, ...],
    time_source: TimeSource,
) -> CertificateIdentity | VerificationFailure:
    leaf, carried = material.certificate_chain[0], material.certificate_chain[1:]
    chain: tuple[x509.Certificate, ...] = ()
    for moment in times:
        verified = (
            verify_private_chain(
                leaf, carried, trust.certificate_roots, trust.certificate_intermediates, moment
            )
            if trust.certificate_roots
            else verify_fulcio_chain(leaf, carried, trust.trusted_root.certificate_authorities, moment)
        )
        if isinstance(verified, VerificationFailure):
            if verified.check == "certificate-validity" and time_source == "current-time":
                return VerificationFailure(
                    verified.check,
                    f"{verified.reason}; no Rekor entry or RFC 3161 timestamp proves when it was signed, "
                    "so the current time was used",
                )
            return verified
        chain = verified
    if trust.require_sct:
        failure = verify_embedded_sct(chain, _ct_logs(trust))
        if failure is not None:
            return failure
    identity = certificate_identity(leaf)
    if not identities:
        return identity
    failures = [match_identity(leaf, identity, policy) for policy in identities]
    if any(failure is None for failure in failures):
        return identity
    reasons = [failure.reason for failure in failures if failure is not None]
    return VerificationFailure("identity", reasons[0] if len(reasons) == 1 else "; ".join(reasons))


def clear_verification_caches() -> None:
    """Forget cached certificate paths and timestamp verdicts: for measuring cold verification."""
    clear_chain_cache()
    clear_timestamp_cache()


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
    key = _signing_key(material)
    if isinstance(key, VerificationFailure):
        return key
    if not _signature_verifies(key, material.signature, material.signed):
        return VerificationFailure("signature", f"signature does not verify with {key.name}")
    signer = Signer(key.key, material.certificate_chain[0] if material.certificate_chain else None)
    entries = _log_entries(material, trust, signer)
    if isinstance(entries, VerificationFailure):
        return entries
    stamped = _timestamp_times(material, trust)
    if isinstance(stamped, VerificationFailure):
        return stamped
    logged = tuple(entry.integrated_time for entry in entries if entry.integrated_time is not None)
    time_source: TimeSource
    if logged:
        proven, time_source = (*logged, *stamped), "tlog"
    elif stamped:
        proven, time_source = stamped, "timestamp-authority"
    elif entries and trust.require_tlog:
        return VerificationFailure(
            "timestamp",
            "the transparency-log entry proves inclusion but not a signing time (Rekor v2); the signature "
            "needs an RFC 3161 timestamp from a trusted timestamp authority",
        )
    else:  # nothing proves a time and nothing is required: as cosign, the certificate must be valid now
        proven, time_source = (now or datetime.now(UTC),), "current-time"
    identity: CertificateIdentity | None = None
    if material.certificate_chain:
        try:
            checked = _certificate_checks(material, trust, identities, proven, time_source)
        except ValueError as exc:  # cryptography parses extensions lazily: a malformed one raises here
            return VerificationFailure("certificate-chain", f"signing certificate is malformed ({exc})")
        if isinstance(checked, VerificationFailure):
            return checked
        identity = checked
    elif identities:
        return VerificationFailure("identity", "a signature made with a key carries no certificate identity")
    return SignerFacts(
        identity=identity,
        log_entries=entries,
        signing_time=proven[0],
        time_source=time_source,
        timestamp_times=stamped,
        sct_verified=bool(material.certificate_chain) and trust.require_sct,
    )
