"""The signature itself: does it verify over what it claims to sign, with the signer's key?"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from exporter.cosign.keys import PublicKey
from exporter.sigstore.material import SignedEnvelope, SignedMessage

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _verify_prehashed(
    key: PublicKey, signature: bytes, digest: bytes, algorithm: hashes.HashAlgorithm
) -> None:
    prehashed = utils.Prehashed(algorithm)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, digest, ec.ECDSA(prehashed))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    else:
        raise InvalidSignature("Ed25519 signs whole messages, not digests")


def signature_verifies(key: PublicKey, signature: bytes, signed: SignedMessage | SignedEnvelope) -> bool:
    """True when ``signature`` is ``key``'s over ``signed`` (a message, by its bytes or its digest, or a DSSE
    envelope's PAE); RSA is PKCS#1 v1.5 and ECDSA hashes with the message's algorithm, as cosign signs."""
    try:
        if isinstance(signed, SignedEnvelope):
            message = signed.pae()
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            else:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        algorithm = _HASHES[signed.algorithm]()
        if signed.content is not None and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed.content)
        else:
            _verify_prehashed(key, signature, signed.digest, algorithm)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True
