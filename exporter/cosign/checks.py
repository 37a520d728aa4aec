"""Whether one candidate signature counts for one attestor: the signature itself (keys: cached verdicts),
what it says about the image, then the trust checks of ``exporter.sigstore`` (certificate chain, SCT, log
entries, timestamps, identity), with the per-format transparency-log defaults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from functools import cache, lru_cache

from cryptography import x509

from exporter.cosign.attestors import (
    AttestorSpec,
    CertificateAttestor,
    KeyAttestor,
    KeylessAttestor,
    pinned_certificate,
)
from exporter.cosign.formats import Candidate
from exporter.cosign.formats.dsse import INTOTO_PAYLOAD_TYPE, pae
from exporter.cosign.formats.intoto import Statement
from exporter.cosign.formats.legacy import load_certificates
from exporter.cosign.formats.simple_signing import SimpleSigningPayload
from exporter.cosign.found import FoundArtifacts
from exporter.cosign.options import VerificationOptions
from exporter.cosign.outcomes import (
    VerifiedSignature,
)
from exporter.registry.reference import ImageReference, InvalidReferenceError, parse_reference
from exporter.sigstore import (
    IdentityPolicy,
    SignedEnvelope,
    SignedMessage,
    SignerFacts,
    SigningMaterial,
    TrustedRoot,
    TrustPolicy,
    public_good_root,
    verify_material,
)
from exporter.sigstore.cache import BoundedCache
from exporter.sigstore.keys import (
    HashName,
    TrustedKey,
    digest_signature_is_valid,
    signature_is_valid,
)


def check_candidate(
    candidate: Candidate,
    found: FoundArtifacts,
    options: VerificationOptions,
    now: datetime | None,
    *,
    image_signature: bool,
) -> tuple[list[VerifiedSignature], str]:
    """The signatures this candidate makes for each attestor, or (none and) why it makes none.

    ``image_signature``: the candidate is checked as an image signature, so ``options.annotations`` apply.
    """
    verified: list[VerifiedSignature] = []
    unmatched_keys: list[str] = []
    problems: list[str] = []
    for attestor in options.attestors:
        if isinstance(attestor, KeyAttestor):
            result = _check_with_key(candidate, attestor, found, options)
            if result is None:
                unmatched_keys.extend(key.name for key in attestor.keys)
                continue
        else:
            result = _check_with_certificate(candidate, attestor, found, options, now)
        if isinstance(result, VerifiedSignature):
            verified.append(result)
        else:
            problems.append(result if len(options.attestors) == 1 else f"{attestor.name}: {result}")
    if unmatched_keys:
        problems.insert(0, f"does not verify with any trusted key ({', '.join(unmatched_keys)})")
    if verified and image_signature and options.annotations:
        problem = annotation_problem(candidate.claim, options.annotations)
        if problem is not None:
            return [], f"signed by {', '.join(s.attestor for s in verified)} but {problem}"
    return verified, "; ".join(problems)


def annotation_problem(
    claim: SimpleSigningPayload | Statement | str | None, required: tuple[tuple[str, str], ...]
) -> str | None:
    """None when every required ``key=value`` is in the signed payload's ``optional`` section (cosign's
    claim check); otherwise cosign's "missing or incorrect annotation", saying which."""
    wanted = ", ".join(f"{key}={value}" for key, value in required)
    if not isinstance(claim, SimpleSigningPayload):
        return (
            f"missing or incorrect annotation: {wanted} required, and a Sigstore bundle signature carries "
            "no annotations (sign with a simple-signing payload: cosign sign -a key=value)"
        )
    signed = dict(claim.annotations)
    wrong = [f"{key}={value}" for key, value in required if signed.get(key) != value]
    if not wrong:
        return None
    found = ", ".join(f"{key}={value}" for key, value in claim.annotations) or "none"
    return f"missing or incorrect annotation {', '.join(wrong)} (signed annotations: {found})"[:400]


def _claim_problem(candidate: Candidate, found: FoundArtifacts, require_reference: bool) -> str | None:
    """None when the signed content is about this image; otherwise what it is about instead."""
    if candidate.claim_problem is not None:
        return candidate.claim_problem
    claim = candidate.claim
    if isinstance(claim, SimpleSigningPayload):
        if claim.docker_manifest_digest != found.digest:
            return f"for digest {claim.docker_manifest_digest}, not this image's {found.digest}"
        if require_reference and not _same_repository(claim.docker_reference, found.reference):
            return f"for {claim.docker_reference!r}, not {found.reference.repository_path}"
        return None
    if isinstance(claim, Statement):
        if (
            isinstance(candidate.signed, SignedEnvelope)
            and candidate.signed.payload_type != INTOTO_PAYLOAD_TYPE
        ):
            return f"DSSE payload type is {candidate.signed.payload_type[:80]!r}, not {INTOTO_PAYLOAD_TYPE}"
        if not claim.is_about(found.digest):
            subjects = ", ".join(f"sha256:{d}" for d in claim.subject_digests[:3])
            return f"statement subject is {subjects}, not this image's {found.digest}"
        return None
    if claim != found.digest:
        return f"message signature over digest {claim}, not this image's {found.digest}"
    return None


