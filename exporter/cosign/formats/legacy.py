"""cosign's legacy layouts: ``.sig`` simple-signing layers and ``.att`` DSSE attestation layers.

A ``.sig`` layer's blob is the signed payload; the signature and its verification material sit in the
layer's annotations: ``dev.cosignproject.cosign/signature`` (base64), ``dev.sigstore.cosign/certificate`` and
``.../chain`` (PEM), ``.../bundle`` (Rekor's signed entry timestamp and entry) and ``.../rfc3161timestamp``.
An ``.att`` layer's blob is a DSSE envelope over an in-toto statement, with the same annotations except the
signature, which is in the envelope.
"""

from __future__ import annotations

import hashlib
import json

from cryptography import x509

from exporter.cosign.formats.candidate import Candidate, envelope_candidates
from exporter.cosign.formats.dsse import parse_envelope
from exporter.cosign.formats.fields import (
    FormatError,
    decode_b64,
    get_b64,
    get_int,
    get_object,
    get_str,
    load_json,
)
from exporter.cosign.formats.simple_signing import PayloadError, parse_payload
from exporter.cosign.found import FoundArtifact
from exporter.sigstore.material import SignedMessage, TlogEntry

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"

MAX_ANNOTATION_CHARS = 256 * 1024
MAX_CHAIN_CERTIFICATES = 10
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024


def _annotation(artifact: FoundArtifact, name: str) -> str | None:
    value = artifact.annotations.get(name)
    if value is not None and len(value) > MAX_ANNOTATION_CHARS:
        raise FormatError(f"annotation {name} exceeds {MAX_ANNOTATION_CHARS} characters")
    return value


def load_certificates(pem: str, what: str) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM text; FormatError when there is none or one is broken."""
    try:
        certificates = tuple(x509.load_pem_x509_certificates(pem.encode("utf-8", errors="replace")))
    except ValueError as exc:
        raise FormatError(f"{what} is not PEM certificates ({exc})") from None
    if not certificates:
        raise FormatError(f"{what} holds no PEM certificate")
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise FormatError(f"{what} holds more than {MAX_CHAIN_CERTIFICATES} certificates")
    return certificates


def _certificates(artifact: FoundArtifact) -> tuple[x509.Certificate, ...]:
    leaf = _annotation(artifact, CERTIFICATE_ANNOTATION)
    if not leaf:
        return ()
    chain = _annotation(artifact, CHAIN_ANNOTATION)
    certificates = load_certificates(leaf, "certificate annotation")[:1]
    if chain:
        certificates += load_certificates(chain, "chain annotation")
    return certificates


def parse_legacy_bundle(text: str) -> TlogEntry:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation as a Rekor v1 entry with its SET."""
    document = load_json(text, "bundle annotation", MAX_ANNOTATION_CHARS)
    payload = get_object(document, "Payload", "bundle")
    body = get_b64(payload, "body", "bundle.Payload")
    try:
        entry = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("bundle.Payload.body is not a JSON Rekor entry") from None
    if not isinstance(entry, dict):
        raise FormatError("bundle.Payload.body is not a JSON Rekor entry")
    log_id = get_str(payload, "logID", "bundle.Payload")
    try:
        log_id_bytes = bytes.fromhex(log_id)
    except ValueError:
        raise FormatError("bundle.Payload.logID is not hexadecimal") from None
    return TlogEntry(
        log_id=log_id_bytes,
        log_index=get_int(payload, "logIndex", "bundle.Payload") or 0,
        canonicalized_body=body,
        kind=str(entry.get("kind", "")),
        version=str(entry.get("apiVersion", "")),
        integrated_time=get_int(payload, "integratedTime", "bundle.Payload"),
        signed_entry_timestamp=get_b64(document, "SignedEntryTimestamp", "bundle"),
    )


def _material(
    artifact: FoundArtifact,
) -> tuple[tuple[x509.Certificate, ...], tuple[TlogEntry, ...], tuple[bytes, ...]]:
    bundle = _annotation(artifact, BUNDLE_ANNOTATION)
    timestamp = _annotation(artifact, TIMESTAMP_ANNOTATION)
    timestamps: tuple[bytes, ...] = ()
    if timestamp:
        document = load_json(timestamp, "rfc3161timestamp annotation", MAX_ANNOTATION_CHARS)
        timestamps = (get_b64(document, "SignedRFC3161Timestamp", "rfc3161timestamp"),)
    return _certificates(artifact), ((parse_legacy_bundle(bundle),) if bundle else ()), timestamps


def parse_sig_layer(artifact: FoundArtifact, content: bytes, where: str) -> Candidate:
    """A ``.sig`` simple-signing layer as a candidate; FormatError when it cannot be one."""
    signature_text = _annotation(artifact, SIGNATURE_ANNOTATION)
    if signature_text is None:
        raise FormatError(f"layer has no {SIGNATURE_ANNOTATION} annotation")
    signature = decode_b64(signature_text, "signature annotation")
    certificates, entries, timestamps = _material(artifact)
    claim_problem = None
    try:
        claim = parse_payload(content)
    except PayloadError as exc:
        claim, claim_problem = None, str(exc)
    return Candidate(
        where=where,
        artifact=artifact,
        format="simple-signing",
        signature=signature,
        signed=SignedMessage(digest=hashlib.sha256(content).digest(), content=content),
        claim=claim,
        claim_problem=claim_problem,
        certificates=certificates,
        tlog_entries=entries,
        timestamps=timestamps,
    )


def parse_att_layer(artifact: FoundArtifact, content: bytes, where: str) -> tuple[Candidate, ...]:
    """An ``.att`` DSSE layer as one candidate per envelope signature; FormatError when it is none."""
    envelope = parse_envelope(load_json(content, "DSSE envelope", MAX_ENVELOPE_BYTES), "envelope")
    certificates, entries, timestamps = _material(artifact)
    # cosign timestamps a legacy attestation's whole envelope, not its signature.
    return envelope_candidates(
        envelope,
        where,
        artifact=artifact,
        format="dsse-attestation",
        certificates=certificates,
        tlog_entries=entries,
        timestamps=timestamps,
        timestamped=content,
    )
