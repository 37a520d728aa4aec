"""The one internal "signed thing" every format becomes: a signature, what it is over, what it claims about
the image, and the verification material that came with it (certificates, log entries, timestamps)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from exporter.cosign.formats.dsse import Envelope
from exporter.cosign.formats.fields import FormatError
from exporter.cosign.formats.intoto import Statement, parse_statement
from exporter.cosign.formats.simple_signing import SimpleSigningPayload
from exporter.cosign.found import FoundArtifact, Place
from exporter.cosign.outcomes import Format
from exporter.sigstore.material import SignedEnvelope, SignedMessage, TlogEntry


@dataclass(frozen=True)
class Candidate:
    """One signature as found, parsed but not yet trusted.

    ``signed`` is what the signature covers: the simple-signing payload, a bundle's message digest, or a
    DSSE envelope (signature over its PAE). ``claim`` is what the signed content says about the image: the
    simple-signing payload, the in-toto statement, or, for a bundle message signature, the signed digest
    itself. ``claim_problem`` is set when the signed content could not be read; it only matters once the
    signature verified (an unverified signature is rejected for that first).
    """

    where: str
    artifact: FoundArtifact
    format: Format
    signature: bytes
    signed: SignedMessage | SignedEnvelope
    claim: SimpleSigningPayload | Statement | str | None
    claim_problem: str | None = None
    bundle_version: str | None = None
    certificates: tuple[x509.Certificate, ...] = ()
    tlog_entries: tuple[TlogEntry, ...] = ()
    timestamps: tuple[bytes, ...] = ()
    timestamped: bytes | None = None
    order: int = 0  # position of the artifact in discovery's list: rejections are reported in this order

    @property
    def statement(self) -> Statement | None:
        return self.claim if isinstance(self.claim, Statement) else None

    @property
    def predicate_type(self) -> str | None:
        return self.claim.predicate_type if isinstance(self.claim, Statement) else None

    @property
    def is_bundle(self) -> bool:
        return self.format in ("bundle-message-signature", "bundle-dsse")

    def content_digest(self) -> bytes:
        """A digest of everything the signature covers (for caching verdicts, never for trust)."""
        if isinstance(self.signed, SignedEnvelope):
            return hashlib.sha256(
                b"dsse\0" + self.signed.payload_type.encode() + b"\0" + self.signed.payload
            ).digest()
        return hashlib.sha256(
            b"message\0" + self.signed.algorithm.encode() + b"\0" + self.signed.digest
        ).digest()


def envelope_candidates(envelope: Envelope, where: str, **fields: Any) -> tuple[Candidate, ...]:
    """One candidate per signature of a DSSE envelope, each claiming what its in-toto statement says
    (``fields``: format, artifact and verification material)."""
    claim_problem = None
    try:
        claim: Statement | None = parse_statement(envelope.payload)
    except FormatError as exc:
        claim, claim_problem = None, str(exc)
    signed = SignedEnvelope(envelope.payload_type, envelope.payload, envelope.signatures)
    return tuple(
        Candidate(
            where=where if len(envelope.signatures) == 1 else f"{where} signature {index}",
            signature=signature,
            signed=signed,
            claim=claim,
            claim_problem=claim_problem,
            **fields,
        )
        for index, signature in enumerate(envelope.signatures, start=1)
    )


@dataclass(frozen=True)
class Unreadable:
    """A found artifact that could not be parsed into any candidate; ``reason`` says what is wrong."""

    where: str
    place: Place
    reason: str
    order: int = 0
