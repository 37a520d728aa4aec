"""Signature formats: every found layer (legacy ``.sig``/``.att``, Sigstore bundles) -> ``Candidate``s.

Parsing happens once per image, whatever the number of attestors; nothing here is trusted yet. Hostile
content never raises: it becomes an ``Unreadable`` with the reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from exporter.cosign.formats.bundle import is_bundle_media_type, parse_bundle
from exporter.cosign.formats.candidate import Candidate, Unreadable
from exporter.cosign.formats.fields import FormatError
from exporter.cosign.formats.legacy import (
    DSSE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    parse_att_layer,
    parse_sig_layer,
)
from exporter.cosign.found import FoundArtifact, FoundArtifacts

__all__ = ["Candidate", "FormatError", "Parsed", "Unreadable", "parse_found"]

_PLACE_NAMES = {
    "sig-tag": ".sig",
    "att-tag": ".att",
    "referrers-api": "referrer",
    "referrers-tag": "referrer (tag fallback)",
}


@dataclass(frozen=True)
class Parsed:
    """The candidates of one image's found artifacts, and the artifacts that yielded none."""

    candidates: tuple[Candidate, ...]
    unreadable: tuple[Unreadable, ...]


def _where(number: int, artifact: FoundArtifact) -> str:
    return f"signature {number} ({_PLACE_NAMES[artifact.place]} {artifact.layer_digest[:19]}…)"


def _parse(artifact: FoundArtifact, where: str) -> tuple[Candidate, ...]:
    if artifact.problem is not None:
        raise FormatError(artifact.problem)
    if artifact.content is None:
        raise FormatError("layer content was not fetched")
    media_type = artifact.layer_media_type
    if is_bundle_media_type(media_type) or (artifact.artifact_type or "").startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        return parse_bundle(artifact, artifact.content, where)
    if media_type == SIMPLE_SIGNING_MEDIA_TYPE:
        return (parse_sig_layer(artifact, artifact.content, where),)
    if media_type == DSSE_MEDIA_TYPE:
        return parse_att_layer(artifact, artifact.content, where)
    raise FormatError(f"layer media type {media_type[:100]!r} holds no signature trustwatch reads")


def parse_found(found: FoundArtifacts) -> Parsed:
    """Parse every artifact; the ones that are not signatures are kept with the reason."""
    candidates: list[Candidate] = []
    unreadable: list[Unreadable] = []
    for number, artifact in enumerate(found.artifacts, start=1):
        where = _where(number, artifact)
        try:
            candidates.extend(dataclasses.replace(c, order=number) for c in _parse(artifact, where))
        except FormatError as exc:
            unreadable.append(Unreadable(where, artifact.place, str(exc), number))
    return Parsed(tuple(candidates), tuple(unreadable))