def _same_repository(signed: str | None, reference: ImageReference) -> bool:
    if signed is None:
        return False
    try:
        parsed = parse_reference(signed)
    except InvalidReferenceError:
        return False
    return (parsed.registry, parsed.repository) == (reference.registry, reference.repository)


def _tlog_required(candidate: Candidate, options: VerificationOptions, *, keyed: bool) -> bool:
    """Whether ``verify_material`` must find a Rekor entry. By default (cosign's and Kyverno's): legacy
    key-signed layers need none; keyless, certificate and bundle signatures need a log entry, or an RFC 3161
    timestamp when they carry one instead (a timestamp that is there must then verify)."""
    if options.ignore_tlog is not None:
        return not options.ignore_tlog
    if keyed and not candidate.is_bundle:
        return False
    return not candidate.timestamps


def _signature_facts(
    candidate: Candidate,
    attestor: AttestorSpec,
    found: FoundArtifacts,
    *,
    key: str | None = None,
    facts: SignerFacts | None = None,
) -> VerifiedSignature:
    artifact = candidate.artifact
    entry = facts.log_entries[0] if facts is not None and facts.log_entries else None
    return VerifiedSignature(
        attestor=attestor.name,
        place=artifact.place,
        repository=artifact.repository,
        manifest_digest=artifact.manifest_digest,
        format=candidate.format,
        bundle_version=candidate.bundle_version,
        key=key,
        identity=facts.identity if facts is not None else None,
        log_index=entry.log_index if entry is not None else None,
        integrated_time=entry.integrated_time if entry is not None else None,
        signing_time=facts.signing_time if facts is not None else None,
        time_source=facts.time_source if facts is not None else None,
        predicate_type=candidate.predicate_type,
    )


# --- key attestors ---

# The same (key, content, signature) is checked again for every attestor and policy rule: remember verdicts,
# keyed by a digest so that large payloads or signatures never sit in memory.
MAX_CACHED_VERDICTS = 4096
_verdicts: BoundedCache[bytes, bool] = BoundedCache(MAX_CACHED_VERDICTS)  # shared with worker threads


def _key_signed(key: TrustedKey, candidate: Candidate, hash_name: str) -> bool:
    cache_key = hashlib.sha256(
        b"\0".join(
            (
                key.fingerprint.encode(),
                candidate.content_digest(),
                hashlib.sha256(candidate.signature).digest(),
                hash_name.encode(),
            )
        )
    ).digest()
    cached = _verdicts.get(cache_key)
    if cached is not None:
        return cached
    signed = candidate.signed
    if isinstance(signed, SignedEnvelope):
        verdict = signature_is_valid(
            key, pae(signed.payload_type, signed.payload), candidate.signature, hash_name
        )
    elif signed.content is not None:
        verdict = signature_is_valid(key, signed.content, candidate.signature, hash_name)
    else:
        verdict = signed.algorithm == hash_name and digest_signature_is_valid(
            key, signed.digest, candidate.signature, hash_name
        )
    _verdicts.put(cache_key, verdict)
    return verdict


def _check_with_key(
    candidate: Candidate, attestor: KeyAttestor, found: FoundArtifacts, options: VerificationOptions
) -> VerifiedSignature | str | None:
    """None when no key of ``attestor`` made the signature; else the verified signature or why it fails."""
    signers = [key for key in attestor.keys if _key_signed(key, candidate, attestor.hash_algorithm)]
    if not signers:
        return None
    names = ", ".join(key.name for key in signers)
    problem = _claim_problem(candidate, found, attestor.require_reference)
    if problem is not None:
        return (
            f"signed by {names} {problem}"
            if problem.startswith("for ")
            else f"signed by {names} but {problem}"
        )
    required = _tlog_required(candidate, options, keyed=True)
    # Proofs are skipped when the policy ignores the log, and for a legacy layer unless the policy names a
    # Rekor key or URL (today's behaviour for key-signed .sig layers); a bundle's proofs are always checked.
    legacy_unchecked = (
        not candidate.is_bundle and not required and not options.rekor_keys and options.rekor_url is None
    )
    if options.ignore_tlog or legacy_unchecked:
        return _signature_facts(candidate, attestor, found, key=signers[0].name)
    problems: list[str] = []
    for key in signers:
        facts = verify_material(
            _material(candidate, public_key=key, hash_name=attestor.hash_algorithm), _trust(options, required)
        )
        if isinstance(facts, SignerFacts):
            return _signature_facts(candidate, attestor, found, key=key.name, facts=facts)
        problems.append(facts.reason)
    return f"signed by {names} but {problems[0]}"


