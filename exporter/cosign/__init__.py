"""cosign key-based verification: keys, signature discovery, payload binding, Rekor SET, outcomes."""

from exporter.cosign.keys import KeyLoadError, TrustedKey, load_public_key, load_public_keys
from exporter.cosign.outcomes import Invalid, Unsigned, VerificationError, VerificationOutcome, Verified
from exporter.cosign.signatures import SignatureLayer, SignatureSet, fetch_signatures, signature_tag
from exporter.cosign.verify import VerifyOptions, verify_image, verify_signatures

__all__ = [
    "Invalid",
    "KeyLoadError",
    "SignatureLayer",
    "SignatureSet",
    "TrustedKey",
    "Unsigned",
    "VerificationError",
    "VerificationOutcome",
    "Verified",
    "VerifyOptions",
    "fetch_signatures",
    "load_public_key",
    "load_public_keys",
    "signature_tag",
    "verify_image",
    "verify_signatures",
]
