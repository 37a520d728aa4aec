"""OCI and Docker manifest documents: the parts verification needs (layers, index entries, annotations, and
the OCI 1.1 ``subject``/``artifactType`` that tie a referrer to the image it is about)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.jsondoc import parse_json_object

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
# The config of artifacts that need none (OCI 1.1 "empty descriptor"): the two bytes ``{}``.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ManifestFormatError(ValueError):
    """The bytes are not a manifest of a supported media type."""


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest, size, annotations and (in referrer lists) artifact type."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A fetched manifest whose bytes matched ``digest``; ``layers`` for images, ``manifests`` for indexes.

    ``subject`` is the manifest this one refers to (OCI 1.1 referrers); ``artifact_type`` is the declared
    ``artifactType`` (for an image manifest without one, OCI says the config's media type stands in: see
    ``effective_artifact_type``).
    """

    digest: str
    media_type: str
    raw: bytes
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def effective_artifact_type(self) -> str | None:
        """``artifactType``, else the config's media type (the OCI image spec's rule for image manifests)."""
        if self.artifact_type is not None:
            return self.artifact_type
        return self.config.media_type if self.config is not None else None


def _annotations(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestFormatError(f"{where} is not an object")
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def _descriptor(entry: Any, where: str) -> Descriptor:
    if not isinstance(entry, dict):
        raise ManifestFormatError(f"{where} is not an object")
    media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManifestFormatError(f"{where} lacks a string mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestFormatError(f"{where} has no valid size")
    artifact_type = entry.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestFormatError(f"{where}.artifactType is not a string")
    annotations = _annotations(entry.get("annotations"), f"{where}.annotations")
    return Descriptor(media_type, digest, size, annotations, artifact_type)


def _optional_descriptor(document: dict[str, Any], key: str) -> Descriptor | None:
    entry = document.get(key)
    return None if entry is None else _descriptor(entry, key)


def _descriptors(document: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    entries = document.get(key) or []
    if not isinstance(entries, list):
        raise ManifestFormatError(f"{key} is not a list")
    return tuple(_descriptor(entry, f"{key}[{index}]") for index, entry in enumerate(entries))


def parse_manifest(raw: bytes, digest: str, content_type: str | None) -> Manifest:
    """Parse manifest bytes already checked against ``digest``; the body's mediaType wins over the header."""
    document = parse_json_object(raw, "manifest", ManifestFormatError)
    header_type = (content_type or "").split(";")[0].strip()
    media_type = document.get("mediaType") or header_type
    if not isinstance(media_type, str) or media_type not in MANIFEST_MEDIA_TYPES:
        raise ManifestFormatError(
            f"unsupported manifest media type {media_type!r} "
            f"(expected one of {', '.join(MANIFEST_MEDIA_TYPES)})"
        )
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestFormatError("artifactType is not a string")
    index = media_type in INDEX_MEDIA_TYPES
    return Manifest(
        digest,
        media_type,
        raw,
        layers=() if index else _descriptors(document, "layers"),
        manifests=_descriptors(document, "manifests") if index else (),
        config=None if index else _optional_descriptor(document, "config"),
        subject=_optional_descriptor(document, "subject"),
        artifact_type=artifact_type,
        annotations=_annotations(document.get("annotations"), "annotations"),
    )
