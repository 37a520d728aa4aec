"""Sigstore bundles v0.1, v0.2 and v0.3 (``application/vnd.dev.sigstore.bundle…``), as cosign 3 attaches them
to images as OCI referrers: a message signature over the image digest, or a DSSE envelope over an in-toto
statement whose subject is the image (cosign 3 signs images as ``https://sigstore.dev/cosign/sign/v1``).

The verification material is a public-key hint (key-signed), an X.509 chain (v0.1/v0.2) or one certificate
(v0.3), with Rekor entries and RFC 3161 timestamps. Versions differ in what each log entry must carry (v0.1
a signed entry timestamp, v0.2+ an inclusion proof): that is checked here; whether a policy requires a log
entry at all is decided by the trust checks.
"""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509

from exporter.cosign.formats.candidate import Candidate, envelope_candidates
from exporter.cosign.formats.dsse import parse_envelope
from exporter.cosign.formats.fields import (
    FormatError,
    get_b64,
    get_int,
    get_list,
    get_object,
    get_str,
    load_json,
)
from exporter.cosign.formats.legacy import MAX_CHAIN_CERTIFICATES
from exporter.cosign.found import FoundArtifact
from exporter.sigstore.keys import HashName
from exporter.sigstore.material import InclusionProof, SignedMessage, TlogEntry

MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MAX_TLOG_ENTRIES = 8
MAX_TIMESTAMPS = 8
MAX_PROOF_HASHES = 64
_MEDIA_TYPE = re.compile(
    r"application/vnd\.dev\.sigstore\.bundle(?:\+json;version=(0\.[123])|\.v(0\.[123])\+json)"
)
_SNAKE_WORD = re.compile(r"_([a-z0-9])")
MAX_NAME_DEPTH = 12
_DIGEST_ALGORITHMS: dict[str, HashName] = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


