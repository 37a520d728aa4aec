"""Verification outcomes as values: verified, unsigned, invalid or error, each with a one-line reason.

Kyverno reports an unsigned or invalid image as ``fail`` and a verification that could not finish as
``error``; callers map ``status`` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.registry.reference import ImageReference

Status = Literal["verified", "unsigned", "invalid", "error"]


@dataclass(frozen=True)
class Verified:
    """At least ``threshold`` trusted keys signed this digest; ``matched_keys`` names them."""

    reference: ImageReference
    digest: str
    matched_keys: tuple[str, ...]
    status: Literal["verified"] = "verified"

    @property
    def reason(self) -> str:
        return f"{self.digest} is signed by {', '.join(self.matched_keys)}"


@dataclass(frozen=True)
class Unsigned:
    """The image has no cosign signature manifest (``sha256-<hex>.sig``) or it holds no signature."""

    reference: ImageReference
    digest: str
    status: Literal["unsigned"] = "unsigned"

    @property
    def reason(self) -> str:
        return f"{self.digest} has no cosign signature"


@dataclass(frozen=True)
class Invalid:
    """Signatures exist but not enough of them verify; ``reasons`` holds one line per signature/key."""

    reference: ImageReference
    digest: str
    reasons: tuple[str, ...]
    status: Literal["invalid"] = "invalid"

    @property
    def reason(self) -> str:
        return f"{self.digest} is not signed by a trusted key: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class VerificationError:
    """Verification could not finish (registry, network, malformed data served); ``cause`` says why."""

    reference: ImageReference
    cause: str
    status: Literal["error"] = "error"

    @property
    def reason(self) -> str:
        return f"could not verify {self.reference}: {self.cause}"


VerificationOutcome = Verified | Unsigned | Invalid | VerificationError
