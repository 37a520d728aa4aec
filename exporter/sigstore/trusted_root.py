"""Sigstore trust material: a ``trusted_root.json`` (media type
``application/vnd.dev.sigstore.trustedroot+json;version=0.1``) as typed, validated values.

It says which Fulcio CAs issue signing certificates, which Rekor logs and CT logs are trusted (by key), and
which timestamp authorities may vouch for a signing time, each for a validity window: a key or CA counts only
for signatures made inside its window. The public-good root ships in ``data/`` (see ``PUBLIC_GOOD``); a
private Sigstore deployment passes its own file. Nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from exporter.sigstore.keys import KeyLoadError, TrustedKey, load_public_key

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
MAX_TRUSTED_ROOT_BYTES = 1024 * 1024
PUBLIC_GOOD = "public-good-trusted_root.json"


class TrustedRootError(ValueError):
    """A trusted root that cannot be used; says which file and which field."""


@dataclass(frozen=True)
class ValidityWindow:
    """When a key or CA may be relied on: ``start`` inclusive, ``end`` inclusive (``None``: still valid)."""

    start: datetime
    end: datetime | None = None

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)


@dataclass(frozen=True)
class TransparencyLog:
    """A Rekor log or a CT log: its key, key id (SHA-256 of the DER public key) and validity window."""

    base_url: str
    log_id: bytes
    key: TrustedKey
    valid: ValidityWindow


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA or a timestamp authority: its chain (the issuing certificate first, the root last)."""

    uri: str
    chain: tuple[x509.Certificate, ...]
    valid: ValidityWindow

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]


@dataclass(frozen=True)
class TrustedRoot:
    """Everything a verifier trusts; ``source`` names where it came from (a file path or the shipped root)."""

    source: str
    tlogs: tuple[TransparencyLog, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    ctlogs: tuple[TransparencyLog, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...]

    def tlog(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.tlogs if log.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> TransparencyLog | None:
        return next((log for log in self.ctlogs if log.log_id == log_id), None)


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise TrustedRootError(f"{where} must be an RFC 3339 timestamp string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TrustedRootError(f"{where}: {value!r} is not an RFC 3339 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window(value: Any, where: str) -> ValidityWindow:
    if not isinstance(value, dict) or "start" not in value:
        raise TrustedRootError(f"{where} needs a 'start'")
    end = value.get("end")
    return ValidityWindow(
        _timestamp(value["start"], f"{where}.start"), None if end is None else _timestamp(end, f"{where}.end")
    )


def _bytes(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise TrustedRootError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise TrustedRootError(f"{where} is not valid base64") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TrustedRootError(f"{where} must be an object")
    return value


def _list(document: dict[str, Any], name: str) -> list[Any]:
    value = document.get(name, [])
    if not isinstance(value, list):
        raise TrustedRootError(f"'{name}' must be a list")
    return value


def _log(value: Any, where: str) -> TransparencyLog:
    entry = _object(value, where)
    public_key = _object(entry.get("publicKey"), f"{where}.publicKey")
    der = _bytes(public_key.get("rawBytes"), f"{where}.publicKey.rawBytes")
    try:
        loaded = serialization.load_der_public_key(der)
        pem = loaded.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        key = load_public_key(pem, f"{where} key")
    except (ValueError, TypeError, KeyLoadError) as exc:
        raise TrustedRootError(f"{where}.publicKey: {exc}") from None
    log_id = _bytes(_object(entry.get("logId"), f"{where}.logId").get("keyId"), f"{where}.logId.keyId")
    base_url = str(entry.get("baseUrl", ""))
    if log_id not in (hashlib.sha256(der).digest(), note_key_id(origin_of(base_url), key)):
        raise TrustedRootError(
            f"{where}.logId.keyId is not the SHA-256 of the log's public key (nor its signed-note key id)"
        )
    return TransparencyLog(
        base_url,
        log_id,
        key,
        _window(public_key.get("validFor"), f"{where}.publicKey.validFor"),
    )


def origin_of(base_url: str) -> str:
    """A log's checkpoint origin as Rekor v2 names it: its URL without the scheme."""
    return base_url.split("://", 1)[-1].rstrip("/")


def note_key_id(origin: str, key: TrustedKey) -> bytes:
    """The C2SP signed-note key id of an Ed25519 log key (Rekor v2's log id): SHA-256(origin, 0x0A, 0x01,
    raw key); empty for other key types, whose log id is the SHA-256 of the DER key."""
    if not isinstance(key.key, ed25519.Ed25519PublicKey):
        return b""
    raw = key.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()


def _authority(value: Any, where: str) -> CertificateAuthority:
    entry = _object(value, where)
    certificates = _object(entry.get("certChain"), f"{where}.certChain").get("certificates")
    if not isinstance(certificates, list) or not certificates:
        raise TrustedRootError(f"{where}.certChain.certificates must be a non-empty list")
    chain = []
    for index, certificate in enumerate(certificates):
        at = f"{where}.certChain.certificates[{index}]"
        try:
            chain.append(x509.load_der_x509_certificate(_bytes(_object(certificate, at).get("rawBytes"), at)))
        except ValueError as exc:
            raise TrustedRootError(f"{at}: not a DER certificate ({exc})") from None
    return CertificateAuthority(
        str(entry.get("uri", "")), tuple(chain), _window(entry.get("validFor"), f"{where}.validFor")
    )


def parse_trusted_root(content: bytes, source: str) -> TrustedRoot:
    """Parse and validate a trusted root; raises ``TrustedRootError`` naming ``source`` and the bad field."""
    if len(content) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustedRootError(f"{source}: larger than {MAX_TRUSTED_ROOT_BYTES} bytes")
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):
        raise TrustedRootError(f"{source}: not JSON") from None
    try:
        document = _object(document, "trusted root")
        if document.get("mediaType") != MEDIA_TYPE:
            raise TrustedRootError(f"mediaType must be {MEDIA_TYPE!r}, not {document.get('mediaType')!r}")
        return TrustedRoot(
            source,
            tuple(_log(entry, f"tlogs[{i}]") for i, entry in enumerate(_list(document, "tlogs"))),
            tuple(
                _authority(entry, f"certificateAuthorities[{i}]")
                for i, entry in enumerate(_list(document, "certificateAuthorities"))
            ),
            tuple(_log(entry, f"ctlogs[{i}]") for i, entry in enumerate(_list(document, "ctlogs"))),
            tuple(
                _authority(entry, f"timestampAuthorities[{i}]")
                for i, entry in enumerate(_list(document, "timestampAuthorities"))
            ),
        )
    except TrustedRootError as exc:
        raise TrustedRootError(f"{source}: {exc} (a Sigstore trusted_root.json is expected)") from None


def load_trusted_root(path: str | Path) -> TrustedRoot:
    """Read a trusted root file given by a policy or ``--trusted-root``."""
    try:
        with open(path, "rb") as handle:
            content = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as exc:
        raise TrustedRootError(f"cannot read trusted root {path}: {exc.strerror}") from None
    return parse_trusted_root(content, str(path))


@cache
def public_good_root() -> TrustedRoot:
    """The public-good Sigstore root shipped with trustwatch (``data/``; docs/verification.md says how
    to refresh it)."""
    content = resources.files("exporter.sigstore").joinpath("data", PUBLIC_GOOD).read_bytes()
    return parse_trusted_root(content, f"shipped {PUBLIC_GOOD}")
