"""OCI and Docker manifest documents: the parts verification needs (layers, index entries, annotations)."""

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

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ManifestFormatError(ValueError):
    """The bytes are not a manifest of a supported media type."""


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: its media type, digest, size and annotations."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A fetched manifest whose bytes matched ``digest``; ``layers`` for images, ``manifests`` for indexes."""

    digest: str
    media_type: str
    raw: bytes
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


def _descriptor(entry: Any, where: str) -> Descriptor:
    if not isinstance(entry, dict):
        raise ManifestFormatError(f"{where} is not an object")
    media_type, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ManifestFormatError(f"{where} lacks a string mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestFormatError(f"{where} has no valid size")
    raw_annotations = entry.get("annotations") or {}
    if not isinstance(raw_annotations, dict):
        raise ManifestFormatError(f"{where}.annotations is not an object")
    annotations = {str(k): v for k, v in raw_annotations.items() if isinstance(v, str)}
    return Descriptor(media_type, digest, size, annotations)


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
    if media_type in INDEX_MEDIA_TYPES:
        return Manifest(digest, media_type, raw, manifests=_descriptors(document, "manifests"))
    return Manifest(digest, media_type, raw, layers=_descriptors(document, "layers"))
