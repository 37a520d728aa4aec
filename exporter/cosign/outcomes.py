"""Verification outcomes as values: verified, unsigned, invalid or error, each with a one-line reason.

Kyverno reports an unsigned or invalid image as ``fail`` and a verification that could not finish as
``error``; callers map ``status`` the same way. Registry or infrastructure trouble is always a
``VerificationError``, never ``Invalid``: with ``failurePolicy: Ignore`` an outage must not deny.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from exporter.cosign.found import Place
from exporter.registry.reference import ImageReference
from exporter.sigstore import CertificateIdentity, TimeSource

Status = Literal["verified", "unsigned", "invalid", "error"]

# The container a signature came in:
# - simple-signing: a legacy ``.sig`` layer (cosign's simple-signing payload, signature in an annotation)
# - dsse-attestation: a legacy ``.att`` layer (a DSSE envelope over an in-toto statement)
# - bundle-message-signature: a Sigstore bundle whose signature is over the artifact digest
# - bundle-dsse: a Sigstore bundle holding a DSSE envelope over an in-toto statement (cosign 3's default)
Format = Literal["simple-signing", "dsse-attestation", "bundle-message-signature", "bundle-dsse"]


@dataclass(frozen=True)
class VerifiedSignature:
    """One signature that verified for one attestor, and how it was proven.

    ``place``/``repository``/``manifest_digest`` say where it was found, ``format`` (and ``bundle_version``
    for bundles: ``0.1``, ``0.2``, ``0.3``) how it was packaged. ``key`` names the matching key of a key
    attestor; ``identity`` is the certificate's identity for certificate and keyless attestors.
    ``log_index``/``integrated_time`` come from a verified Rekor entry; ``signing_time`` is the proven time
    the certificate was checked at and ``time_source`` where it came from (``tlog``, ``timestamp-authority``,
    or ``current-time`` when no proof was required); both are ``None`` for a key signature nothing timed.
    ``predicate_type`` is set for in-toto statements (cosign 3 signs images as
    ``https://sigstore.dev/cosign/sign/v1`` statements).
    """

    attestor: str
    place: Place
    repository: str
    manifest_digest: str
    format: Format
    bundle_version: str | None = None
    key: str | None = None
    identity: CertificateIdentity | None = None
    log_index: int | None = None
    integrated_time: datetime | None = None
    signing_time: datetime | None = None
    time_source: TimeSource | None = None
    predicate_type: str | None = None

    def describe(self) -> str:
        """One line: ``<format> in <place> (<repository>), signed by <attestor> [as <subject>]…``."""
        what = self.format + (f" v{self.bundle_version}" if self.bundle_version else "")
        who = self.attestor + (f" ({self.key})" if self.key and self.key != self.attestor else "")
        if self.identity is not None:
            who += f" as {self.identity.subject}" + (
                f" from {self.identity.issuer}" if self.identity.issuer else ""
            )
        when = f", logged at index {self.log_index}" if self.log_index is not None else ""
        if self.signing_time is not None:
            when += f", signed {self.signing_time.isoformat()} ({self.time_source})"
        return f"{what} in {self.place} ({self.repository}), signed by {who}{when}"


@dataclass(frozen=True)
class VerifiedStatement:
    """An in-toto statement whose signature verified and whose subject is the image digest.

    ``statement`` is the whole decoded statement (``_type``, ``subject``, ``predicateType``, ``predicate``);
    ``predicate`` is its ``predicate`` (``{}`` when absent). Policy conditions evaluate these.
    """

    predicate_type: str
    predicate: Any
    statement: Mapping[str, Any]
    signature: VerifiedSignature


@dataclass(frozen=True)
class Rejection:
    """Why one candidate (a signature layer, envelope or bundle) did not count; ``where`` names it."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class Verified:
    """At least ``threshold`` attestors signed this digest; ``signatures`` says which, where and how.

    For attestations ``statements`` holds every verified statement of the requested predicate type.
    """

    reference: ImageReference
    digest: str
    signatures: tuple[VerifiedSignature, ...]
    statements: tuple[VerifiedStatement, ...] = ()
    status: Literal["verified"] = "verified"

    @property
    def matched_attestors(self) -> tuple[str, ...]:
        """Attestors that signed, in first-signature order, each once."""
        return tuple(dict.fromkeys(signature.attestor for signature in self.signatures))

    @property
    def matched_keys(self) -> tuple[str, ...]:
        """Names of the keys that signed (key attestors), each once."""
        return tuple(dict.fromkeys(s.key for s in self.signatures if s.key is not None))

    @property
    def reason(self) -> str:
        return f"{self.digest} is signed by {', '.join(self.matched_attestors)}"


@dataclass(frozen=True)
class Unsigned:
    """Nothing was found where signatures (or attestations of ``predicate_type``) may live; ``skipped`` says
    what was there but not taken (see ``FoundArtifacts.skipped``)."""

    reference: ImageReference
    digest: str
    predicate_type: str | None = None
    skipped: tuple[str, ...] = ()
    status: Literal["unsigned"] = "unsigned"

    @property
    def reason(self) -> str:
        """One line; names what discovery found but did not take (a referrer of another image…), if any."""
        if self.predicate_type is not None:
            text = f"{self.digest} has no attestation of type {self.predicate_type}"
        else:
            text = f"{self.digest} has no cosign signature"
        return text + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else "")


@dataclass(frozen=True)
class Invalid:
    """Signatures exist but not enough of them verify; one rejection per candidate (and per shortfall)."""

    reference: ImageReference
    digest: str
    rejections: tuple[Rejection, ...]
    status: Literal["invalid"] = "invalid"

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(str(rejection) for rejection in self.rejections)

    @property
    def reason(self) -> str:
        return f"{self.digest} is not signed by a trusted signer: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class VerificationError:
    """Verification could not finish (registry, network, trust material); ``cause`` says why."""

    reference: ImageReference
    cause: str
    status: Literal["error"] = "error"

    @property
    def reason(self) -> str:
        return f"could not verify {self.reference}: {self.cause}"


VerificationOutcome = Verified | Unsigned | Invalid | VerificationError
