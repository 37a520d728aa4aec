"""Offline check of a legacy key-signed ``.sig`` layer's Rekor entry: Rekor's signed entry timestamp (SET).

A valid SET proves Rekor logged *this* entry; the entry must then be about this very signature, payload and
key, or a bundle copied from another signature would pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from exporter.cosign.keys import KeyLoadError, TrustedKey, load_public_key, signature_is_valid
from exporter.sigstore import TlogEntry

_KEY_BASED_KINDS = ("hashedrekord", "rekord")


def _canonical_payload(entry: TlogEntry) -> bytes:
    """What Rekor signed: the entry's SET payload as RFC 8785 canonical JSON (sorted keys, no spaces)."""
    document = {
        "body": base64.b64encode(entry.canonicalized_body).decode("ascii"),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _body(entry: TlogEntry) -> dict[str, Any]:
    try:
        body = json.loads(entry.canonicalized_body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("Rekor entry body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise ValueError("Rekor entry body is not a Rekor entry")
    return body


def _decode_b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise ValueError(f"Rekor entry {what} is not base64") from None


def check_entry(
    entry: TlogEntry,
    rekor_keys: tuple[TrustedKey, ...],
    signer: TrustedKey,
    signature: bytes,
    payload: bytes,
) -> str | None:
    """None when the SET verifies and the entry records ``signature`` over ``payload`` by ``signer``;
    otherwise the reason, in one line."""
    log_id = entry.log_id.hex()
    rekor_key = next((key for key in rekor_keys if key.fingerprint == log_id), None)
    if rekor_key is None:
        return f"Rekor bundle is from log {log_id[:16]}…, which matches no trusted Rekor key"
    if entry.signed_entry_timestamp is None or entry.integrated_time is None:
        return "Rekor entry has no signed entry timestamp"
    if not signature_is_valid(rekor_key, _canonical_payload(entry), entry.signed_entry_timestamp):
        return f"Rekor signed entry timestamp does not verify with Rekor key {rekor_key.name}"
    try:
        body = _body(entry)
        kind = body.get("kind")
        if kind not in _KEY_BASED_KINDS:
            return f"Rekor entry kind {kind!r} is not a key-based signature entry"
        spec = body["spec"]
        recorded_signature = spec.get("signature") or {}
        if _decode_b64(recorded_signature.get("content"), "signature") != signature:
            return "Rekor entry records a different signature"
        data = spec.get("data") or {}
        digest = (data.get("hash") or {}).get("value")
        if digest is None and "content" in data:
            digest = hashlib.sha256(_decode_b64(data["content"], "data")).hexdigest()
        if digest != hashlib.sha256(payload).hexdigest():
            return "Rekor entry records a different payload hash"
        public_key = _decode_b64((recorded_signature.get("publicKey") or {}).get("content"), "public key")
        recorded_key = load_public_key(public_key, "Rekor entry key")
    except (ValueError, KeyLoadError, AttributeError) as exc:
        return f"Rekor entry unusable: {exc}"
    if recorded_key.fingerprint != signer.fingerprint:
        return f"Rekor entry records a different public key than {signer.name}"
    return None
