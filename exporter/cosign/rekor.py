"""Offline check of a ``dev.sigstore.cosign/bundle`` annotation: Rekor's signed entry timestamp (SET).

A valid SET proves Rekor logged *this* entry; the entry must then be about this very signature, payload and
key, or a bundle copied from another signature would pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from exporter.cosign.keys import KeyLoadError, TrustedKey, load_public_key, signature_is_valid

MAX_BUNDLE_CHARS = 256 * 1024
_KEY_BASED_KINDS = ("hashedrekord", "rekord")


@dataclass(frozen=True)
class RekorBundle:
    """The parts of cosign's bundle annotation: SET plus the signed payload (entry body and its position)."""

    signed_entry_timestamp: bytes
    body: str
    integrated_time: int
    log_index: int
    log_id: str


def parse_bundle(text: str) -> RekorBundle:
    """Parse the annotation's JSON; raises ValueError naming the missing or malformed field."""
    if len(text) > MAX_BUNDLE_CHARS:
        raise ValueError(f"bundle annotation is larger than {MAX_BUNDLE_CHARS} characters")
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("bundle annotation is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("Payload"), dict):
        raise ValueError("bundle annotation has no 'Payload' object")
    payload = document["Payload"]
    body, integrated, index, log_id = (
        payload.get("body"),
        payload.get("integratedTime"),
        payload.get("logIndex"),
        payload.get("logID"),
    )
    if not isinstance(body, str) or not isinstance(log_id, str):
        raise ValueError("bundle Payload lacks 'body' or 'logID'")
    if not isinstance(integrated, int) or not isinstance(index, int):
        raise ValueError("bundle Payload lacks integer 'integratedTime' or 'logIndex'")
    try:
        set_bytes = base64.b64decode(str(document.get("SignedEntryTimestamp", "")), validate=True)
    except binascii.Error:
        raise ValueError("bundle SignedEntryTimestamp is not base64") from None
    if not set_bytes:
        raise ValueError("bundle has no SignedEntryTimestamp")
    return RekorBundle(set_bytes, body, integrated, index, log_id)


def _canonical_payload(bundle: RekorBundle) -> bytes:
    """What Rekor signed: the bundle Payload as RFC 8785 canonical JSON (sorted keys, no spaces)."""
    document = {
        "body": bundle.body,
        "integratedTime": bundle.integrated_time,
        "logID": bundle.log_id,
        "logIndex": bundle.log_index,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _entry(bundle: RekorBundle) -> dict[str, Any]:
    try:
        entry = json.loads(base64.b64decode(bundle.body, validate=True))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("bundle body is not base64-encoded JSON") from None
    if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
        raise ValueError("bundle body is not a Rekor entry")
    return entry


def _decode_b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise ValueError(f"Rekor entry {what} is not base64") from None


def check_bundle(
    bundle: RekorBundle,
    rekor_keys: tuple[TrustedKey, ...],
    signer: TrustedKey,
    signature: bytes,
    payload: bytes,
) -> str | None:
    """None when the SET verifies and the entry records ``signature`` over ``payload`` by ``signer``;
    otherwise the reason, in one line."""
    rekor_key = next((key for key in rekor_keys if key.fingerprint == bundle.log_id), None)
    if rekor_key is None:
        return f"Rekor bundle is from log {bundle.log_id[:16]}…, which matches no trusted Rekor key"
    if not signature_is_valid(rekor_key, _canonical_payload(bundle), bundle.signed_entry_timestamp):
        return f"Rekor signed entry timestamp does not verify with Rekor key {rekor_key.name}"
    try:
        entry = _entry(bundle)
        kind = entry.get("kind")
        if kind not in _KEY_BASED_KINDS:
            return f"Rekor entry kind {kind!r} is not a key-based signature entry"
        spec = entry["spec"]
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
