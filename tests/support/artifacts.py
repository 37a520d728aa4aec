"""Signed artifacts as discovery hands them over (``FoundArtifacts``), built in memory with real keys.

For decisions without a registry: legacy ``.sig`` simple-signing layers, ``.att`` DSSE layers and Sigstore
bundles (message signature or DSSE) signed with a key. Registry round trips are tested elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from exporter.cosign.formats.dsse import INTOTO_PAYLOAD_TYPE, pae
from exporter.cosign.formats.intoto import COSIGN_SIGN_PREDICATE
from exporter.cosign.formats.legacy import DSSE_MEDIA_TYPE, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifact, FoundArtifacts, Place
from exporter.registry.reference import ImageReference
from tests.support.registry import PrivateKey, sign_bytes, simple_signing_payload

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def artifact(
    place: Place,
    content: bytes | None,
    media_type: str,
    annotations: Mapping[str, str] | None = None,
    *,
    repository: str = "registry.test/team/app",
    problem: str | None = None,
) -> FoundArtifact:
    return FoundArtifact(
        place=place,
        repository=repository,
        manifest_digest=_digest(b"manifest" + (content or b"")),
        layer_digest=_digest(content or b""),
        layer_media_type=media_type,
        content=content,
        annotations=dict(annotations or {}),
        artifact_type=media_type if place.startswith("referrers") else None,
        problem=problem,
    )


def found(reference: ImageReference, digest: str, *artifacts: FoundArtifact) -> FoundArtifacts:
    return FoundArtifacts(reference, digest, artifacts)


def sig_layer(
    key: PrivateKey,
    digest: str,
    docker_reference: str = "registry.test/team/app",
    *,
    hash_name: str = "sha256",
    payload: bytes | None = None,
    annotations: Mapping[str, str] | None = None,
) -> FoundArtifact:
    """A ``.sig`` layer: the simple-signing payload for ``digest`` signed by ``key``."""
    content = payload if payload is not None else simple_signing_payload(digest, docker_reference)
    signature = b64(sign_bytes(key, content, hash_name))
    return artifact(
        "sig-tag",
        content,
        SIMPLE_SIGNING_MEDIA_TYPE,
        {SIGNATURE_ANNOTATION: signature, **(annotations or {})},
    )


def statement(digest: str, predicate_type: str, predicate: Any = None, version: str = "v1") -> bytes:
    document: dict[str, Any] = {
        "_type": f"https://in-toto.io/Statement/{version}",
        "subject": [{"name": "registry.test/team/app", "digest": {"sha256": digest.split(":", 1)[1]}}],
        "predicateType": predicate_type,
    }
    if predicate is not None:
        document["predicate"] = predicate
    return json.dumps(document).encode()


def envelope(key: PrivateKey, payload: bytes, payload_type: str = INTOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope over ``payload`` signed (over PAE) by ``key``."""
    signature = sign_bytes(key, pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": [{"keyid": "", "sig": b64(signature)}],
    }


def att_layer(key: PrivateKey, payload: bytes, annotations: Mapping[str, str] | None = None) -> FoundArtifact:
    """A legacy ``.att`` layer: a DSSE envelope (JSON) over ``payload``."""
    content = json.dumps(envelope(key, payload)).encode()
    return artifact("att-tag", content, DSSE_MEDIA_TYPE, {"predicateType": "", **(annotations or {})})


def _key_material(hint: str = "") -> dict[str, Any]:
    return {"publicKey": {"hint": hint}, "tlogEntries": []}


def dsse_bundle(
    key: PrivateKey, payload: bytes, *, media_type: str = BUNDLE_V03, place: Place = "referrers-tag"
) -> FoundArtifact:
    """A key-signed Sigstore bundle holding a DSSE envelope (cosign 3's layout), without log entries."""
    document = {
        "mediaType": media_type,
        "verificationMaterial": _key_material(),
        "dsseEnvelope": envelope(key, payload),
    }
    return artifact(place, json.dumps(document).encode(), media_type)


def image_signature_bundle(key: PrivateKey, digest: str, **kwargs: Any) -> FoundArtifact:
    """cosign 3's image signature: a DSSE bundle over a ``cosign/sign/v1`` statement about ``digest``."""
    return dsse_bundle(key, statement(digest, COSIGN_SIGN_PREDICATE), **kwargs)


def message_bundle(key: PrivateKey, digest: str, *, media_type: str = BUNDLE_V03) -> FoundArtifact:
    """A key-signed bundle whose message signature is over the artifact with sha256 ``digest``."""
    value = bytes.fromhex(digest.split(":", 1)[1])
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(value, ec.ECDSA(Prehashed(hashes.SHA256())))
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(value, PKCS1v15(), Prehashed(hashes.SHA256()))
    else:
        raise ValueError("message signatures over a digest need an ECDSA or RSA key")
    document = {
        "mediaType": media_type,
        "verificationMaterial": _key_material(),
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(value)},
            "signature": b64(signature),
        },
    }
    return artifact("referrers-api", json.dumps(document).encode(), media_type)
