"""Verifies one image against one ``verifyImages`` entry, with Kyverno's attestor semantics and caching.

For each ``attestors[i]`` every ``entries[j]`` is checked with its own key(s), certificate or keyless
identity; a set passes when ``count`` entries (default: all of them) verify, and the image passes when every
set passes. A failing entry is reported at its path, ``.attestors[i].entries[j].keys: <reason>`` (or
``.certificates``, ``.keyless``), as Kyverno words it.

Signatures are fetched once per image digest and checked against every entry (no I/O per key). Outcomes
are cached by (policy version, rule, entry index, repository, digest): the policy version is a content
hash, so an edited policy never reuses an outcome of its old attestors (their kinds, keys, identities).
Tags resolve to digests through a brief cache of their own, because a tag may move while a digest never
does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from exporter.admission.attestations import (
    NO_MATCHING_ATTESTATIONS,
    attestation_problem,
    attestations_not_found,
)
from exporter.admission.cache import Lookup, SingleFlightCache
from exporter.admission.children import BoundedValues
from exporter.admission.messages import IMAGE_VERIFIED, verification_failed
from exporter.cosign import (
    AttestorError,
    KeyAttestor,
    KeyLoadError,
    TrustedKey,
    Unsigned,
    VerificationError,
    VerificationOptions,
    Verified,
    load_public_keys,
    verify_found,
    verify_found_attestations,
)
from exporter.cosign.discovery import discover
from exporter.cosign.found import FoundArtifacts
from exporter.metrics import ServiceMetrics
from exporter.policy.model import (
    AttestationCheck,
    Attestor,
    AttestorEntry,
    CertificateEntry,
    ImageVerification,
    KeyEntry,
    SecretRef,
)
from exporter.registry.client import RegistryClient, RegistryError
from exporter.registry.errors import NotFoundError
from exporter.registry.reference import ImageReference, InvalidReferenceError, parse_reference
from exporter.sigstore import TrustedRoot
from exporter.sigstore.keys import HASH_NAMES, HashName

log = logging.getLogger(__name__)

RuleStatus = Literal["pass", "fail", "error"]
# Reads the PEM of a key kept in a Secret, raising SecretKeyError (see exporter.admission.secret_keys).
SecretKeys = Callable[[SecretRef], Awaitable[str]]


class SecretKeyError(Exception):
    """The key in a Secret cannot be read; the message names the Secret and what to fix."""


NO_MATCHING_SIGNATURES = "no matching signatures"
# Where OCI 1.1 referrers are found (the referrers API, or its tag fallback), as opposed to legacy tags.
REFERRER_PLACES = frozenset({"referrers-api", "referrers-tag"})
SIGNATURES_UNREADABLE = "the signatures could not be read from the registry (details in trustwatch's log)"


def public_reason(exc: RegistryError) -> str:
    """A registry failure as the denial message tells whoever created the workload: what failed, and the
    HTTP status, never the registry's answer body, URLs or exception text (those go to trustwatch's log)."""
    if exc.status == 404:
        return "image not found in the registry (404); check the repository name and the tag or digest"
    if exc.status in (401, 403):
        return f"the registry refused access ({exc.status}); check trustwatch's registry credentials"
    if exc.status is not None:
        return f"the registry answered HTTP {exc.status} (details in trustwatch's log)"
    return "the registry could not be reached or gave an unusable answer (details in trustwatch's log)"


@dataclass(frozen=True)
class ImageOutcome:
    """The verdict on one image for one ``verifyImages`` entry; ``digest`` is set once it was resolved.
    ``predicates``: for an attestation check, the predicates of the statements that verified."""

    status: RuleStatus
    message: str
    digest: str | None = None
    predicates: tuple[Any, ...] = ()


# Decides from discovered signatures and attestations, given the image as messages show it and the Sigstore
# root trustwatch runs with (``--trusted-root``; None: the shipped one). No I/O.
Decide = Callable[[FoundArtifacts, str, "TrustedRoot | None"], ImageOutcome]


@dataclass(frozen=True)
class CacheSettings:
    """Sizes and lifetimes of the verification and tag caches (seconds, entries)."""

    ttl: float = 3600.0
    negative_ttl: float = 60.0
    max_entries: int = 1000
    tag_ttl: float = 30.0
    max_tags: int = 1000


@lru_cache(maxsize=256)
def _keys(pem: str) -> tuple[TrustedKey, ...]:
    """Parsed keys of a policy entry; policies repeat the same PEM, so parse each once."""
    return load_public_keys(pem)


def _entry_options(entry: KeyEntry, name: str) -> VerificationOptions:
    """VerificationOptions for one key entry; raises KeyLoadError for unusable key material.

    For legacy ``.sig`` layers the transparency log is required only when the entry names a Rekor public key
    and does not set ``ignoreTlog``; key-signed Sigstore bundles need a log entry or timestamp unless
    ``ignoreTlog`` is set (cosign 3 logs them).
    """
    if entry.public_keys is None:
        secret = entry.secret
        where = f"{secret.namespace}/{secret.name}" if secret else "?"
        raise KeyLoadError(f"the key in Secret {where} cannot be read without cluster access")
    rekor_keys: tuple[TrustedKey, ...] = ()
    ignore_tlog: bool | None = None
    if entry.rekor is not None and entry.rekor.ignore_tlog:
        ignore_tlog = True
    elif entry.rekor is not None and entry.rekor.pubkey:
        rekor_keys = _keys(entry.rekor.pubkey)
        ignore_tlog = False
    try:
        attestor = KeyAttestor(
            name=name, keys=_keys(entry.public_keys), hash_algorithm=_hash_name(entry.signature_algorithm)
        )
        return VerificationOptions(
            attestors=(attestor,),
            rekor_keys=rekor_keys,
            rekor_url=entry.rekor.url if entry.rekor is not None else None,
            ignore_tlog=ignore_tlog,
            annotations=entry.annotations,
        )
    except AttestorError as exc:
        raise KeyLoadError(str(exc)) from None


def _hash_name(algorithm: str | None) -> HashName:
    for name in HASH_NAMES:
        if name == (algorithm or "sha256"):
            return name
    raise KeyLoadError(f"signature algorithm {algorithm!r} is not one of {', '.join(HASH_NAMES)}")


@dataclass(frozen=True)
class _EntryProblem:
    """Why one attestor entry did not verify: ``infrastructure`` when nothing was learnt about the
    signatures (key material unusable, data unreadable), which is an ``error``, never a ``fail``."""

    reason: str
    infrastructure: bool


def _entry_kind(entry: AttestorEntry) -> str:
    """The entry's field name in Kyverno's messages: ``keys``, ``certificates`` or ``keyless``."""
    return entry.kind if isinstance(entry, CertificateEntry) else "keys"


def _entry_problem(
    found: FoundArtifacts,
    entry: AttestorEntry,
    path: str,
    trusted_root: TrustedRoot | None,
    attestation: AttestationCheck | None = None,
) -> _EntryProblem | None:
    """None when ``entry`` verifies the signatures (or, for ``attestation``, signed statements of its type
    whose predicates meet its conditions), else the reason in cosign's and Kyverno's words.

    Every entry trusts the Sigstore root trustwatch runs with (``trusted_root``; None: the shipped
    public-good root): its Fulcio CAs for certificates, its Rekor logs and timestamp authorities for the
    log entries and timestamps of key-signed bundles as of keyless signatures.
    """
    if isinstance(entry, CertificateEntry):
        options = entry.options
    else:
        try:
            options = _entry_options(entry, path)
        except KeyLoadError as exc:
            return _EntryProblem(f"unusable key: {exc}", infrastructure=True)
    if options.trusted_root is None and trusted_root is not None:
        options = dataclasses.replace(options, trusted_root=trusted_root)
    if attestation is None:
        outcome = verify_found(found, options)
    else:
        outcome = verify_found_attestations(found, options, attestation.predicate_type)
    if isinstance(outcome, Verified):
        if attestation is None:
            return None
        reason = attestation_problem(attestation, outcome.statements, found.reference.canonical)
        return None if reason is None else _EntryProblem(reason, infrastructure=False)
    if isinstance(outcome, Unsigned):
        if attestation is not None:
            return _EntryProblem(attestations_not_found(attestation.predicate_type), infrastructure=False)
        return _EntryProblem(NO_MATCHING_SIGNATURES, infrastructure=False)
    if isinstance(outcome, VerificationError):
        return _EntryProblem(outcome.cause, infrastructure=True)
    what = NO_MATCHING_SIGNATURES if attestation is None else NO_MATCHING_ATTESTATIONS
    return _EntryProblem(f"{what}: {'; '.join(outcome.reasons)}", infrastructure=False)


def _attestor_problem(
    found: FoundArtifacts,
    index: int,
    attestor: Attestor,
    trusted_root: TrustedRoot | None,
    *,
    attestation: AttestationCheck | None = None,
    prefix: str = "",
) -> _EntryProblem | None:
    """None when at least ``required_count`` entries verify; else every entry's problem at its path
    (``prefix`` is ``.attestations[i]`` for an attestation's attestors).

    The set fails only when it could not pass even if every entry that hit an infrastructure problem had
    verified; otherwise the outcome is unknown, an error.
    """
    problems: list[_EntryProblem] = []
    verified = errored = 0
    for position, entry in enumerate(attestor.entries):
        path = f"{prefix}.attestors[{index}].entries[{position}]"
        problem = _entry_problem(found, entry, path, trusted_root, attestation)
        if problem is None:
            verified += 1
            if verified >= attestor.required_count:
                return None
            continue
        errored += problem.infrastructure
        problems.append(
            _EntryProblem(f"{path}.{_entry_kind(entry)}: {problem.reason}", problem.infrastructure)
        )
    reason = "; ".join(problem.reason for problem in problems) or f"{prefix}.attestors[{index}]: no entries"
    return _EntryProblem(reason, infrastructure=verified + errored >= attestor.required_count)


def _signatures_unreadable(
    display: str, path: str, error: VerificationError, digest: str | None
) -> ImageOutcome:
    """The ``error`` outcome of an image whose signatures could not be read (registry trouble: nothing was
    learnt about them), logged with the cause; ``path`` is the policy entry the message names."""
    log.warning("cannot read the image's signatures", extra={"image": display, "error": error.cause})
    return ImageOutcome("error", verification_failed(display, f"{path}: {SIGNATURES_UNREADABLE}"), digest)


def judge(
    found: FoundArtifacts,
    verification: ImageVerification,
    display: str,
    trusted_root: TrustedRoot | None = None,
) -> ImageOutcome:
    """Pure decision over discovered signatures: every attestor set must pass, then every attestation's
    attestor sets (Kyverno checks attestations only once the signatures verified). A set that definitely
    fails makes the image ``fail``; otherwise a set that could not be checked makes it ``error``.

    With ``referrers_only`` (``type: SigstoreBundle``, ``cosignOCI11``) only what is attached as an OCI
    referrer counts; legacy ``.sig``/``.att`` tags are left aside.
    """
    if verification.referrers_only:
        kept = tuple(item for item in found.artifacts if item.place in REFERRER_PLACES)
        found = dataclasses.replace(found, artifacts=kept)
    problems = [
        problem
        for index, attestor in enumerate(verification.attestors)
        if (problem := _attestor_problem(found, index, attestor, trusted_root)) is not None
    ]
    if not problems:
        problems = [
            problem
            for number, attestation in enumerate(verification.attestations)
            for index, attestor in enumerate(attestation.attestors)
            if (
                problem := _attestor_problem(
                    found,
                    index,
                    attestor,
                    trusted_root,
                    attestation=attestation,
                    prefix=f".attestations[{number}]",
                )
            )
            is not None
        ]
    failed = [problem for problem in problems if not problem.infrastructure]
    if failed or problems:
        worst = failed[0] if failed else problems[0]
        status: RuleStatus = "fail" if failed else "error"
        return ImageOutcome(status, verification_failed(display, worst.reason), found.digest)
    return ImageOutcome("pass", IMAGE_VERIFIED, found.digest)


def first_entry_path(verification: ImageVerification) -> str:
    """Where messages about the whole verification point: the first entry, as Kyverno's do."""
    if not verification.attestors or not verification.attestors[0].entries:
        return ".attestors"
    return f".attestors[0].entries[0].{_entry_kind(verification.attestors[0].entries[0])}"


class ImageVerifier:
    """Cached, single-flight image verification on a shared RegistryClient."""

    def __init__(
        self,
        client: RegistryClient,
        metrics: ServiceMetrics,
        settings: CacheSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        secret_keys: SecretKeys | None = None,
        trusted_root: TrustedRoot | None = None,
    ) -> None:
        """``trusted_root``: the Sigstore root certificate and keyless attestors trust (``--trusted-root``);
        None uses the public-good root shipped with trustwatch."""
        self._client = client
        self._trusted_root = trusted_root
        self._metrics = metrics
        self._secret_keys = secret_keys
        settings = settings or CacheSettings()
        self._outcomes: SingleFlightCache[ImageOutcome] = SingleFlightCache(
            ttl=settings.ttl,
            negative_ttl=settings.negative_ttl,
            max_entries=settings.max_entries,
            is_negative=lambda outcome: outcome.status != "pass",
            should_cache=lambda outcome: outcome.status != "error",
            clock=clock,
            on_size_change=metrics.verification_cache_entries.set,
        )
        self._digests: SingleFlightCache[str] = SingleFlightCache(
            ttl=settings.tag_ttl, max_entries=settings.max_tags, clock=clock
        )

    def cached(self, policy_version: str, rule: str, index: int, image: str) -> ImageOutcome | None:
        """The cached outcome when both the tag's digest and the verdict are cached, without awaiting.

        The webhook's hot path: a warm request is answered without scheduling any task.
        """
        try:
            reference = parse_reference(image)
        except InvalidReferenceError:
            return None
        digest = reference.digest or self._digests.peek(_tag_key(reference))
        if digest is None:
            return None
        outcome = self._outcomes.peek((policy_version, rule, index, reference.repository_path, digest))
        if outcome is not None:
            self._metrics.verification_cache_lookups.labels(result="hit").inc()
        return outcome

    async def verify(
        self, policy_version: str, rule: str, index: int, verification: ImageVerification, image: str
    ) -> tuple[ImageOutcome, Lookup]:
        """The outcome and how the cache answered. The caller bounds the wait by its deadline: cancelling
        it leaves the shared verification running for the others waiting and for the cache.

        Digest resolution happens here (it is part of the key); its failures become outcomes, not errors.
        """
        return await self._verify_keyed(
            (policy_version, rule, index),
            image,
            first_entry_path(verification),
            lambda pinned, display: self._verify_uncached(pinned, verification, display),
            use_cache=verification.use_cache,
        )

    async def verify_decided(
        self,
        policy_version: str,
        slot: str,
        image: str,
        path: str,
        decide: Decide,
        *,
        signature_repository: str | None = None,
        tag_prefix: str = "",
    ) -> tuple[ImageOutcome, Lookup]:
        """Like :meth:`verify`, for callers that decide themselves (ImageValidatingPolicy attestors and
        attestations): the same digest resolution, single-flight cache (under ``slot`` where :meth:`verify`
        uses the rule, index 0), discovery and metrics; ``decide`` turns the discovered artifacts into the
        outcome. ``path`` prefixes registry failures in messages. ``signature_repository`` and ``tag_prefix``
        say where discovery looks (the attestor's ``source``)."""

        async def compute(pinned: ImageReference, display: str) -> ImageOutcome:
            started = time.perf_counter()
            found = await discover(
                self._client, pinned, signature_repository=signature_repository, tag_prefix=tag_prefix
            )
            if isinstance(found, VerificationError):
                outcome = _signatures_unreadable(display, path, found, pinned.digest)
            else:
                outcome = await asyncio.to_thread(decide, found, display, self._trusted_root)
            self._metrics.image_verification_duration.labels(result=outcome.status).observe(
                time.perf_counter() - started
            )
            return outcome

        return await self._verify_keyed((policy_version, slot, 0), image, path, compute, use_cache=True)

    async def _verify_keyed(
        self,
        slot: tuple[str, str, int],
        image: str,
        path: str,
        compute: Callable[[ImageReference, str], Awaitable[ImageOutcome]],
        *,
        use_cache: bool,
    ) -> tuple[ImageOutcome, Lookup]:
        try:
            reference = parse_reference(image)
        except InvalidReferenceError as exc:
            return ImageOutcome("fail", verification_failed(image, str(exc))), "miss"
        display = reference.canonical
        try:
            if reference.digest is not None:
                digest = reference.digest
            elif use_cache:
                digest = await self._resolve(reference)
            else:
                digest = await self._client.resolve_digest(reference)
        except RegistryError as exc:
            status: RuleStatus = "fail" if isinstance(exc, NotFoundError) else "error"
            log.warning("cannot resolve the image's digest", extra={"image": display, "error": str(exc)})
            reason = f"{path}: {public_reason(exc)}"
            return ImageOutcome(status, verification_failed(display, reason)), "miss"
        pinned = reference.with_digest(digest)
        if not use_cache:
            return await compute(pinned, display), "miss"
        key: Hashable = (*slot, reference.repository_path, digest)
        found, how = self._outcomes.lookup(key, lambda: compute(pinned, display))
        self._metrics.verification_cache_lookups.labels(result=how).inc()
        if isinstance(found, ImageOutcome):
            return found, how
        return await asyncio.shield(found), how

    async def _resolve(self, reference: ImageReference) -> str:
        digest, _how = await self._digests.get_or_compute(
            _tag_key(reference), lambda: self._client.resolve_digest(reference)
        )
        return digest

    async def _verify_uncached(
        self, reference: ImageReference, verification: ImageVerification, display: str
    ) -> ImageOutcome:
        started = time.perf_counter()
        signatures = await discover(
            self._client,
            reference,
            signature_repository=verification.repository,
            attestations=bool(verification.attestations),
        )
        resolved = await self._with_secret_keys(verification)
        if isinstance(resolved, str):
            outcome = ImageOutcome("error", verification_failed(display, resolved), reference.digest)
        elif isinstance(signatures, VerificationError):
            path = first_entry_path(verification)
            outcome = _signatures_unreadable(display, path, signatures, reference.digest)
        else:
            # Certificate chains, SCTs and log proofs are CPU work: keep them off the event loop.
            outcome = await asyncio.to_thread(judge, signatures, resolved, display, self._trusted_root)
        self._metrics.image_verification_duration.labels(result=outcome.status).observe(
            time.perf_counter() - started
        )
        log.debug("verified image", extra={"image": display, "result": outcome.status})
        return outcome

    async def _with_secret_keys(self, verification: ImageVerification) -> ImageVerification | str:
        """``verification`` with keys kept in Secrets filled in (its attestors' and its attestations'), or
        the failure at its entry's path.

        Without a reader (no cluster) such entries stay empty and fail as unusable keys.
        """
        if self._secret_keys is None:
            return verification
        attestors = await self._fill_secret_keys(verification.attestors, "")
        if isinstance(attestors, str):
            return attestors
        attestations: list[AttestationCheck] = []
        for number, attestation in enumerate(verification.attestations):
            filled = await self._fill_secret_keys(attestation.attestors, f".attestations[{number}]")
            if isinstance(filled, str):
                return filled
            attestations.append(dataclasses.replace(attestation, attestors=filled))
        return dataclasses.replace(verification, attestors=attestors, attestations=tuple(attestations))

    async def _fill_secret_keys(
        self, attestor_sets: tuple[Attestor, ...], prefix: str
    ) -> tuple[Attestor, ...] | str:
        assert self._secret_keys is not None
        attestors: list[Attestor] = []
        for i, attestor in enumerate(attestor_sets):
            entries: list[AttestorEntry] = []
            for j, entry in enumerate(attestor.entries):
                if isinstance(entry, KeyEntry) and entry.secret is not None and entry.public_keys is None:
                    try:
                        pem = await self._secret_keys(entry.secret)
                    except SecretKeyError as exc:
                        return f"{prefix}.attestors[{i}].entries[{j}].keys: {exc}"
                    entries.append(dataclasses.replace(entry, public_keys=pem))
                else:
                    entries.append(entry)
            attestors.append(dataclasses.replace(attestor, entries=tuple(entries)))
        return tuple(attestors)

    async def close(self) -> None:
        await self._outcomes.close()
        await self._digests.close()


def _tag_key(reference: ImageReference) -> tuple[str, str | None]:
    return (reference.repository_path, reference.tag)


# Registry hosts given their own series: images (so hosts) are chosen by whoever creates Pods.
MAX_REGISTRY_LABELS = 100


def registry_metrics_hook(metrics: ServiceMetrics) -> Callable[[str, str], None]:
    """``RegistryOptions.on_request`` that counts registry requests by host (the first
    :data:`MAX_REGISTRY_LABELS` hosts seen; later ones as ``other``) and status."""
    hosts = BoundedValues(MAX_REGISTRY_LABELS)

    def record(registry: str, status: str) -> None:
        metrics.registry_requests.labels(registry=hosts(registry), status=status).inc()

    return record
