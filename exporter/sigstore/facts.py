"""What verification established about a signer, as values: who (identity, key), when, and how it is proven;
or why it could not be established (``VerificationFailure``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# Where the signing time came from: a verified Rekor entry's integrated time, an RFC 3161 timestamp, or the
# verifier's clock (only when no proof is required and none was given; certificates must then be valid now).
TimeSource = Literal["tlog", "timestamp-authority", "current-time"]

# Which check failed; lets callers and tests tell a bad identity from a bad proof.
FailedCheck = Literal[
    "material",
    "signature",
    "certificate-chain",
    "certificate-validity",
    "sct",
    "tlog",
    "timestamp",
    "identity",
]


@dataclass(frozen=True)
class CertificateIdentity:
    """The identity a signing certificate carries: its SANs, OIDC issuer and Fulcio extensions by name."""

    subject: str
    subject_alternative_names: tuple[str, ...]
    issuer: str | None
    extensions: Mapping[str, str]


@dataclass(frozen=True)
class LogEntryFacts:
    """A Rekor entry that verified for this signature."""

    log_url: str
    log_index: int
    integrated_time: datetime | None
    inclusion_proven: bool


@dataclass(frozen=True)
class SignerFacts:
    """A signature whose signer and time are established.

    ``identity`` is set for certificates (keyless or own PKI), ``None`` for a trusted key. ``signing_time`` is
    the earliest proven time and ``time_source`` says which proof gave it. ``sct_verified`` is False only when
    SCTs were not required.
    """

    identity: CertificateIdentity | None
    log_entries: tuple[LogEntryFacts, ...]
    signing_time: datetime
    time_source: TimeSource
    timestamp_times: tuple[datetime, ...] = ()
    sct_verified: bool = False


@dataclass(frozen=True)
class VerificationFailure:
    """Why a signature does not count, in one line a user can act on; ``check`` says which check failed."""

    check: FailedCheck
    reason: str

    def __str__(self) -> str:
        return self.reason
