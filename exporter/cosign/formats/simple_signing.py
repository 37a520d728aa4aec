"""cosign's simple-signing payload: the signed JSON that binds a signature to one image digest."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.jsondoc import parse_json_object

COSIGN_SIGNATURE_TYPE = "cosign container image signature"


class PayloadError(ValueError):
    """The payload is not a cosign simple-signing document; says which field is wrong."""


@dataclass(frozen=True)
class SimpleSigningPayload:
    """The fields of ``critical`` that verification checks, and the string entries of ``optional``.

    ``annotations`` are what ``cosign sign -a key=value`` put in ``optional`` (sorted key/value pairs);
    entries whose value is not a string are left out, as no ``key=value`` requirement can equal them.
    """

    docker_manifest_digest: str
    docker_reference: str | None
    type: str
    annotations: tuple[tuple[str, str], ...] = field(default=())


def parse_payload(payload: bytes) -> SimpleSigningPayload:
    """Parse and validate payload bytes (only after a trusted key verified them)."""
    document = parse_json_object(payload, "payload", PayloadError)
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
    optional = document.get("optional")
    annotations = (
        tuple(sorted((k, v) for k, v in optional.items() if isinstance(v, str)))
        if isinstance(optional, dict)
        else ()
    )
    return SimpleSigningPayload(
        docker_manifest_digest=digest,
        docker_reference=reference if isinstance(reference, str) else None,
        type=kind,
        annotations=annotations,
    )
