"""Test-side conversion of Sigstore bundles and cosign ``.sig`` annotations into ``SigningMaterial``, so
that the trust checks (``exporter.sigstore``) can be tested on real and minted signatures directly, without
the format layer in between. Inputs are trusted test data: no defensive parsing here."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from exporter.sigstore import InclusionProof, SignedEnvelope, SignedMessage, SigningMaterial, TlogEntry
from exporter.sigstore.keys import TrustedKey

SIGNATURE = "dev.cosignproject.cosign/signature"
CERTIFICATE = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"
BUNDLE = "dev.sigstore.cosign/bundle"
RFC3161 = "dev.sigstore.cosign/rfc3161timestamp"


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def bundle_entry(entry: Mapping[str, Any]) -> TlogEntry:
    """A protobuf-specs ``TransparencyLogEntry`` (a bundle's ``tlogEntries[]``)."""
    proof = entry.get("inclusionProof")
    promise = entry.get("inclusionPromise")
    return TlogEntry(
        log_id=_b64(entry["logId"]["keyId"]),
        log_index=int(entry["logIndex"]),
        canonicalized_body=_b64(entry["canonicalizedBody"]),
        kind=entry["kindVersion"]["kind"],
        version=entry["kindVersion"]["version"],
        integrated_time=int(entry["integratedTime"]) if entry.get("integratedTime") else None,
        signed_entry_timestamp=_b64(promise["signedEntryTimestamp"]) if promise else None,
        inclusion_proof=InclusionProof(
            log_index=int(proof["logIndex"]),
            root_hash=_b64(proof["rootHash"]),
            tree_size=int(proof["treeSize"]),
            hashes=tuple(_b64(item) for item in proof["hashes"]),
            checkpoint=proof["checkpoint"]["envelope"],
        )
        if proof
        else None,
    )


def bundle_material(document: Mapping[str, Any], public_key: TrustedKey | None = None) -> SigningMaterial:
    """A Sigstore bundle with a message signature or a DSSE envelope: keyless (v0.3: one certificate), or
    signed by ``public_key`` (the bundle names only a hint of it)."""
    material = document["verificationMaterial"]
    timestamps = (material.get("timestampVerificationData") or {}).get("rfc3161Timestamps", [])
    if public_key is None:
        certificate = material.get("certificate") or material["x509CertificateChain"]["certificates"][0]
        signer: dict[str, Any] = {
            "certificate_chain": (x509.load_der_x509_certificate(_b64(certificate["rawBytes"])),)
        }
    else:
        signer = {"public_key": public_key}
    common: dict[str, Any] = {
        **signer,
        "tlog_entries": tuple(bundle_entry(entry) for entry in material.get("tlogEntries", [])),
        "timestamps": tuple(_b64(item["signedTimestamp"]) for item in timestamps),
    }
    if "dsseEnvelope" in document:
        envelope = document["dsseEnvelope"]
        signatures = tuple(_b64(item["sig"]) for item in envelope["signatures"])
        signed = SignedEnvelope(envelope["payloadType"], _b64(envelope["payload"]), signatures)
        return SigningMaterial(signature=signatures[0], signed=signed, **common)
    message = document["messageSignature"]
    digest = SignedMessage(_b64(message["messageDigest"]["digest"]))
    return SigningMaterial(signature=_b64(message["signature"]), signed=digest, **common)


def cosign_bundle_entry(annotation: str) -> TlogEntry:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation: a SET over the entry, no inclusion proof."""
    bundle = json.loads(annotation)
    payload = bundle["Payload"]
    body = _b64(payload["body"])
    document = json.loads(body)
    return TlogEntry(
        log_id=bytes.fromhex(payload["logID"]),
        log_index=payload["logIndex"],
        canonicalized_body=body,
        kind=document["kind"],
        version=document["apiVersion"],
        integrated_time=payload["integratedTime"],
        signed_entry_timestamp=_b64(bundle["SignedEntryTimestamp"]),
    )


def legacy_material(payload: bytes, annotations: Mapping[str, str]) -> SigningMaterial:
    """A keyless legacy ``.sig`` layer: payload plus signature, certificate, chain, bundle, timestamp."""
    chain = x509.load_pem_x509_certificates(annotations[CERTIFICATE].encode())
    if CHAIN in annotations:
        chain += x509.load_pem_x509_certificates(annotations[CHAIN].encode())
    timestamp = annotations.get(RFC3161)
    return SigningMaterial(
        signature=_b64(annotations[SIGNATURE].replace("\n", "")),
        signed=SignedMessage(hashlib.sha256(payload).digest(), payload),
        certificate_chain=tuple(chain),
        tlog_entries=(cosign_bundle_entry(annotations[BUNDLE]),) if BUNDLE in annotations else (),
        timestamps=(_b64(json.loads(timestamp)["SignedRFC3161Timestamp"]),) if timestamp else (),
    )
