"""RFC 3161 timestamps from a trusted timestamp authority (TSA): an independent proof of *when* a signature
existed, needed wherever no Rekor v1 entry gives an integrated time (Rekor v2, offline signing).

Parsing and CMS verification are ``rfc3161-client``'s (the library sigstore-python uses). Sigstore
timestamps the signature bytes: the token's message imprint must be their hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

from exporter.sigstore.cache import BoundedCache
from exporter.sigstore.facts import VerificationFailure
from exporter.sigstore.trusted_root import ValidityWindow

MAX_TIMESTAMP_BYTES = 64 * 1024
MAX_TIMESTAMPS = 32


@dataclass(frozen=True)
class TimestampAuthority:
    """A trusted TSA: its chain (signing certificate first, root last) and when it may be relied on."""

    chain: tuple[x509.Certificate, ...]
    valid: ValidityWindow | None = None
    name: str = ""


# CMS verification of a token costs milliseconds and the same signature is checked again for every attestor
# and admission: remember the times of verified tokens (a verdict does not depend on the clock).
_times: BoundedCache[bytes, datetime] = BoundedCache(1024)


def clear_timestamp_cache() -> None:
    """Forget verified timestamps (benchmarks of cold verification, tests)."""
    _times.clear()


def _cache_key(token: bytes, message: bytes, authorities: tuple[TimestampAuthority, ...]) -> bytes:
    digest = hashlib.sha256(hashlib.sha256(token).digest() + hashlib.sha256(message).digest())
    for authority in authorities:
        digest.update(repr(authority.valid).encode())
        for certificate in authority.chain:
            digest.update(certificate.fingerprint(hashes.SHA256()))
    return digest.digest()


def verify_timestamp(
    token: bytes, message: bytes, authorities: tuple[TimestampAuthority, ...]
) -> datetime | VerificationFailure:
    """The time a trusted TSA vouches ``message`` existed at, or why ``token`` proves nothing."""
    key = _cache_key(token, message, authorities)
    cached = _times.get(key)
    if cached is not None:
        return cached
    result = _verify_timestamp(token, message, authorities)
    if isinstance(result, datetime):
        _times.put(key, result)
    return result


def _verify_timestamp(
    token: bytes, message: bytes, authorities: tuple[TimestampAuthority, ...]
) -> datetime | VerificationFailure:
    if len(token) > MAX_TIMESTAMP_BYTES:
        return VerificationFailure("timestamp", "RFC 3161 timestamp is too large")
    try:
        response = decode_timestamp_response(token)
    except (ValueError, VerificationError) as exc:
        return VerificationFailure("timestamp", f"RFC 3161 timestamp is malformed ({exc})")
    if not authorities:
        return VerificationFailure(
            "timestamp", "the signature has an RFC 3161 timestamp but no timestamp authority is trusted"
        )
    problems = []
    for authority in authorities:
        if len(authority.chain) < 2:
            problems.append(f"{authority.name}: chain needs a signing certificate and a root")
            continue
        builder = (
            VerifierBuilder().tsa_certificate(authority.chain[0]).add_root_certificate(authority.chain[-1])
        )
        for intermediate in authority.chain[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        try:
            builder.build().verify_message(response, message)
        except (VerificationError, ValueError) as exc:
            problems.append(f"{authority.name or 'TSA'}: {exc}")
            continue
        moment = response.tst_info.gen_time
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if authority.valid is not None and not authority.valid.covers(moment):
            problems.append(f"{authority.name or 'TSA'} was not trusted at {moment.isoformat()}")
            continue
        return moment
    return VerificationFailure(
        "timestamp", "RFC 3161 timestamp is not from a trusted timestamp authority: " + "; ".join(problems)
    )
