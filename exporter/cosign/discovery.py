"""Finding everything signed about one image digest: one plan, every place at once, bounded.

Signers put signatures and attestations in four places: cosign's legacy ``sha256-<hex>.sig`` and
``sha256-<hex>.att`` tags, and OCI 1.1 referrers (manifests whose ``subject`` is the image), listed by the
referrers API or, on registries without it, by the ``sha256-<hex>`` tag index. Discovery asks every place
concurrently, once per image whatever the number of attestors (N keys x M signatures pulls are what make
admission slow), and hands verification raw, untrusted ``FoundArtifacts``.

Bounds: at most ``MAX_REFERRERS`` referrers, ``MAX_LAYERS`` layers per manifest, every manifest and blob
size-capped and digest-checked, and ``MAX_TOTAL_BLOB_BYTES`` of blobs per image; a blob shared by several
layers (or places) is fetched once. What is refused for being over a bound, about another image or of the
wrong kind becomes a line in ``FoundArtifacts.skipped``; registry trouble (unreachable, HTTP errors, content
not matching its digest) is a ``VerificationError`` value, never an exception; a missing tag is "nothing
there".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

from exporter.cosign.found import FoundArtifact, FoundArtifacts, Place
from exporter.cosign.outcomes import VerificationError
from exporter.registry.client import RegistryClient
from exporter.registry.errors import NotFoundError, RegistryError
from exporter.registry.manifest import MAX_MANIFEST_BYTES, OCI_MANIFEST, Descriptor, Manifest
from exporter.registry.reference import (
    ImageReference,
    InvalidReferenceError,
    is_sha256_digest,
    parse_reference,
)

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
# cosign 2's experimental OCI 1.1 mode: simple-signing layers in a referrer of this artifact type.
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
# Referrers worth fetching: Sigstore bundles (cosign 3 signatures and attestations; every media type
# spelling of v0.1-v0.3) and cosign 2 signature artifacts. SBOMs and other referrers are left alone.
SIGNATURE_ARTIFACT_TYPES = frozenset(
    {
        SIGSTORE_BUNDLE_V03,
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        COSIGN_SIGNATURE_ARTIFACT,
    }
)
# Which layers of the legacy tags hold something: cosign writes nothing else there.
LEGACY_LAYER_TYPES: dict[Place, str] = {
    "sig-tag": SIMPLE_SIGNING_MEDIA_TYPE,
    "att-tag": DSSE_ENVELOPE_MEDIA_TYPE,
}

T = TypeVar("T")

MAX_REFERRERS = 50
MAX_REFERRER_PAGES = 5  # of a paged referrers list; registries page at 100 entries or more
MAX_LAYERS = 64
MAX_PAYLOAD_BYTES = 1024 * 1024  # a simple-signing payload is a few hundred bytes
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024  # DSSE envelopes and bundles (the formats parse no more)
MAX_TOTAL_BLOB_BYTES = 32 * 1024 * 1024


def sig_tag(digest: str) -> str:
    """cosign's signature tag for ``digest``: ``sha256:<hex>`` -> ``sha256-<hex>.sig``."""
    return referrers_tag(digest) + ".sig"


def att_tag(digest: str) -> str:
    """cosign's attestation tag for ``digest``: ``sha256-<hex>.att``."""
    return referrers_tag(digest) + ".att"


# A tag is at most 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-' (OCI distribution spec).
_TAG_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
MAX_TAG_PREFIX = 128 - len("sha256-") - 64 - len(".sig")  # a tag is at most 128 characters


def tag_prefix_problem(prefix: str) -> str | None:
    """None when ``prefix`` + ``sha256-<hex>.sig`` is a valid tag (cosign's attachment tag prefix); else why
    it is not."""
    if len(prefix) > MAX_TAG_PREFIX:
        return f"is {len(prefix)} characters; a tag prefix may have at most {MAX_TAG_PREFIX}"
    if prefix and not _TAG_PREFIX.fullmatch(prefix):
        return (
            f"{prefix[:80]!r} cannot start a tag: use letters, digits, '_', '.' and '-', not starting "
            "with '.' or '-'"
        )
    return None


def referrers_tag(digest: str) -> str:
    """The OCI referrers tag schema's tag for ``digest`` (``sha256-<hex>``), used without a referrers API."""
    return digest.replace(":", "-", 1)


def parse_signature_repository(text: str) -> ImageReference:
    """A separate signature repository (Kyverno ``repository``, cosign ``COSIGN_REPOSITORY``) such as
    ``registry.example/team/signatures``; raises InvalidReferenceError for a tag, a digest or a bad name."""
    parsed = parse_reference(text)
    if parsed.digest is not None or parsed.tag != "latest" or text.strip().endswith(":latest"):
        raise InvalidReferenceError(text, "a signature repository is a repository, without tag or digest")
    return ImageReference(parsed.registry, parsed.repository, None, None)


@dataclass(frozen=True)
class _Layer:
    """A layer worth fetching, with where it came from."""

    place: Place
    manifest: Manifest
    descriptor: Descriptor
    artifact_type: str | None


