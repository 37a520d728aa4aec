"""Pushing signatures and attestations into a test registry in every layout signers use today.

Typical use, with a ``RegistryServer`` (tests/support/registry.py) or a ``ReferrersFront`` over one
(tests/support/referrers_front.py: push through the front so that its referrers API lists what you push)::

    digest = registry.push_image("team/app", "v1")            # .sig and .att: straight to the registry
    registry.push_signature_layers("team/app", digest, [cosign_signature_layer(key, digest, ref)])  # .sig
    push_att(registry, "team/app", digest, [SignatureLayerSpec(envelope, {}, DSSE_ENVELOPE)])  # .att
    referrer = push_referrer(front, "team/app", digest, SIGSTORE_BUNDLE_V03,
                             [SignatureLayerSpec(bundle_json, {}, SIGSTORE_BUNDLE_V03)])
    push_referrers_index(registry, "team/app", digest, [referrer])   # the sha256-<hex> fallback index
    attach_referrer(registry, "team/app", digest, ...)   # both at once: what cosign does without the API

Layers may hold anything (malformed bundles, wrong media types): this is how tests build bad input.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.support.registry import OCI_MANIFEST, RegistryServer, SignatureLayerSpec, sha256_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"


class Pusher(Protocol):
    """What the helpers push through: a RegistryServer, or a ReferrersFront in front of one."""

    def push_blob(self, repo: str, data: bytes) -> str: ...

    def push_manifest(
        self, repo: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str: ...

    def get_manifest(self, repo: str, reference: str, accept: str = OCI_MANIFEST) -> bytes | None: ...


def tag_for(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>``: the referrers tag schema (and the stem of ``.sig``/``.att``)."""
    return digest.replace(":", "-", 1)


def push_att(
    registry: RegistryServer, repo: str, image_digest: str, layers: Sequence[SignatureLayerSpec]
) -> str:
    """Append layers (DSSE envelopes, for a real attestation) to ``repo:sha256-<hex>.att``."""
    return registry.push_signature_layers(repo, image_digest, layers, suffix=".att")


@dataclass(frozen=True)
class Referrer:
    """A pushed referrer manifest, as a referrers index lists it."""

    digest: str
    size: int
    artifact_type: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    media_type: str = OCI_MANIFEST

    def descriptor(self) -> dict[str, Any]:
        """The index entry (OCI descriptor with ``artifactType`` and the manifest's annotations)."""
        entry: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type is not None:
            entry["artifactType"] = self.artifact_type
        if self.annotations:
            entry["annotations"] = dict(self.annotations)
        return entry


def referrer_manifest(
    subject: Mapping[str, Any],
    artifact_type: str | None,
    layers: Sequence[SignatureLayerSpec],
    annotations: Mapping[str, str] | None = None,
    config_media_type: str = OCI_EMPTY,
) -> bytes:
    """An OCI 1.1 artifact manifest: empty config, ``layers``, ``subject`` (a descriptor) and artifactType."""
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    document["config"] = {
        "mediaType": config_media_type,
        "digest": sha256_digest(EMPTY_CONFIG),
        "size": len(EMPTY_CONFIG),
    }
    document["layers"] = [
        {
            "mediaType": layer.media_type,
            "digest": sha256_digest(layer.payload),
            "size": len(layer.payload),
            **({"annotations": dict(layer.annotations)} if layer.annotations else {}),
        }
        for layer in layers
    ]
    document["subject"] = dict(subject)
    if annotations:
        document["annotations"] = dict(annotations)
    return json.dumps(document, separators=(",", ":")).encode()


def subject_descriptor(pusher: Pusher, repo: str, digest: str) -> dict[str, Any]:
    """The descriptor of manifest ``digest`` in ``repo`` (media type and size as the registry holds it)."""
    for media_type in (OCI_MANIFEST, OCI_INDEX):
        raw = pusher.get_manifest(repo, digest, accept=media_type)
        if raw is not None:
            return {"mediaType": media_type, "digest": digest, "size": len(raw)}
    raise LookupError(f"{repo}@{digest} is not in the registry; pass subject= explicitly")


def push_referrer(
    pusher: Pusher,
    repo: str,
    subject_digest: str,
    artifact_type: str | None,
    layers: Sequence[SignatureLayerSpec],
    *,
    annotations: Mapping[str, str] | None = None,
    subject: Mapping[str, Any] | None = None,
    subject_repo: str | None = None,
) -> Referrer:
    """Push a referrer of ``subject_digest`` (its blobs, then the manifest by digest) and return it.

    ``subject`` overrides the subject descriptor (e.g. to lie about it); by default it is looked up in
    ``subject_repo`` (default ``repo``; give the image's repository when pushing to a separate signature
    repository).
    """
    if subject is None:
        subject = subject_descriptor(pusher, subject_repo or repo, subject_digest)
    pusher.push_blob(repo, EMPTY_CONFIG)
    for layer in layers:
        pusher.push_blob(repo, layer.payload)
    manifest = referrer_manifest(subject, artifact_type, layers, annotations)
    digest = pusher.push_manifest(repo, sha256_digest(manifest), manifest)
    return Referrer(digest, len(manifest), artifact_type, dict(annotations or {}))


def push_referrers_index(
    pusher: Pusher,
    repo: str,
    subject_digest: str,
    referrers: Sequence[Referrer | Mapping[str, Any]],
    *,
    append: bool = True,
) -> str:
    """Write the referrers tag schema's ``repo:sha256-<hex>`` OCI index (after the entries already there
    unless ``append`` is false); entries are Referrers or raw descriptors. Returns the index digest."""
    tag = tag_for(subject_digest)
    entries: list[Any] = []
    existing = pusher.get_manifest(repo, tag, accept=OCI_INDEX) if append else None
    if existing is not None:
        entries = list(json.loads(existing)["manifests"])
    entries += [entry.descriptor() if isinstance(entry, Referrer) else dict(entry) for entry in referrers]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return pusher.push_manifest(repo, tag, json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX)


def attach_referrer(
    pusher: Pusher,
    repo: str,
    subject_digest: str,
    artifact_type: str | None,
    layers: Sequence[SignatureLayerSpec],
    **kwargs: Any,
) -> Referrer:
    """What cosign does on a registry without the referrers API: push the referrer, then list it in the
    ``sha256-<hex>`` index."""
    referrer = push_referrer(pusher, repo, subject_digest, artifact_type, layers, **kwargs)
    push_referrers_index(pusher, repo, subject_digest, [referrer])
    return referrer
