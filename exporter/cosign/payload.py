"""cosign's simple-signing payload: the signed JSON that binds a signature to one image digest."""

from __future__ import annotations

import json
from dataclasses import dataclass

COSIGN_SIGNATURE_TYPE = "cosign container image signature"


class PayloadError(ValueError):
    """The payload is not a cosign simple-signing document; says which field is wrong."""


@dataclass(frozen=True)
class SimpleSigningPayload:
    """The fields of ``critical`` that verification checks."""

    docker_manifest_digest: str
    docker_reference: str | None
    type: str


def parse_payload(payload: bytes) -> SimpleSigningPayload:
    """Parse and validate payload bytes (only after a trusted key verified them)."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"payload is not JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(document, dict):
        raise PayloadError("payload is not a JSON object")
    critical = document.get("critical")
    if not isinstance(critical, dict):
        raise PayloadError("payload has no 'critical' object")
    kind = critical.get("type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise PayloadError(f"payload critical.type is {kind!r}, not {COSIGN_SIGNATURE_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str) or not digest:
        raise PayloadError("payload has no critical.image.docker-manifest-digest")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    return SimpleSigningPayload(
        docker_manifest_digest=digest,
        docker_reference=reference if isinstance(reference, str) else None,
        type=kind,
    )
