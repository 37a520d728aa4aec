"""The verification pipeline: discovery -> formats -> signature -> trust material -> identity -> N of M.

``verify_image``/``verify_attestations`` fetch and decide; ``verify_found``/``verify_found_attestations``
decide from already discovered artifacts (no I/O), so one discovery serves every attestor of a policy.
Outcomes are values; registry trouble is a ``VerificationError``, never a fail.
"""

from __future__ import annotations

from datetime import datetime

from exporter.cosign.checks import check_candidate
from exporter.cosign.discovery import discover
from exporter.cosign.formats import Candidate, Parsed, parse_found
from exporter.cosign.formats.intoto import COSIGN_SIGN_PREDICATE
from exporter.cosign.found import FoundArtifacts
from exporter.cosign.options import VerificationOptions
from exporter.cosign.outcomes import (
    Invalid,
    Rejection,
    Unsigned,
    VerificationError,
    VerificationOutcome,
    Verified,
    VerifiedSignature,
    VerifiedStatement,
)
from exporter.registry.client import RegistryClient
from exporter.registry.reference import ImageReference
from exporter.sigstore import SignedEnvelope
from exporter.sigstore.cache import BoundedCache

__all__ = ["verify_attestations", "verify_found", "verify_found_attestations", "verify_image"]


async def verify_image(
    client: RegistryClient, reference: ImageReference, options: VerificationOptions
) -> VerificationOutcome:
    """Verify ``reference``'s image signatures against ``options``' attestors.

    Looks in every place at once (``.sig``, referrers API, referrers tag fallback; or
    ``options.signature_repository``) and counts legacy simple-signing layers, Sigstore bundles with a
    message signature over the image digest, and bundles whose DSSE statement has predicate type
    ``https://sigstore.dev/cosign/sign/v1`` and the image digest as subject. ``Verified`` when at least
    ``options.threshold`` distinct attestors signed; ``Unsigned`` when nothing was found; ``Invalid`` with a
    rejection per candidate otherwise; ``VerificationError`` for registry trouble.
    """
    found = await discover(
        client,
        reference,
        signature_repository=options.signature_repository,
        tag_prefix=options.signature_tag_prefix,
        attestations=False,
    )
    if isinstance(found, VerificationError):
        return found
    return verify_found(found, options)


async def verify_attestations(
    client: RegistryClient, reference: ImageReference, options: VerificationOptions, predicate_type: str
) -> VerificationOutcome:
    """Verify ``reference``'s in-toto attestations of ``predicate_type`` (exactly as statements carry it).

    Reads legacy ``.att`` DSSE layers and DSSE bundles on referrers. ``Verified.statements`` holds every
    statement of that type whose signature verified for an attestor and whose subject is the image digest
    (the policy layer evaluates conditions on them); ``Unsigned`` when no attestation of that type exists.
    """
    found = await discover(
        client,
        reference,
        signature_repository=options.signature_repository,
        tag_prefix=options.signature_tag_prefix,
    )
    if isinstance(found, VerificationError):
        return found
    return verify_found_attestations(found, options, predicate_type)


def verify_found(
    found: FoundArtifacts, options: VerificationOptions, *, now: datetime | None = None
) -> VerificationOutcome:
    """Decide on image signatures from discovered artifacts alone (no I/O); see :func:`verify_image`.

    Pure CPU work and thread-safe (its caches are locked): a caller on an event loop may run it in a worker
    thread when many keyless checks are expected. ``now`` replaces the clock (tests); it is used only when no
    proof gives a signing time.
    """
    parsed = _parsed(found)
    relevant = Parsed(
        tuple(c for c in parsed.candidates if _is_image_signature(c)),
        tuple(u for u in parsed.unreadable if u.place != "att-tag"),
    )
    return _decide(found, options, relevant, None, now)


def verify_found_attestations(
    found: FoundArtifacts, options: VerificationOptions, predicate_type: str, *, now: datetime | None = None
) -> VerificationOutcome:
    """Decide on attestations of ``predicate_type`` from discovered artifacts alone; see
    :func:`verify_attestations`."""
    parsed = _parsed(found)
    relevant = Parsed(
        tuple(
            c
            for c in parsed.candidates
            # An unreadable statement may have been this attestation: it is reported, not ignored.
            if isinstance(c.signed, SignedEnvelope) and c.predicate_type in (predicate_type, None)
        ),
        tuple(u for u in parsed.unreadable if u.place != "sig-tag"),
    )
    return _decide(found, options, relevant, predicate_type, now)


# --- parsing, once per discovery ---

# Admission asks about the same discovery once per attestor entry, one right after the other: parse it once
# (keyed by identity). Entries pin their discovery's blobs in memory, so keep only a few.
MAX_PARSED = 8
_parsed_cache: BoundedCache[int, tuple[FoundArtifacts, Parsed]] = BoundedCache(MAX_PARSED)


def _parsed(found: FoundArtifacts) -> Parsed:
    hit = _parsed_cache.get(id(found))
    if hit is not None and hit[0] is found:
        return hit[1]
    parsed = parse_found(found)
    _parsed_cache.put(id(found), (found, parsed))
    return parsed


def _is_image_signature(candidate: Candidate) -> bool:
    if candidate.format in ("simple-signing", "bundle-message-signature"):
        return True
    return candidate.format == "bundle-dsse" and candidate.predicate_type in (COSIGN_SIGN_PREDICATE, None)


# --- deciding ---


def _decide(
    found: FoundArtifacts,
    options: VerificationOptions,
    parsed: Parsed,
    predicate_type: str | None,
    now: datetime | None,
) -> VerificationOutcome:
    """``parsed`` holds only the candidates and unreadable artifacts relevant to what is being verified."""
    candidates, unreadable = parsed.candidates, parsed.unreadable
    if not candidates and not unreadable:
        return Unsigned(found.reference, found.digest, predicate_type, found.skipped)
    # Rejections in the order the artifacts were found, whether unreadable or not verifying.
    numbered = [(u.order, Rejection(u.where, u.reason)) for u in unreadable]
    signatures: list[VerifiedSignature] = []
    statements: list[VerifiedStatement] = []
    for candidate in candidates:
        verified, problems = check_candidate(
            candidate, found, options, now, image_signature=predicate_type is None
        )
        signatures.extend(verified)
        if verified and candidate.statement is not None and predicate_type is not None:
            statement = candidate.statement
            statements.append(
                VerifiedStatement(
                    statement.predicate_type, statement.predicate, statement.document, verified[0]
                )
            )
        if not verified:
            numbered.append((candidate.order, Rejection(candidate.where, problems)))
    rejections = [rejection for _order, rejection in sorted(numbered, key=lambda item: item[0])]
    matched = dict.fromkeys(signature.attestor for signature in signatures)
    if len(matched) >= options.threshold:
        order = {attestor.name: index for index, attestor in enumerate(options.attestors)}
        ordered = tuple(sorted(signatures, key=lambda s: order[s.attestor]))
        return Verified(found.reference, found.digest, ordered, tuple(statements))
    if matched:
        rejections.append(
            Rejection(
                "threshold",
                f"only {len(matched)} of the required {options.threshold} attestors signed "
                f"({', '.join(matched)})",
            )
        )
    rejections.extend(Rejection("skipped", line) for line in found.skipped)
    return Invalid(found.reference, found.digest, tuple(rejections))
