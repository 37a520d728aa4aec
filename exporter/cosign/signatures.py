"""Finding an image's cosign signatures in its registry: the ``sha256-<hex>.sig`` manifest and its layers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter.cosign.outcomes import VerificationError
from exporter.registry.client import RegistryClient
from exporter.registry.errors import NotFoundError, RegistryError
from exporter.registry.manifest import Descriptor
from exporter.registry.reference import ImageReference

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
MAX_PAYLOAD_BYTES = 1024 * 1024
# More signatures than this on one image is abuse, not a real signing history.
MAX_SIGNATURE_LAYERS = 64


@dataclass(frozen=True)
class SignatureLayer:
    """One signature as found: payload bytes plus the layer's annotations (checked later, not here).

    ``problem`` is set when the payload could not be taken at all (too large); the layer then counts as an
    invalid signature rather than failing the whole verification.
    """

    digest: str
    payload: bytes
    signature: str | None
    bundle: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class SignatureSet:
    """Every simple-signing layer of ``reference``'s ``.sig`` manifest for ``digest`` (empty: unsigned)."""

    reference: ImageReference
    digest: str
    layers: tuple[SignatureLayer, ...]


def signature_tag(digest: str) -> str:
    """cosign's tag for the signatures of ``digest``: ``sha256:<hex>`` -> ``sha256-<hex>.sig``."""
    return digest.replace(":", "-", 1) + ".sig"


def _layer(descriptor: Descriptor, payloads: dict[str, bytes]) -> SignatureLayer:
    signature = descriptor.annotations.get(SIGNATURE_ANNOTATION)
    bundle = descriptor.annotations.get(BUNDLE_ANNOTATION)
    if descriptor.digest not in payloads:
        problem = f"payload of {descriptor.size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
        return SignatureLayer(descriptor.digest, b"", signature, bundle, problem)
    return SignatureLayer(descriptor.digest, payloads[descriptor.digest], signature, bundle)


async def fetch_signatures(
    client: RegistryClient, reference: ImageReference
) -> SignatureSet | VerificationError:
    """Resolve the digest (unless pinned) and fetch every signature layer, within one deadline."""
    with client.budget():
        try:
            digest = await client.resolve_digest(reference)
            try:
                manifest = await client.get_manifest(reference, signature_tag(digest))
            except NotFoundError:
                return SignatureSet(reference, digest, ())
            if manifest.is_index:
                return VerificationError(reference, f"signature tag {signature_tag(digest)} holds an index")
            descriptors = [d for d in manifest.layers if d.media_type == SIMPLE_SIGNING_MEDIA_TYPE]
            if len(descriptors) > MAX_SIGNATURE_LAYERS:
                return VerificationError(
                    reference,
                    f"{len(descriptors)} signatures on one image exceed the limit of {MAX_SIGNATURE_LAYERS}",
                )
            # Several signatures often share one payload blob: fetch each distinct blob once.
            wanted = sorted({d.digest for d in descriptors if d.size <= MAX_PAYLOAD_BYTES})
            blobs = await asyncio.gather(
                *(client.get_blob(reference, blob, MAX_PAYLOAD_BYTES) for blob in wanted)
            )
        except RegistryError as exc:
            return VerificationError(reference, str(exc))
    payloads = dict(zip(wanted, blobs, strict=True))
    return SignatureSet(reference, digest, tuple(_layer(d, payloads) for d in descriptors))