def _protobuf_json_names(value: Any, depth: int = 0) -> Any:
    """``value`` with protobuf field names in their JSON (lowerCamelCase) spelling: protobuf JSON parsers,
    sigstore-go's among them, accept a bundle written with the proto names (``log_index``) as well. A field
    given in both spellings is refused, as protojson refuses it. Bundles nest a few levels; nothing deeper
    than ``MAX_NAME_DEPTH`` is renamed."""
    if depth > MAX_NAME_DEPTH:
        return value
    if isinstance(value, list):
        return [_protobuf_json_names(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    renamed: dict[str, Any] = {}
    for key, item in value.items():
        name = _SNAKE_WORD.sub(lambda match: match.group(1).upper(), key)
        if name in renamed:
            raise FormatError(f"bundle field {name[:60]!r} is given twice (as {key[:60]!r})")
        renamed[name] = _protobuf_json_names(item, depth + 1)
    return renamed


def bundle_version(media_type: str) -> str | None:
    """``0.1``/``0.2``/``0.3`` for a bundle media type, ``None`` for anything else."""
    match = _MEDIA_TYPE.fullmatch(media_type.strip())
    return (match.group(1) or match.group(2)) if match else None


def is_bundle_media_type(media_type: str) -> bool:
    return media_type.startswith("application/vnd.dev.sigstore.bundle")


def _certificate(entry: Any, where: str) -> x509.Certificate:
    if not isinstance(entry, dict):
        raise FormatError(f"{where} is not an object")
    try:
        return x509.load_der_x509_certificate(get_b64(entry, "rawBytes", where))
    except ValueError as exc:
        raise FormatError(f"{where}.rawBytes is not a DER certificate ({exc})") from None


def _certificates(material: dict[str, Any]) -> tuple[x509.Certificate, ...]:
    if "certificate" in material:
        return (_certificate(material["certificate"], "verificationMaterial.certificate"),)
    if "x509CertificateChain" in material:
        chain = get_object(material, "x509CertificateChain", "verificationMaterial")
        entries = get_list(chain, "certificates", "x509CertificateChain", MAX_CHAIN_CERTIFICATES)
        if not entries:
            raise FormatError("verificationMaterial.x509CertificateChain has no certificates")
        return tuple(
            _certificate(entry, f"x509CertificateChain.certificates[{i}]") for i, entry in enumerate(entries)
        )
    if "publicKey" in material:
        return ()
    raise FormatError("verificationMaterial has no certificate, x509CertificateChain or publicKey")


def _proof(document: dict[str, Any], where: str) -> InclusionProof:
    checkpoint = document.get("checkpoint")
    envelope = checkpoint.get("envelope") if isinstance(checkpoint, dict) else None
    return InclusionProof(
        log_index=get_int(document, "logIndex", where) or 0,
        root_hash=get_b64(document, "rootHash", where),
        tree_size=get_int(document, "treeSize", where) or 0,
        hashes=tuple(
            get_b64({"hash": value}, "hash", f"{where}.hashes[{index}]")
            for index, value in enumerate(get_list(document, "hashes", where, MAX_PROOF_HASHES))
        ),
        checkpoint=envelope if isinstance(envelope, str) else None,
    )


def _tlog_entry(document: Any, where: str, version: str) -> TlogEntry:
    """One ``tlogEntries[]`` item. What each version must carry is part of the format, as sigstore-go and
    sigstore-python read it: v0.1 an inclusion promise (SET), v0.2+ an inclusion proof."""
    if not isinstance(document, dict):
        raise FormatError(f"{where} is not an object")
    kind_version = get_object(document, "kindVersion", where)
    promise = document.get("inclusionPromise")
    proof = document.get("inclusionProof")
    if version == "0.1" and not isinstance(promise, dict):
        raise FormatError(f"{where} has no inclusionPromise, which a v0.1 bundle must carry")
    if version != "0.1" and not isinstance(proof, dict):
        raise FormatError(f"{where} has no inclusionProof, which a v{version} bundle must carry")
    return TlogEntry(
        log_id=get_b64(get_object(document, "logId", where), "keyId", f"{where}.logId"),
        log_index=get_int(document, "logIndex", where) or 0,
        canonicalized_body=get_b64(document, "canonicalizedBody", where),
        kind=get_str(kind_version, "kind", f"{where}.kindVersion"),
        version=get_str(kind_version, "version", f"{where}.kindVersion"),
        integrated_time=get_int(document, "integratedTime", where, required=False) or None,
        signed_entry_timestamp=(
            get_b64(promise, "signedEntryTimestamp", f"{where}.inclusionPromise")
            if isinstance(promise, dict)
            else None
        ),
        inclusion_proof=_proof(proof, f"{where}.inclusionProof") if isinstance(proof, dict) else None,
    )


def _timestamps(material: dict[str, Any]) -> tuple[bytes, ...]:
    data = material.get("timestampVerificationData")
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise FormatError("verificationMaterial.timestampVerificationData is not an object")
    entries = get_list(data, "rfc3161Timestamps", "timestampVerificationData", MAX_TIMESTAMPS)
    timestamps = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FormatError(f"rfc3161Timestamps[{index}] is not an object")
        timestamps.append(get_b64(entry, "signedTimestamp", f"rfc3161Timestamps[{index}]"))
    return tuple(timestamps)


def parse_bundle(artifact: FoundArtifact, content: bytes, where: str) -> tuple[Candidate, ...]:
    """A bundle blob as candidates (one per DSSE signature); FormatError when it is no bundle we read."""
    document = _protobuf_json_names(load_json(content, "Sigstore bundle", MAX_BUNDLE_BYTES))
    media_type = get_str(document, "mediaType", "bundle")
    version = bundle_version(media_type)
    if version is None:
        raise FormatError(f"bundle mediaType {media_type[:100]!r} is not a Sigstore bundle v0.1-v0.3")
    material = get_object(document, "verificationMaterial", "bundle")
    certificates = _certificates(material)
    entries = tuple(
        _tlog_entry(entry, f"tlogEntries[{index}]", version)
        for index, entry in enumerate(
            get_list(material, "tlogEntries", "verificationMaterial", MAX_TLOG_ENTRIES)
        )
    )
    timestamps = _timestamps(material)
    common: dict[str, Any] = {
        "where": where,
        "artifact": artifact,
        "bundle_version": version,
        "certificates": certificates,
        "tlog_entries": entries,
        "timestamps": timestamps,
    }
    if "messageSignature" in document:
        message = get_object(document, "messageSignature", "bundle")
        digest = get_object(message, "messageDigest", "messageSignature")
        algorithm = get_str(digest, "algorithm", "messageSignature.messageDigest")
        if algorithm not in _DIGEST_ALGORITHMS:
            raise FormatError(f"messageSignature digest algorithm {algorithm[:40]!r} is not supported")
        value = get_b64(digest, "digest", "messageSignature.messageDigest")
        hash_name = _DIGEST_ALGORITHMS[algorithm]
        return (
            Candidate(
                format="bundle-message-signature",
                signature=get_b64(message, "signature", "messageSignature"),
                signed=SignedMessage(digest=value, algorithm=hash_name),
                claim=f"{hash_name}:{value.hex()}",
                **common,
            ),
        )
    if "dsseEnvelope" in document:
        envelope = parse_envelope(get_object(document, "dsseEnvelope", "bundle"), "dsseEnvelope")
        return envelope_candidates(envelope, format="bundle-dsse", **common)
    raise FormatError("bundle has neither messageSignature nor dsseEnvelope")
