"""DSSE envelopes (legacy ``.att`` layers and bundles' ``dsseEnvelope``): parsing and the PAE encoding.

A DSSE signature is over PAE(payloadType, payload), never over the payload alone: checking the payload
instead would let a signature made for one payload type vouch for another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.cosign.formats.fields import FormatError, decode_b64, get_list, get_str

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_SIGNATURES = 16


@dataclass(frozen=True)
class Envelope:
    """A parsed DSSE envelope: payload type, decoded payload and every signature, in order."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    @property
    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 <len type> <type> <len body> <body>``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def parse_envelope(document: dict[str, Any], where: str) -> Envelope:
    """The envelope in ``document`` (already decoded JSON); FormatError naming the bad field otherwise."""
    payload_type = get_str(document, "payloadType", where)
    payload = decode_b64(get_str(document, "payload", where), f"{where}.payload")
    entries = get_list(document, "signatures", where, MAX_ENVELOPE_SIGNATURES)
    signatures: list[bytes] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FormatError(f"{where}.signatures[{index}] is not an object")
        signatures.append(decode_b64(get_str(entry, "sig", f"{where}.signatures[{index}]"), "signature"))
    if not signatures:
        raise FormatError(f"{where} has no signatures")
    return Envelope(payload_type, payload, tuple(signatures))
