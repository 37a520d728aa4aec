"""Deciding whether an image's signatures satisfy a set of trusted keys (pure), and fetch + decide."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from exporter.cosign.keys import HASH_NAMES, TrustedKey, signature_is_valid
from exporter.cosign.outcomes import Invalid, Unsigned, VerificationError, VerificationOutcome, Verified
from exporter.cosign.payload import PayloadError, parse_payload
from exporter.cosign.rekor import check_bundle, parse_bundle
from exporter.cosign.signatures import SignatureLayer, SignatureSet, fetch_signatures
from exporter.registry.client import RegistryClient
from exporter.registry.reference import ImageReference, InvalidReferenceError, parse_reference

# The same (key, payload, signature) is checked again for every attestor and policy rule: remember verdicts,
# keyed by a digest so that large payloads or signatures never sit in memory.
MAX_CACHED_VERDICTS = 4096
_verdicts: OrderedDict[bytes, bool] = OrderedDict()
_verdicts_lock = threading.Lock()  # verify_signatures may also be called from worker threads


def _signature_valid(
    key: TrustedKey, payload: bytes, payload_digest: bytes, signature: bytes, hash_name: str
) -> bool:
    cache_key = hashlib.sha256(
        b"\0".join(
            (key.fingerprint.encode(), payload_digest, hashlib.sha256(signature).digest(), hash_name.encode())
        )
    ).digest()
    with _verdicts_lock:
        verdict = _verdicts.get(cache_key)
        if verdict is not None:
            _verdicts.move_to_end(cache_key)
            return verdict
    verdict = signature_is_valid(key, payload, signature, hash_name)
    with _verdicts_lock:
        _verdicts[cache_key] = verdict
        if len(_verdicts) > MAX_CACHED_VERDICTS:
            _verdicts.popitem(last=False)
    return verdict


@dataclass(frozen=True)
class VerifyOptions:
    """What counts as trusted: keys, how many must sign, hash, Rekor keys, whether a tlog entry is needed.

    ``require_tlog`` mirrors Kyverno's ``rekor.ignoreTlog: false`` and needs ``rekor_keys``.
    """

    keys: tuple[TrustedKey, ...]
    threshold: int = 1
    signature_algorithm: str = "sha256"
    rekor_keys: tuple[TrustedKey, ...] = ()
    require_tlog: bool = False
    require_reference: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one trusted public key is required")
        if not 1 <= self.threshold <= len(self.keys):
            raise ValueError(
                f"threshold (count) {self.threshold} must be between 1 and the number of keys "
                f"({len(self.keys)})"
            )
        if self.signature_algorithm not in HASH_NAMES:
            raise ValueError(
                f"signature algorithm {self.signature_algorithm!r} is not one of {', '.join(HASH_NAMES)}"
            )
        if self.require_tlog and not self.rekor_keys:
            raise ValueError("requiring a transparency-log entry needs a Rekor public key")


def _same_repository(signed: str | None, reference: ImageReference) -> bool:
    if signed is None:
        return False
    try:
        parsed = parse_reference(signed)
    except InvalidReferenceError:
        return False
    return (parsed.registry, parsed.repository) == (reference.registry, reference.repository)


def _layer_check(
    layer: SignatureLayer, signatures: SignatureSet, options: VerifyOptions
) -> tuple[tuple[TrustedKey, ...], str | None]:
    """The keys for which this layer is a valid signature of the image, or why it is none."""
    if layer.problem is not None:
        return (), layer.problem
    if layer.signature is None:
        return (), "layer has no dev.cosignproject.cosign/signature annotation"
    try:
        signature = base64.b64decode(layer.signature, validate=True)
    except binascii.Error:
        return (), "signature annotation is not valid base64"
    payload_digest = hashlib.sha256(layer.payload).digest()
    signers = tuple(
        key
        for key in options.keys
        if _signature_valid(key, layer.payload, payload_digest, signature, options.signature_algorithm)
    )
    if not signers:
        return (), f"does not verify with any trusted key ({', '.join(key.name for key in options.keys)})"
    names = ", ".join(key.name for key in signers)
    try:
        payload = parse_payload(layer.payload)
    except PayloadError as exc:
        return (), f"signed by {names} but {exc}"
    if payload.docker_manifest_digest != signatures.digest:
        return (), (
            f"signed by {names} for digest {payload.docker_manifest_digest}, "
            f"not this image's {signatures.digest}"
        )
    if options.require_reference and not _same_repository(payload.docker_reference, signatures.reference):
        return (), (
            f"signed by {names} for {payload.docker_reference!r}, not {signatures.reference.repository_path}"
        )
    if layer.bundle is None or not options.rekor_keys:
        if options.require_tlog:
            return (), f"signed by {names} but has no Rekor bundle and a transparency-log entry is required"
        return signers, None
    try:
        bundle = parse_bundle(layer.bundle)
    except ValueError as exc:
        return (), f"signed by {names} but {exc}"
    logged = []
    problems = []
    for key in signers:
        problem = check_bundle(bundle, options.rekor_keys, key, signature, layer.payload)
        if problem is None:
            logged.append(key)
        else:
            problems.append(problem)
    if not logged:
        return (), f"signed by {names} but {problems[0]}"
    return tuple(logged), None


def verify_signatures(signatures: SignatureSet, options: VerifyOptions) -> VerificationOutcome:
    """Decide from fetched signatures alone (no I/O); call once per attestor with its own options."""
    if not signatures.layers:
        return Unsigned(signatures.reference, signatures.digest)
    matched: dict[str, None] = {}
    reasons: list[str] = []
    for index, layer in enumerate(signatures.layers, start=1):
        signers, problem = _layer_check(layer, signatures, options)
        if problem is not None:
            reasons.append(f"signature {index} ({layer.digest[:19]}…): {problem}")
        matched.update(dict.fromkeys(key.name for key in signers))
    if len(matched) >= options.threshold:
        ordered = tuple(key.name for key in options.keys if key.name in matched)
        return Verified(signatures.reference, signatures.digest, ordered)
    if matched:
        reasons.append(
            f"only {len(matched)} of the required {options.threshold} keys signed ({', '.join(matched)})"
        )
    return Invalid(signatures.reference, signatures.digest, tuple(reasons))


async def verify_image(
    client: RegistryClient, reference: ImageReference, options: VerifyOptions
) -> VerificationOutcome:
    """Fetch ``reference``'s signatures and decide; registry trouble becomes a VerificationError value."""
    signatures = await fetch_signatures(client, reference)
    if isinstance(signatures, VerificationError):
        return signatures
    return verify_signatures(signatures, options)
