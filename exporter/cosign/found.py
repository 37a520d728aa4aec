"""What signature discovery hands to verification: raw, untrusted containers of signatures and attestations.

Discovery (``exporter.cosign.discovery``) looks in every place a signer may have put something for one image
digest; it parses nothing beyond OCI manifests and trusts nothing. Verification (formats, trust, identity)
turns each ``FoundArtifact`` into a checked signature or a reason why it is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from exporter.registry.reference import ImageReference

# Where an artifact was found: cosign's legacy tags, the OCI 1.1 referrers API, or the referrers tag fallback.
Place = Literal["sig-tag", "att-tag", "referrers-api", "referrers-tag"]


@dataclass(frozen=True)
class FoundArtifact:
    """One layer that may hold a signature, an attestation envelope or a Sigstore bundle.

    ``repository`` is ``registry/repository`` where it was found (the image's, or a separate signature
    repository). ``content`` is the layer blob, digest-checked and size-capped (a simple-signing payload for
    ``.sig``, a DSSE envelope for ``.att``, bundle JSON for a referrer); it is ``None`` with ``problem`` set
    when it could not be taken (too large). ``annotations`` are the layer's (cosign keeps signature,
    certificate, chain, bundle and RFC 3161 timestamp there); ``artifact_type`` is the manifest's
    ``artifactType`` (or config media type) for referrers.
    """

    place: Place
    repository: str
    manifest_digest: str
    layer_digest: str
    layer_media_type: str
    content: bytes | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class FoundArtifacts:
    """Everything found for ``reference`` at ``digest``; no artifacts means nothing was signed or attested.

    ``skipped`` says, one line each, what was there but not taken (a referrer about another image, over a
    limit, the referrers beyond the first 50): verification cites these when nothing verifies, so a user
    sees why a signature they pushed did not count.
    """

    reference: ImageReference
    digest: str
    artifacts: tuple[FoundArtifact, ...]
    skipped: tuple[str, ...] = ()
