"""Rekor transparency-log entries: is this entry from a trusted log, really logged, and about *this*
signature?

Rekor v1 entries carry a signed entry timestamp (SET: the log's signature over the entry, its index and its
integrated time, as canonical JSON) and, in bundles, an inclusion proof with a signed checkpoint. Rekor v2
entries have no SET and no integrated time: the inclusion proof is the proof, and the time must come from a
timestamp authority. In both, the logged body must record this signature, this payload's hash and this
signer's key or certificate, or an entry copied from another signature would vouch for this one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from exporter.sigstore.facts import LogEntryFacts, VerificationFailure
from exporter.sigstore.keys import PublicKey, TrustedKey, signature_is_valid
from exporter.sigstore.material import SignedEnvelope, SignedMessage, TlogEntry
from exporter.sigstore.merkle import verify_audit_path, verify_inclusion
from exporter.sigstore.trusted_root import ValidityWindow

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class RekorLog:
    """A trusted Rekor log: its key, log id (see ``TransparencyLog``), URL and validity window."""

    log_id: bytes
    key: TrustedKey
    base_url: str = ""
    valid: ValidityWindow | None = None


@dataclass(frozen=True)
class Signer:
    """Who the material says signed: the key, and the certificate when there is one (its DER)."""

    key: PublicKey
    certificate: x509.Certificate | None

    @property
    def spki(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class _MismatchError(ValueError):
    """The entry body does not record this signature; the message says what differs."""


def signed_entry_timestamp_payload(body: bytes, integrated_time: int, log_id: bytes, log_index: int) -> bytes:
    """What Rekor's SET signs: the entry as RFC 8785 canonical JSON (sorted keys, no spaces)."""
    document = {
        "body": base64.b64encode(body).decode("ascii"),
        "integratedTime": integrated_time,
        "logID": log_id.hex(),
        "logIndex": log_index,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _MismatchError(f"entry has no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _MismatchError(f"entry {what} is not base64") from None


def _field(document: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


def _check_verifier(material: bytes, signer: Signer, what: str) -> None:
    """The logged verifier (PEM or DER, certificate or public key) must be this signer's."""
    try:
        if b"-----BEGIN CERTIFICATE-----" in material:
            certificate: x509.Certificate | None = x509.load_pem_x509_certificate(material)
        elif b"-----BEGIN" in material:
            certificate = None
            key = serialization.load_pem_public_key(material)
        else:
            try:
                certificate = x509.load_der_x509_certificate(material)
            except ValueError:
                certificate = None
                key = serialization.load_der_public_key(material)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _MismatchError(f"entry {what} is neither a certificate nor a public key") from None
    if certificate is not None:
        if signer.certificate is not None:
            if certificate != signer.certificate:
                raise _MismatchError("entry records a different signing certificate")
            return
        key = certificate.public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != signer.spki:
        raise _MismatchError("entry records a different public key")


_HASH_NAMES = {"sha256": "sha256", "sha2_256": "sha256", "sha384": "sha384", "sha2_384": "sha384"}
_HASH_NAMES |= {"sha512": "sha512", "sha2_512": "sha512"}


def _check_hash(algorithm: Any, value: bytes, expected: bytes, expected_algorithm: str = "sha256") -> None:
    """Rekor v1 spells algorithms ``sha256``, Rekor v2 ``SHA2_256``."""
    if _HASH_NAMES.get(str(algorithm).lower()) != expected_algorithm:
        raise _MismatchError(f"entry hash algorithm {algorithm!r} is not {expected_algorithm}")
    if value != expected:
        raise _MismatchError("entry records a different payload hash")


def _message(signed: SignedMessage | SignedEnvelope, kind: str) -> SignedMessage:
    if not isinstance(signed, SignedMessage):
        raise _MismatchError(f"a {kind} entry records a message signature, not a DSSE envelope")
    return signed


def _hex_digest(data: Any) -> bytes:
    digest = _field(data, "hash", "value")
    if isinstance(digest, str):
        try:
            return bytes.fromhex(digest)
        except ValueError:
            raise _MismatchError("entry hash is not hex") from None
    if "content" in (data or {}):
        return hashlib.sha256(_b64(data["content"], "data")).digest()
    raise _MismatchError("entry records no payload hash")


def _match_rekord_v1(
    spec: Any, kind: str, signature: bytes, signed: SignedMessage | SignedEnvelope, signer: Signer
) -> None:
    message = _message(signed, kind)
    data = _field(spec, "data") or {}
    algorithm = _field(data, "hash", "algorithm") or "sha256"
    _check_hash(algorithm, _hex_digest(data), message.digest, message.algorithm)
    if _b64(_field(spec, "signature", "content"), "signature") != signature:
        raise _MismatchError("entry records a different signature")
    _check_verifier(
        _b64(_field(spec, "signature", "publicKey", "content"), "public key"), signer, "public key"
    )


def _envelope(signed: SignedMessage | SignedEnvelope, kind: str) -> SignedEnvelope:
    if not isinstance(signed, SignedEnvelope):
        raise _MismatchError(f"a {kind} entry records a DSSE envelope, not a message signature")
    return signed


def _check_envelope_signatures(
    recorded: Any, field: str, verifier_of: Callable[[Any], bytes], envelope: SignedEnvelope, signer: Signer
) -> None:
    """A dsse entry records every signature of the envelope, each with this signer as its verifier."""
    if not isinstance(recorded, list):
        raise _MismatchError("entry records no signatures")
    signatures = []
    for item in recorded:
        signatures.append(_b64(_field(item, field), "signature"))
        _check_verifier(verifier_of(item), signer, "verifier")
    if sorted(signatures) != sorted(envelope.signatures):
        raise _MismatchError("entry records different envelope signatures")


def _match_dsse_v1(spec: Any, signed: SignedMessage | SignedEnvelope, signer: Signer) -> None:
    envelope = _envelope(signed, "dsse")
    value = _field(spec, "payloadHash", "value")
    _check_hash(
        _field(spec, "payloadHash", "algorithm"),
        bytes.fromhex(value) if isinstance(value, str) else b"",
        hashlib.sha256(envelope.payload).digest(),
    )
    _check_envelope_signatures(
        _field(spec, "signatures"),
        "signature",
        lambda item: _b64(_field(item, "verifier"), "verifier"),
        envelope,
        signer,
    )


def _maybe_double_b64(value: Any, what: str) -> bytes:
    """intoto entries store signatures base64-encoded twice by some clients and once by others."""
    once = _b64(value, what)
    try:
        return base64.b64decode(once, validate=True)
    except (binascii.Error, ValueError):
        return once


def _match_intoto(
    spec: Any, signature: bytes, signed: SignedMessage | SignedEnvelope, signer: Signer
) -> None:
    envelope = _envelope(signed, "intoto")
    content = _field(spec, "content") or {}
    value = _field(content, "payloadHash", "value")
    if not isinstance(value, str):
        raise _MismatchError("entry records no payload hash")
    _check_hash(
        _field(content, "payloadHash", "algorithm"),
        bytes.fromhex(value),
        hashlib.sha256(envelope.payload).digest(),
    )
    recorded = _field(content, "envelope", "signatures")
    if isinstance(recorded, list):
        signatures = []
        for item in recorded:
            raw = _b64(_field(item, "sig"), "signature")
            signatures.append(
                raw if raw == signature else _maybe_double_b64(_field(item, "sig"), "signature")
            )
            _check_verifier(_b64(_field(item, "publicKey"), "public key"), signer, "public key")
        if signature not in signatures:
            raise _MismatchError("entry records a different signature")
    else:
        _check_verifier(_b64(_field(spec, "publicKey"), "public key"), signer, "public key")


def _verifier_v2(verifier: Any) -> bytes:
    raw = _field(verifier, "x509Certificate", "rawBytes") or _field(verifier, "publicKey", "rawBytes")
    return _b64(raw, "verifier")


def _match_hashedrekord_v2(
    spec: Any, signature: bytes, signed: SignedMessage | SignedEnvelope, signer: Signer
) -> None:
    body = _field(spec, "hashedRekordV002") or {}
    digest = _b64(_field(body, "data", "digest"), "digest")
    if isinstance(signed, SignedEnvelope):
        _check_hash(_field(body, "data", "algorithm"), digest, hashlib.sha256(signed.pae()).digest())
    else:
        _check_hash(_field(body, "data", "algorithm"), digest, signed.digest, signed.algorithm)
    if _b64(_field(body, "signature", "content"), "signature") != signature:
        raise _MismatchError("entry records a different signature")
    _check_verifier(_verifier_v2(_field(body, "signature", "verifier")), signer, "verifier")


def _match_dsse_v2(spec: Any, signed: SignedMessage | SignedEnvelope, signer: Signer) -> None:
    envelope = _envelope(signed, "dsse")
    body = _field(spec, "dsseV002") or {}
    _check_hash(
        _field(body, "payloadHash", "algorithm"),
        _b64(_field(body, "payloadHash", "digest"), "payload hash"),
        hashlib.sha256(envelope.payload).digest(),
    )
    _check_envelope_signatures(
        _field(body, "signatures"),
        "content",
        lambda item: _verifier_v2(_field(item, "verifier")),
        envelope,
        signer,
    )


def match_entry_body(
    entry: TlogEntry, signature: bytes, signed: SignedMessage | SignedEnvelope, signer: Signer
) -> str | None:
    """None when the logged body records ``signature`` over ``signed`` by ``signer``; else what differs."""
    if len(entry.canonicalized_body) > MAX_BODY_BYTES:
        return "entry body is too large"
    try:
        body = json.loads(entry.canonicalized_body)
    except (ValueError, RecursionError):
        return "entry body is not JSON"
    kind, version = _field(body, "kind"), _field(body, "apiVersion")
    if (kind, version) != (entry.kind, entry.version):
        return f"entry body is {kind} {version}, but the entry says {entry.kind} {entry.version}"
    spec = _field(body, "spec")
    try:
        if kind in ("hashedrekord", "rekord") and version == "0.0.1":
            _match_rekord_v1(spec, kind, signature, signed, signer)
        elif kind == "dsse" and version == "0.0.1":
            _match_dsse_v1(spec, signed, signer)
        elif kind == "intoto" and version in ("0.0.1", "0.0.2"):
            _match_intoto(spec, signature, signed, signer)
        elif kind == "hashedrekord" and version == "0.0.2":
            _match_hashedrekord_v2(spec, signature, signed, signer)
        elif kind == "dsse" and version == "0.0.2":
            _match_dsse_v2(spec, signed, signer)
        else:
            return f"entry kind {kind} {version} is not supported (hashedrekord, rekord, dsse, intoto)"
    except _MismatchError as exc:
        return str(exc)
    except ValueError:  # hex digests that are not hex, certificates cryptography cannot parse
        return "entry body is malformed"
    return None


def verify_entry(
    entry: TlogEntry,
    logs: tuple[RekorLog, ...],
    signature: bytes,
    signed: SignedMessage | SignedEnvelope,
    signer: Signer,
) -> LogEntryFacts | VerificationFailure:
    """Verify one entry end to end: trusted log, SET (when present), inclusion proof and checkpoint (when
    present; one of the two is needed), body matching this signature. ``integrated_time`` in the facts is
    set only when a SET binds it."""
    log = next((candidate for candidate in logs if candidate.log_id == entry.log_id), None)
    if log is None:
        return VerificationFailure(
            "tlog",
            f"Rekor entry {entry.log_index} is from log {entry.log_id.hex()[:16]}…, which is not trusted",
        )
    where = f"Rekor entry {entry.log_index} ({log.base_url or log.key.name})"
    if entry.signed_entry_timestamp is None and entry.inclusion_proof is None:
        return VerificationFailure(
            "tlog", f"{where} has neither a signed entry timestamp nor an inclusion proof"
        )
    integrated: datetime | None = None
    if entry.signed_entry_timestamp is not None:
        if entry.integrated_time is None:
            return VerificationFailure("tlog", f"{where} has a signed entry timestamp but no integrated time")
        payload = signed_entry_timestamp_payload(
            entry.canonicalized_body, entry.integrated_time, entry.log_id, entry.log_index
        )
        if not signature_is_valid(log.key, payload, entry.signed_entry_timestamp):
            return VerificationFailure(
                "tlog", f"{where}: signed entry timestamp does not verify with the log's key"
            )
        integrated = datetime.fromtimestamp(entry.integrated_time, UTC)
        if log.valid is not None and not log.valid.covers(integrated):
            return VerificationFailure(
                "tlog",
                f"{where}: the log's key was not trusted at the integrated time {integrated.isoformat()}",
            )
    proven = False
    proof = entry.inclusion_proof
    if proof is not None:
        if proof.checkpoint is None and integrated is not None:
            # Bundles v0.1 may carry a proof without a checkpoint: the SET vouches for the entry, and the
            # path must at least be consistent, but nothing signed commits to its root.
            problem = verify_audit_path(entry.canonicalized_body, proof)
        else:
            problem = verify_inclusion(entry.canonicalized_body, proof, log.key, log.log_id[:4])
            proven = problem is None
        if problem is not None:
            return VerificationFailure("tlog", f"{where}: {problem}")
    mismatch = match_entry_body(entry, signature, signed, signer)
    if mismatch is not None:
        return VerificationFailure("tlog", f"{where} is not about this signature: {mismatch}")
    return LogEntryFacts(log.base_url, entry.log_index, integrated, proven)
