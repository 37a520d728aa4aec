"""The signing certificate's embedded SCT (RFC 6962): proof that Fulcio published the certificate to a
trusted certificate-transparency log, so a mis-issued certificate cannot stay hidden.

The SCT in a certificate is over the *precertificate*: the certificate's TBS without the SCT extension,
bound to the issuer by the SHA-256 of the issuer's public key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.certificate_transparency import LogEntryType, SignedCertificateTimestamp
from cryptography.x509.oid import ExtendedKeyUsageOID

from exporter.sigstore.facts import VerificationFailure
from exporter.sigstore.keys import TrustedKey, signature_is_valid
from exporter.sigstore.trusted_root import ValidityWindow


@dataclass(frozen=True)
class CtLogKey:
    """A trusted CT log key, by log id (SHA-256 of the DER key), usable inside ``valid`` (None: always)."""

    log_id: bytes
    key: TrustedKey
    valid: ValidityWindow | None = None


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _issuer(chain: tuple[x509.Certificate, ...]) -> x509.Certificate | None:
    """The leaf's issuer; skips an RFC 6962 precertificate-signing certificate if the CA uses one."""
    if len(chain) < 2:
        return None
    issuer = chain[1]
    try:
        usages = issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return issuer
    if ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in usages:
        return chain[2] if len(chain) > 2 else None
    return issuer


def _u24(data: bytes) -> bytes:
    return len(data).to_bytes(3, "big") + data


def _signed_data(sct: SignedCertificateTimestamp, leaf: x509.Certificate, issuer_key_hash: bytes) -> bytes:
    """The ``digitally-signed`` struct of RFC 6962 section 3.2 for a precertificate entry."""
    milliseconds = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000)
    return (
        bytes([sct.version.value, 0])
        + milliseconds.to_bytes(8, "big")
        + LogEntryType.PRE_CERTIFICATE.value.to_bytes(2, "big")
        + issuer_key_hash
        + _u24(leaf.tbs_precertificate_bytes)
        + len(sct.extension_bytes).to_bytes(2, "big")
        + sct.extension_bytes
    )


def verify_embedded_sct(
    chain: tuple[x509.Certificate, ...], logs: tuple[CtLogKey, ...]
) -> VerificationFailure | None:
    """None when the leaf (``chain[0]``, a verified chain) carries an SCT that one of ``logs`` signed."""
    leaf = chain[0]
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        return VerificationFailure(
            "sct",
            "signing certificate has no embedded SCT (it was not logged to certificate transparency); "
            "set ignoreSCT / --insecure-ignore-sct only for a private CA that does not log",
        )
    issuer = _issuer(chain)
    if issuer is None:
        return VerificationFailure(
            "sct", "cannot check the SCT: the certificate's issuer is not in its chain"
        )
    issuer_key_hash = hashlib.sha256(_spki(issuer)).digest()
    problems = []
    for sct in scts:
        log = next((candidate for candidate in logs if candidate.log_id == sct.log_id), None)
        if log is None:
            problems.append(f"SCT from CT log {sct.log_id.hex()[:16]}…, which is not trusted")
            continue
        if sct.entry_type != LogEntryType.PRE_CERTIFICATE or not isinstance(
            sct.signature_hash_algorithm, hashes.SHA256
        ):
            problems.append("SCT is not a SHA-256 precertificate timestamp")
            continue
        moment = sct.timestamp.replace(tzinfo=UTC)
        if log.valid is not None and not log.valid.covers(moment):
            problems.append(f"CT log {log.key.name} was not trusted at the SCT time {moment.isoformat()}")
            continue
        if signature_is_valid(log.key, _signed_data(sct, leaf, issuer_key_hash), sct.signature):
            return None
        problems.append(f"SCT signature does not verify with CT log key {log.key.name}")
    return VerificationFailure("sct", "embedded SCT does not verify: " + "; ".join(problems))
