"""Rekor entry bodies of every kind trustwatch reads must record *this* signature: a positive and the
mismatches for the kinds the interop vectors and the box do not produce (intoto v0.0.1/v0.0.2, as cosign 2
logs legacy attestations, and dsse v0.0.2 of Rekor v2)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.sigstore import SignedEnvelope, SignedMessage, TlogEntry
from exporter.sigstore.rekor import Signer, match_entry_body

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'
ENVELOPE = SignedEnvelope("application/vnd.in-toto+json", PAYLOAD, ())
SIGNATURE = KEY.sign(ENVELOPE.pae(), ec.ECDSA(hashes.SHA256()))
ENVELOPE = SignedEnvelope(ENVELOPE.payload_type, PAYLOAD, (SIGNATURE,))
SIGNER = Signer(KEY.public_key(), None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _intoto_v2(signature: bytes, key: ec.EllipticCurvePrivateKey, payload: bytes) -> dict[str, Any]:
    return {
        "content": {
            "envelope": {
                "payloadType": ENVELOPE.payload_type,
                "signatures": [{"sig": _b64(_b64(signature).encode()), "publicKey": _b64(_pem(key))}],
            },
            "hash": {"algorithm": "sha256", "value": "00" * 32},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        }
    }


def _intoto_v1(signature: bytes, key: ec.EllipticCurvePrivateKey, payload: bytes) -> dict[str, Any]:
    del signature
    return {
        "content": {
            "envelope": json.dumps({"payloadType": ENVELOPE.payload_type}),
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
        },
        "publicKey": _b64(_pem(key)),
    }


def _dsse_v2(signature: bytes, key: ec.EllipticCurvePrivateKey, payload: bytes) -> dict[str, Any]:
    verifier = {"publicKey": {"rawBytes": _b64(_der(key))}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    return {
        "dsseV002": {
            "payloadHash": {"algorithm": "SHA2_256", "digest": _b64(hashlib.sha256(payload).digest())},
            "signatures": [{"content": _b64(signature), "verifier": verifier}],
        }
    }


def _entry(kind: str, version: str, spec: dict[str, Any]) -> TlogEntry:
    body = json.dumps({"apiVersion": version, "kind": kind, "spec": spec}).encode()
    return TlogEntry(b"\0" * 32, 7, body, kind, version)


BUILDERS = [("intoto", "0.0.2", _intoto_v2), ("intoto", "0.0.1", _intoto_v1), ("dsse", "0.0.2", _dsse_v2)]


@pytest.mark.parametrize(("kind", "version", "build"), BUILDERS)
def test_entry_kinds_bind_signature_payload_and_key(kind: str, version: str, build: Any) -> None:
    assert (
        match_entry_body(_entry(kind, version, build(SIGNATURE, KEY, PAYLOAD)), SIGNATURE, ENVELOPE, SIGNER)
        is None
    )
    other_payload = _entry(kind, version, build(SIGNATURE, KEY, PAYLOAD + b" "))
    assert (
        match_entry_body(other_payload, SIGNATURE, ENVELOPE, SIGNER)
        == "entry records a different payload hash"
    )
    other_key = _entry(kind, version, build(SIGNATURE, OTHER, PAYLOAD))
    assert match_entry_body(other_key, SIGNATURE, ENVELOPE, SIGNER) == "entry records a different public key"
    message = SignedMessage(hashlib.sha256(PAYLOAD).digest(), PAYLOAD)
    assert "not a message signature" in str(
        match_entry_body(_entry(kind, version, build(SIGNATURE, KEY, PAYLOAD)), SIGNATURE, message, SIGNER)
    )


@pytest.mark.parametrize(
    ("kind", "version", "build"), [b for b in BUILDERS if b[1] != "0.0.1" or b[0] != "intoto"]
)
def test_entry_kinds_bind_the_signature_bytes(kind: str, version: str, build: Any) -> None:
    other = OTHER.sign(ENVELOPE.pae(), ec.ECDSA(hashes.SHA256()))
    result = match_entry_body(_entry(kind, version, build(other, KEY, PAYLOAD)), SIGNATURE, ENVELOPE, SIGNER)
    assert result in ("entry records a different signature", "entry records different envelope signatures")


def test_body_must_say_what_the_entry_says() -> None:
    entry = _entry("dsse", "0.0.2", _dsse_v2(SIGNATURE, KEY, PAYLOAD))
    relabelled = TlogEntry(entry.log_id, entry.log_index, entry.canonicalized_body, "hashedrekord", "0.0.2")
    assert "but the entry says hashedrekord 0.0.2" in str(
        match_entry_body(relabelled, SIGNATURE, ENVELOPE, SIGNER)
    )
    unknown = _entry("cose", "0.0.1", {})
    assert "is not supported" in str(match_entry_body(unknown, SIGNATURE, ENVELOPE, SIGNER))