@dataclass(frozen=True)
class _PlaceResult:
    layers: tuple[_Layer, ...] = ()
    skipped: tuple[str, ...] = ()


def _shown(text: str) -> str:
    """A registry-supplied name as messages show it: digests as they are, anything else quoted and cut short
    (it may be megabytes long or hold newlines)."""
    return text if is_sha256_digest(text) else repr(text[:80])


async def _all(*awaitables: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather``, but the first failure cancels the others: once one request made the
    verification an error, the rest would only load the registry."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


def _cap_for(descriptor: Descriptor) -> int:
    return MAX_PAYLOAD_BYTES if descriptor.media_type == SIMPLE_SIGNING_MEDIA_TYPE else MAX_ENVELOPE_BYTES


async def _legacy_tag(
    client: RegistryClient, repository: ImageReference, place: Place, tag: str
) -> _PlaceResult:
    """The layers of a ``.sig`` or ``.att`` manifest; a missing tag is nothing there."""
    try:
        manifest = await client.get_manifest(repository, tag)
    except NotFoundError:
        return _PlaceResult()
    if manifest.is_index:
        return _PlaceResult(skipped=(f"{place} {tag}: holds an index, not a signature manifest",))
    wanted = LEGACY_LAYER_TYPES[place]
    descriptors = [d for d in manifest.layers if d.media_type == wanted]
    if len(descriptors) > MAX_LAYERS:
        return _PlaceResult(
            skipped=(f"{place} {tag}: {len(descriptors)} layers exceed the limit of {MAX_LAYERS}",)
        )
    return _PlaceResult(tuple(_Layer(place, manifest, d, None) for d in descriptors))


async def _referrers(
    client: RegistryClient, repository: ImageReference, digest: str, artifact_types: Collection[str]
) -> _PlaceResult:
    """Referrers of ``digest`` from the referrers API, or the ``sha256-<hex>`` index when there is none."""
    server_filter = next(iter(artifact_types)) if len(artifact_types) == 1 else None
    listed = await client.get_referrers(repository, digest, server_filter)
    place: Place = "referrers-api"
    skipped: list[str] = []
    if listed is not None:
        entries = list(listed.referrers)
        pages = 1
        # A paged list is read on until it names enough candidates, within a bound on round trips.
        while listed.next_page is not None and _wanted_count(entries, artifact_types) <= MAX_REFERRERS:
            if pages == MAX_REFERRER_PAGES:
                skipped.append(f"{place}: the list goes on beyond the {MAX_REFERRER_PAGES} pages read")
                break
            listed = await client.get_referrers_page(repository, digest, listed.next_page, server_filter)
            entries.extend(listed.referrers)
            pages += 1
    else:
        place = "referrers-tag"
        try:
            index = await client.get_manifest(repository, referrers_tag(digest))
        except NotFoundError:
            return _PlaceResult()
        if not index.is_index:
            return _PlaceResult(
                skipped=(f"{place} {referrers_tag(digest)}: holds a {index.media_type}, not an OCI index",)
            )
        entries = list(index.manifests)
    candidates = [entry for entry in entries if _wanted(entry, artifact_types)]
    if len(candidates) > MAX_REFERRERS:
        skipped.append(
            f"{place}: {len(candidates) - MAX_REFERRERS} more referrers not considered "
            f"(at most {MAX_REFERRERS} per image)"
        )
        candidates = candidates[:MAX_REFERRERS]
    fetchable: list[Descriptor] = []
    for entry in candidates:
        problem = _referrer_entry_problem(entry)
        if problem is not None:
            skipped.append(f"{place} {_shown(entry.digest)}: {problem}")
        else:
            fetchable.append(entry)
    manifests = await _all(*(_referrer_manifest(client, repository, entry) for entry in fetchable))
    layers: list[_Layer] = []
    for entry, manifest in zip(fetchable, manifests, strict=True):
        if manifest is None:
            # Deleting a referrer leaves it in the fallback index: not a reason to fail the whole image.
            skipped.append(f"{place} {entry.digest}: listed, but the registry does not have it (404)")
            continue
        taken, problem = _referrer_layers(place, manifest, digest, artifact_types)
        if problem is not None:
            skipped.append(f"{place} {manifest.digest}: {problem}")
        layers.extend(taken)
    return _PlaceResult(tuple(layers), tuple(skipped))


async def _referrer_manifest(
    client: RegistryClient, repository: ImageReference, entry: Descriptor
) -> Manifest | None:
    try:
        return await client.get_manifest(repository, entry.digest)
    except NotFoundError:
        return None


def _wanted(entry: Descriptor, artifact_types: Collection[str]) -> bool:
    # An entry without artifactType can only be judged after fetching it.
    return entry.artifact_type is None or entry.artifact_type in artifact_types


def _wanted_count(entries: Sequence[Descriptor], artifact_types: Collection[str]) -> int:
    return sum(1 for entry in entries if _wanted(entry, artifact_types))


def _referrer_entry_problem(entry: Descriptor) -> str | None:
    if not is_sha256_digest(entry.digest):
        return "its digest is not a sha256 digest"
    if entry.media_type != OCI_MANIFEST:
        return f"is a {_shown(entry.media_type)}, not an OCI image manifest"
    if entry.size > MAX_MANIFEST_BYTES:
        return f"manifest of {entry.size} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit"
    return None


def _referrer_layers(
    place: Place, manifest: Manifest, digest: str, artifact_types: Collection[str]
) -> tuple[tuple[_Layer, ...], str | None]:
    """The layers of one referrer manifest, or why it is not taken."""
    if manifest.subject is None or manifest.subject.digest != digest:
        about = _shown(manifest.subject.digest) if manifest.subject is not None else "nothing"
        return (), f"refers to {about}, not this image"
    artifact_type = manifest.effective_artifact_type
    if artifact_type not in artifact_types:
        return (), None  # listed without its artifactType; not a signature after all
    if len(manifest.layers) > MAX_LAYERS:
        return (), f"{len(manifest.layers)} layers exceed the limit of {MAX_LAYERS}"
    return tuple(_Layer(place, manifest, layer, artifact_type) for layer in manifest.layers), None


def _blob_plan(layers: Sequence[_Layer]) -> tuple[list[Descriptor], dict[str, str]]:
    """Which distinct blobs to fetch, in layer order within the total budget, and why others are not."""
    wanted: dict[str, Descriptor] = {}
    refused: dict[str, str] = {}
    total = 0
    for layer in layers:
        descriptor = layer.descriptor
        if descriptor.digest in wanted or descriptor.digest in refused:
            continue
        cap = _cap_for(descriptor)
        if not is_sha256_digest(descriptor.digest):
            refused[descriptor.digest] = f"layer digest {_shown(descriptor.digest)} is not a sha256 digest"
        elif descriptor.size > cap:
            refused[descriptor.digest] = f"layer of {descriptor.size} bytes exceeds the {cap}-byte limit"
        elif total + descriptor.size > MAX_TOTAL_BLOB_BYTES:
            refused[descriptor.digest] = (
                f"layer of {descriptor.size} bytes is over the {MAX_TOTAL_BLOB_BYTES}-byte budget per image"
            )
        else:
            wanted[descriptor.digest] = descriptor
            total += descriptor.size
    return list(wanted.values()), refused


def _artifact(
    layer: _Layer, repository: str, blobs: dict[str, bytes], refused: dict[str, str]
) -> FoundArtifact:
    descriptor = layer.descriptor
    return FoundArtifact(
        place=layer.place,
        repository=repository,
        manifest_digest=layer.manifest.digest,
        layer_digest=descriptor.digest,
        layer_media_type=descriptor.media_type,
        content=blobs.get(descriptor.digest),
        annotations=descriptor.annotations,
        artifact_type=layer.artifact_type,
        problem=refused.get(descriptor.digest),
    )


async def discover(
    client: RegistryClient,
    reference: ImageReference,
    *,
    signature_repository: str | None = None,
    tag_prefix: str = "",
    artifact_types: Collection[str] = SIGNATURE_ARTIFACT_TYPES,
    attestations: bool = True,
) -> FoundArtifacts | VerificationError:
    """Everything signed about ``reference``'s digest, from every place at once, within one deadline.

    ``signature_repository`` looks in that repository instead of the image's (Kyverno ``repository``,
    cosign ``COSIGN_REPOSITORY``). ``tag_prefix`` comes before cosign's legacy tags
    (``<prefix>sha256-<hex>.sig`` and ``.att``; Kyverno ``source.tagPrefix``, cosign
    ``--attachment-tag-prefix``); the OCI referrers tag fallback has no prefix.
    ``artifact_types`` are the referrer types worth fetching; with exactly one the referrers API is asked
    to filter (registries that don't are filtered here). Without ``attestations`` the ``.att`` tag, which
    holds nothing else, is not read: one request less per image for a signature-only check.
    """
    try:
        where = (
            reference if signature_repository is None else parse_signature_repository(signature_repository)
        )
    except InvalidReferenceError as exc:
        return VerificationError(reference, f"signature repository: {exc}")
    with client.budget():
        try:
            digest = await client.resolve_digest(reference)
            lookups = [_legacy_tag(client, where, "sig-tag", tag_prefix + sig_tag(digest))]
            if attestations:
                lookups.append(_legacy_tag(client, where, "att-tag", tag_prefix + att_tag(digest)))
            lookups.append(_referrers(client, where, digest, frozenset(artifact_types)))
            places = await _all(*lookups)
            layers = [layer for place in places for layer in place.layers]
            wanted, refused = _blob_plan(layers)
            contents = await _all(*(client.get_blob(where, blob.digest, blob.size) for blob in wanted))
        except RegistryError as exc:
            return VerificationError(reference, str(exc))
    blobs = {blob.digest: content for blob, content in zip(wanted, contents, strict=True)}
    repository = where.repository_path
    return FoundArtifacts(
        reference=reference,
        digest=digest,
        artifacts=tuple(_artifact(layer, repository, blobs, refused) for layer in layers),
        skipped=tuple(line for place in places for line in place.skipped),
    )
