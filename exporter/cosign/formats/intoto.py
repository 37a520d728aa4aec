"""in-toto Statements (v0.1 and v1): what an attestation or a cosign 3 signature says, and about what.

A statement binds its predicate to artifacts by digest: it proves something about an image only when one of
its subjects carries that image's sha256 digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.cosign.formats.fields import FormatError, get_list, get_str, load_json

STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
# cosign 3 signs an image as a statement of this type (no predicate).
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
# cosign's short names for predicate types (``cosign attest --type``), with the URIs statements carry.
PREDICATE_TYPE_NAMES = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}
MAX_STATEMENT_BYTES = 4 * 1024 * 1024
MAX_SUBJECTS = 1024


@dataclass(frozen=True)
class Statement:
    """A decoded statement: its predicate type, the sha256 digests of its subjects, the whole document."""

    predicate_type: str
    subject_digests: tuple[str, ...]
    predicate: Any
    document: Mapping[str, Any]

    def is_about(self, digest: str) -> bool:
        """Whether ``digest`` (``sha256:<hex>``) is one of the subjects."""
        algorithm, _, value = digest.partition(":")
        return algorithm == "sha256" and value.lower() in self.subject_digests


def predicate_type_uri(name: str) -> str:
    """The predicate type URI for a cosign short name (``slsaprovenance1``…); any other text as given."""
    return PREDICATE_TYPE_NAMES.get(name, name)


def parse_statement(payload: bytes) -> Statement:
    """Parse a DSSE payload as an in-toto statement; FormatError naming the bad field otherwise."""
    document = load_json(payload, "in-toto statement", MAX_STATEMENT_BYTES)
    kind = document.get("_type")
    if kind not in STATEMENT_TYPES:
        raise FormatError(f"statement _type {str(kind)[:80]!r} is not one of {', '.join(STATEMENT_TYPES)}")
    predicate_type = get_str(document, "predicateType", "statement")
    digests: list[str] = []
    for index, subject in enumerate(get_list(document, "subject", "statement", MAX_SUBJECTS)):
        digest = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digest, dict):
            raise FormatError(f"statement.subject[{index}].digest is missing or not an object")
        value = digest.get("sha256")
        if isinstance(value, str):
            digests.append(value.lower())
    if not digests:
        raise FormatError("statement has no subject with a sha256 digest")
    predicate = document.get("predicate", {})
    return Statement(predicate_type, tuple(digests), predicate, document)
