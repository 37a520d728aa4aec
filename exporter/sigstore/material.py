"""What a signature brings to be checked against Sigstore trust material, in one format-free shape.

Formats (legacy ``.sig`` layers, ``.att`` DSSE layers, Sigstore bundles v0.1-v0.3) are parsed elsewhere
(``exporter.cosign``); each becomes a ``SigningMaterial``: the signature, what it signs, who claims to have
signed it (a certificate chain or a key) and the proofs that come with it (transparency-log entries, RFC 3161
timestamps). Everything here is untrusted until ``exporter.sigstore.verify.verify_material`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from exporter.sigstore.keys import HashName, TrustedKey


@dataclass(frozen=True)
class SignedMessage:
    """A signature over a message: cosign's simple-signing payload, or a bundle's ``messageSignature``.

    ``digest`` is the message's hash (what a ``hashedrekord`` entry records); ``content`` the message itself
    when the format carries it (a ``.sig`` layer does; a bundle carries only the digest of its artifact).
    """

    digest: bytes
    content: bytes | None = None
    algorithm: HashName = "sha256"


@dataclass(frozen=True)
class SignedEnvelope:
    """A DSSE envelope: the signature is over PAE(``payload_type``, ``payload``) (DSSE v1).

    ``signatures`` are all the envelope's signatures, in order (Rekor's ``dsse``/``intoto`` entries record
    every one of them); the one being checked is ``SigningMaterial.signature``.
    """

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def pae(self) -> bytes:
        """DSSE's pre-authentication encoding: what the envelope's signatures sign."""
        kind = self.payload_type.encode("utf-8")
        return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(self.payload), self.payload)


@dataclass(frozen=True)
class InclusionProof:
    """RFC 6962 audit path of an entry in a Rekor tree of ``tree_size`` leaves, and the signed checkpoint
    (a signed note: origin, size, base64 root hash, blank line, signature lines) that commits to the root."""

    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class TlogEntry:
    """One Rekor entry for this signature (bundle ``tlogEntries[]`` or cosign's bundle annotation).

    ``log_id`` is the log's key id: the SHA-256 of its DER public key. ``integrated_time`` (Unix seconds) and
    ``signed_entry_timestamp`` are Rekor v1's; Rekor v2 entries have neither and rely on ``inclusion_proof``
    and a timestamp authority. ``kind``/``version`` come from the bundle's ``kindVersion`` (for the
    annotation, from the body itself); ``canonicalized_body`` is the entry body exactly as logged (decoded
    from base64).
    """

    log_id: bytes
    log_index: int
    canonicalized_body: bytes
    kind: str
    version: str
    integrated_time: int | None = None
    signed_entry_timestamp: bytes | None = None
    inclusion_proof: InclusionProof | None = None


@dataclass(frozen=True)
class SigningMaterial:
    """One signature with everything needed to decide who made it and when.

    Exactly one of ``certificate_chain`` (leaf first, then any intermediates the signature carried) and
    ``public_key`` (a key the caller already trusts, for key-signed bundles and ``.sig`` layers) is set.
    ``timestamps`` are DER RFC 3161 ``TimeStampResponse`` blobs; Sigstore timestamps the signature bytes,
    cosign's legacy attestations timestamp their payload instead: ``timestamped`` names those bytes when they
    are not ``signature``.
    """

    signature: bytes
    signed: SignedMessage | SignedEnvelope
    certificate_chain: tuple[x509.Certificate, ...] = ()
    public_key: TrustedKey | None = None
    tlog_entries: tuple[TlogEntry, ...] = ()
    timestamps: tuple[bytes, ...] = ()
    timestamped: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if bool(self.certificate_chain) == (self.public_key is not None):
            raise ValueError("signing material needs exactly one of a certificate chain or a public key")

    @property
    def timestamp_message(self) -> bytes:
        """The bytes RFC 3161 timestamps must be over (their message imprint)."""
        return self.signature if self.timestamped is None else self.timestamped
