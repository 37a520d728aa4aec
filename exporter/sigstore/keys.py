"""Trusted public keys (PEM) and the one signature check cosign makes with them.

cosign hashes the payload with SHA-256 whatever the key (Kyverno's ``signatureAlgorithm`` may change that);
RSA signatures are PKCS#1 v1.5, and Ed25519 signs the payload itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
HashName = Literal["sha256", "sha384", "sha512"]
HASH_NAMES: tuple[HashName, ...] = ("sha256", "sha384", "sha512")

_SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 2048
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


class KeyLoadError(ValueError):
    """A public key that cannot be used; says which key and why."""


@dataclass(frozen=True)
class TrustedKey:
    """A public key trusted to sign images; ``name`` is how outcomes and reports refer to it."""

    name: str
    pem: str
    key: PublicKey = field(compare=False, repr=False)
    # sha256 of the DER SubjectPublicKeyInfo: identifies the key across PEM spellings (and is Rekor's log ID).
    fingerprint: str = field(default="", repr=False)

    @property
    def algorithm(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return f"ECDSA {self.key.curve.name}"
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"RSA-{self.key.key_size}"
        return "Ed25519"


def _hash(name: str) -> hashes.HashAlgorithm:
    if name == "sha384":
        return hashes.SHA384()
    if name == "sha512":
        return hashes.SHA512()
    return hashes.SHA256()


def spki_fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# The shortest public key body there is: an Ed25519 SubjectPublicKeyInfo is 44 bytes, 60 base64 characters.
_SHORTEST_KEY_BODY = 60


def _damage_hint(text: str) -> str:
    """Why a PEM block that does not parse probably does not, judged from its base64 body."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    body = "".join(line for line in lines if not line.startswith("-----"))
    if not _BASE64.fullmatch(body) or len(body) < _SHORTEST_KEY_BODY:
        return "; the block looks like a placeholder, not a key: paste the whole content of cosign.pub"
    if len(body) % 4:
        return (
            f"; its base64 body is {len(body)} characters, not a multiple of 4: the key looks truncated "
            "(characters lost when copying it?); paste the whole content of cosign.pub"
        )
    return ""


def load_public_key(pem: str | bytes, name: str = "") -> TrustedKey:
    """Load one PEM public key (ECDSA P-256/P-384/P-521, RSA >= 2048 bits, Ed25519)."""
    text = pem.decode("utf-8", errors="replace") if isinstance(pem, bytes) else pem
    label = name or "public key"
    try:
        loaded = serialization.load_pem_public_key(text.strip().encode("utf-8"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"{label}: not a PEM public key ({exc}){_damage_hint(text)}") from None
    if isinstance(loaded, ec.EllipticCurvePublicKey):
        if loaded.curve.name not in _SUPPORTED_CURVES:
            raise KeyLoadError(
                f"{label}: ECDSA curve {loaded.curve.name} is not supported (use P-256 or P-384)"
            )
        key: PublicKey = loaded
    elif isinstance(loaded, rsa.RSAPublicKey):
        if loaded.key_size < MIN_RSA_BITS:
            raise KeyLoadError(
                f"{label}: RSA key of {loaded.key_size} bits is too weak (need >= {MIN_RSA_BITS})"
            )
        key = loaded
    elif isinstance(loaded, ed25519.Ed25519PublicKey):
        key = loaded
    else:
        raise KeyLoadError(f"{label}: {type(loaded).__name__} keys are not supported (ECDSA, RSA or Ed25519)")
    fingerprint = spki_fingerprint(key)
    return TrustedKey(
        name=name or f"key-{fingerprint[:12]}", pem=text.strip(), key=key, fingerprint=fingerprint
    )


def load_public_keys(pem_text: str, name_prefix: str = "") -> tuple[TrustedKey, ...]:
    """Load every PEM block in ``pem_text`` (Kyverno's ``publicKeys`` may hold several).

    Keys are named ``<prefix>`` when there is one block, else ``<prefix>#1``, ``<prefix>#2``…
    """
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(pem_text)]
    label = name_prefix or "public keys"
    if not blocks:
        raise KeyLoadError(f"{label}: no PEM block ('-----BEGIN PUBLIC KEY-----') found")
    if len(blocks) == 1:
        return (load_public_key(blocks[0], name_prefix),)
    return tuple(
        load_public_key(block, f"{name_prefix}#{index}" if name_prefix else "")
        for index, block in enumerate(blocks, start=1)
    )


def signature_is_valid(key: TrustedKey, payload: bytes, signature: bytes, hash_name: str = "sha256") -> bool:
    """True when ``signature`` over ``payload`` verifies with ``key`` (cosign's scheme for that key type)."""
    try:
        if isinstance(key.key, ec.EllipticCurvePublicKey):
            key.key.verify(signature, payload, ec.ECDSA(_hash(hash_name)))
        elif isinstance(key.key, rsa.RSAPublicKey):
            key.key.verify(signature, payload, padding.PKCS1v15(), _hash(hash_name))
        else:
            key.key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def digest_signature_is_valid(
    key: TrustedKey, digest: bytes, signature: bytes, hash_name: str = "sha256"
) -> bool:
    """True when ``signature`` is over the message whose ``hash_name`` digest is ``digest`` (a bundle's
    message signature). Ed25519 signs messages, not digests: such a signature never verifies here."""
    algorithm = _hash(hash_name)
    if len(digest) != algorithm.digest_size:
        return False
    try:
        if isinstance(key.key, ec.EllipticCurvePublicKey):
            key.key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm)))
        elif isinstance(key.key, rsa.RSAPublicKey):
            key.key.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