# --- certificate and keyless attestors ---


@cache
def _public_good() -> TrustedRoot:
    return public_good_root()


@lru_cache(maxsize=64)
def _pem_certificates(pem: str, what: str) -> tuple[x509.Certificate, ...]:
    return load_certificates(pem, what)


def _trust(
    options: VerificationOptions,
    require_tlog: bool,
    roots: tuple[x509.Certificate, ...] = (),
    intermediates: tuple[x509.Certificate, ...] = (),
) -> TrustPolicy:
    return TrustPolicy(
        trusted_root=options.trusted_root or _public_good(),
        require_tlog=require_tlog,
        require_sct=not options.ignore_sct,
        rekor_keys=options.rekor_keys,
        rekor_url=options.rekor_url,
        ctlog_keys=options.ct_log_keys,
        tsa_chains=tuple(_pem_certificates(chain, "TSA certificate chain") for chain in options.tsa_chains),
        certificate_roots=roots,
        certificate_intermediates=intermediates,
    )


def _material(
    candidate: Candidate,
    *,
    public_key: TrustedKey | None = None,
    chain: Iterable[x509.Certificate] = (),
    hash_name: HashName = "sha256",
) -> SigningMaterial:
    signed = candidate.signed
    if isinstance(signed, SignedMessage) and signed.content is not None and hash_name != signed.algorithm:
        digest = hashlib.new(hash_name, signed.content).digest()
        signed = SignedMessage(digest=digest, content=signed.content, algorithm=hash_name)
    return SigningMaterial(
        signature=candidate.signature,
        signed=signed,
        certificate_chain=tuple(chain),
        public_key=public_key,
        tlog_entries=candidate.tlog_entries,
        timestamps=candidate.timestamps,
        timestamped=candidate.timestamped,
    )


def _check_with_certificate(
    candidate: Candidate,
    attestor: CertificateAttestor | KeylessAttestor,
    found: FoundArtifacts,
    options: VerificationOptions,
    now: datetime | None,
) -> VerifiedSignature | str:
    """A certificate attestor with only a pinned certificate verifies with its key (as Kyverno does); with a
    chain, or a keyless attestor, the signature's own certificate must chain to the trusted roots."""
    # The attestor's certificates parsed when it was made (AttestorError otherwise): these cannot fail.
    roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    public_key: TrustedKey | None = None
    if isinstance(attestor, CertificateAttestor) and attestor.certificate is not None:
        pinned, pinned_key = pinned_certificate(attestor.certificate, attestor.name)
        if candidate.certificates and candidate.certificates[0] != pinned:
            return "is signed with a different certificate than the one the policy names"
        if attestor.chain is None:
            public_key = pinned_key
    if public_key is None and not candidate.certificates:
        return "has no signing certificate (signed with a key?)"
    if isinstance(attestor, CertificateAttestor) and attestor.chain is not None:
        chain = _pem_certificates(attestor.chain, f"{attestor.name}: certificate chain")
        roots, intermediates = chain[-1:], chain[:-1]
    elif isinstance(attestor, KeylessAttestor) and attestor.roots is not None:
        chain = _pem_certificates(attestor.roots, f"{attestor.name}: roots")
        roots = tuple(c for c in chain if c.subject == c.issuer)
        intermediates = tuple(c for c in chain if c.subject != c.issuer)
    if public_key is not None:
        material = _material(candidate, public_key=public_key)
        identities: tuple[IdentityPolicy, ...] = ()
    else:
        material = _material(candidate, chain=candidate.certificates)
        identities = attestor.identities
    trust = _trust(options, _tlog_required(candidate, options, keyed=False), roots, intermediates)
    facts = verify_material(material, trust, identities, now=now)
    if not isinstance(facts, SignerFacts):
        return facts.reason
    problem = _claim_problem(candidate, found, require_reference=False)
    if problem is not None:
        signer = facts.identity.subject if facts.identity is not None else attestor.name
        return (
            f"signed by {signer} {problem}"
            if problem.startswith("for ")
            else f"signed by {signer} but {problem}"
        )
    return _signature_facts(candidate, attestor, found, facts=facts)
