"""Sigstore in a box: a Fulcio CA, a CT log, Rekor logs (v1 and v2) and a timestamp authority for tests.

Why: keyless verification can only be tested end to end against trust material whose private keys the test
holds, so that it can sign good bundles and every kind of bad one. The box writes a ``trusted_root.json``
exactly as Sigstore's TUF repository ships it, and signs the way Fulcio, the CT log, Rekor and a TSA do, so
that sigstore-python (``tests/support/reference_verifier.py``) accepts the good output.

Typical use::

    box = SigstoreBox()                                   # or the session fixture ``sigstore_box``
    root_path = box.write_trusted_root(tmp_path / "trusted_root.json")
    who = Identity("https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1",
                   GITHUB_ISSUER, github=GitHubWorkflow(repository="org/repo", ref="refs/tags/v1"))
    signed = box.image_bundle(image_digest, who)          # cosign 3 keyless: DSSE, in-toto, Rekor v1 dsse
    signed.json                                           # the bundle's bytes (mediaType ...bundle.v0.3+json)
    layer = box.legacy_signature(image_digest, "127.0.0.1:5000/team/app", who).layer
    registry.push_signature_layers("team/app", image_digest, [layer])   # legacy .sig with cert/chain/bundle

What it signs (``signer`` is an ``Identity`` for keyless, or an EC P-256 private key for key-signed):

- ``message_bundle(artifact, identity)``: bundle v0.3 with a message signature (hashedrekord entry).
- ``dsse_bundle(payload, signer, payload_type=...)``: bundle v0.3 with a DSSE envelope (dsse 0.0.1 entry
  in Rekor v1; hashedrekord 0.0.2 over the PAE in Rekor v2).
- ``image_bundle(image_digest, signer, predicate_type=..., predicate=...)``: the DSSE bundle over an
  in-toto Statement v1 whose subject is the image, as cosign 3 attaches to an image as a referrer;
  key-signed ones carry ``verificationMaterial.publicKey.hint`` instead of a certificate.
- ``legacy_signature(image_digest, docker_reference, signer)``: ``.sig`` layer (simple-signing payload,
  annotations signature, certificate, chain, bundle; rfc3161timestamp with ``timestamp=True``).
- ``legacy_attestation(image_digest, docker_reference, signer, predicate_type=...)``: ``.att`` layer.
- ``SignedBundle.as_version("0.1" | "0.2")``: the same bundle in the older layouts (x509CertificateChain).

Every signing call takes ``log=`` ("rekor-v1": SET + inclusion proof + checkpoint; "rekor-v2": proof +
checkpoint, no SET, no integrated time, bundles only; "none"), ``timestamp=True`` for an RFC 3161 token
over the signature (over the envelope for ``.att``), ``at=`` for the signing time (default: a minute before
``box.now``), and ``faults=Faults(...)`` for the negatives (each one breaks exactly one thing; see
``Faults``). Identity negatives (wrong SAN, issuer, GitHub claims) need no fault: verify against another
identity.
Trust material for verifiers: ``box.trusted_root()`` / ``write_trusted_root(path)``, ``box.fulcio.root``,
``box.chain_pem``, ``box.rekor.public_key`` / ``box.rekor_public_pem``, ``box.ct_log.key``,
``box.tsa.certificate`` and ``box.tsa.root``.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.registry import (
    BUNDLE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    SignatureLayerSpec,
    sign_bytes,
    simple_signing_payload,
)

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_V01 = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
RFC3161_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
PREDICATE_TYPE_ANNOTATION = "predicateType"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# Fulcio's certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw string, deprecated
OID_GITHUB_TRIGGER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.2")  # the five: raw strings, deprecated
OID_GITHUB_SHA = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.3")
OID_GITHUB_NAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.4")
OID_GITHUB_REPOSITORY = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5")
OID_GITHUB_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String, as are all below
OID_BUILD_SIGNER_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.9")
OID_SOURCE_REPOSITORY_URI = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
OID_SOURCE_REPOSITORY_DIGEST = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.13")
OID_SOURCE_REPOSITORY_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.14")
OID_BUILD_TRIGGER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.20")
OID_SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OID_PRECERT_POISON = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.3")
TSA_POLICY = "1.3.6.1.4.1.57264.2"

LogKind = Literal["rekor-v1", "rekor-v2", "none"]
UTC = datetime.UTC


@dataclass(frozen=True)
class GitHubWorkflow:
    """What GitHub's OIDC token says about the workflow run; Fulcio copies it into the certificate."""

    trigger: str = "push"
    sha: str = "2a6b879b7a5ef59d7fb348d0b5d14314538ac0a6"
    name: str = "Release"
    repository: str = "example/app"
    ref: str = "refs/tags/v1.0.0"


@dataclass(frozen=True)
class Identity:
    """A keyless signer: the certificate's SAN (an e-mail, or a URI when it has ``://``) and OIDC issuer.

    ``issuer_oids``: which issuer extensions the certificate carries ("both" as Fulcio does today, "v1" the
    raw-string 1.3.6.1.4.1.57264.1.1 only as in certificates before 2023, "v2" the DER 1.3.6.1.4.1.57264.1.8
    only). ``github``: GitHub workflow extensions, in the old raw encodings (.1.2 to .1.6) and in the new DER
    ones (.1.9, .1.12 to .1.14, .1.20) unless ``issuer_oids`` is "v1" (then old ones only) or "v2".
    """

    san: str
    issuer: str = GITHUB_ISSUER
    github: GitHubWorkflow | None = None
    issuer_oids: Literal["both", "v1", "v2"] = "both"

    @property
    def san_is_uri(self) -> bool:
        return "://" in self.san


@dataclass(frozen=True)
class Faults:
    """Negatives: each flag breaks one thing and leaves everything else correct.

    - ``expired_certificate``: the certificate's 10 minutes ended before the signing time (the log's
      integrated time or the TSA time), though its chain and SCT are fine.
    - ``no_sct``: the certificate carries no embedded SCT.
    - ``untrusted_sct``: the SCT is signed by a CT log key that is not in the trusted root.
    - ``bad_set``: the signed entry timestamp is a valid signature over other data (another log index).
    - ``checkpoint_mismatch``: the inclusion proof is right for the tree it names, but the signed checkpoint
      commits to another tree head (the log grew by one entry).
    - ``tampered_payload``: the DSSE payload (or legacy payload) was changed after signing.
    - ``untrusted_ca``: the certificate comes from a CA that is not in the trusted root.
    - ``body_mismatch``: the log entry records another signature (a valid entry, for other content).
    - ``bad_timestamp``: the RFC 3161 token is genuine but stamps other bytes than this signature.
    """

    expired_certificate: bool = False
    no_sct: bool = False
    untrusted_sct: bool = False
    bad_set: bool = False
    checkpoint_mismatch: bool = False
    tampered_payload: bool = False
    untrusted_ca: bool = False
    body_mismatch: bool = False
    bad_timestamp: bool = False


NO_FAULTS = Faults()


# --- small encoders ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def der_utf8(text: str) -> bytes:
    """DER UTF8String: how Fulcio encodes its newer extensions (1.3.6.1.4.1.57264.1.8 and up)."""
    encoded: bytes = asn1_core.UTF8String(text).dump()
    return encoded


def spki_der(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def key_id(public_key: Any) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (CT logs, Rekor v1 log IDs)."""
    return hashlib.sha256(spki_der(public_key)).digest()


def canonical_json(document: Any) -> bytes:
    """RFC 8785 for the documents signed here (ASCII strings and integers): sorted keys, no spaces."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a DSSE signature covers."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def derived_ec_key(seed: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key derived from a label: the box's keys are the same in every run."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    secret = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(secret, ec.SECP256R1())


def _name(common_name: str, organization: str = "sigstore-box.test") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _serial(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:16], "big") >> 1


def key_usage(*, ca: bool) -> x509.KeyUsage:
    """certSign + cRLSign for a CA, digitalSignature for a signer (Fulcio leaf, TSA)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    eku: x509.ObjectIdentifier | None,
    path_length: int | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(_serial(subject.rfc4514_string()))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


# --- RFC 6962 Merkle tree ---------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (RFC 6962 section 2.1)."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaves: list[bytes]) -> bytes:
    """MTH over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1, from the leaf's sibling upwards."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_path(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), merkle_root(leaves[:k])]


# --- the services -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One entry of a box log, with its proofs: the bundle's ``tlogEntries[0]`` and the legacy bundle."""

    kind: str
    version: str
    body: bytes
    log_index: int
    log_id: bytes
    integrated_time: int | None
    signed_entry_timestamp: bytes | None
    root_hash: bytes
    tree_size: int
    hashes: list[bytes]
    checkpoint: str

    def bundle_json(self) -> dict[str, Any]:
        """The protobuf-specs ``TransparencyLogEntry`` JSON (int64 fields as strings, bytes as base64)."""
        entry: dict[str, Any] = {
            "logIndex": str(self.log_index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
        }
        if self.integrated_time is not None:
            entry["integratedTime"] = str(self.integrated_time)
        if self.signed_entry_timestamp is not None:
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64(self.signed_entry_timestamp)}
        entry["inclusionProof"] = {
            "logIndex": str(self.log_index),
            "rootHash": b64(self.root_hash),
            "treeSize": str(self.tree_size),
            "hashes": [b64(h) for h in self.hashes],
            "checkpoint": {"envelope": self.checkpoint},
        }
        entry["canonicalizedBody"] = b64(self.body)
        return entry

    def legacy_bundle(self) -> str:
        """cosign's ``dev.sigstore.cosign/bundle`` annotation (Rekor v1 only: needs the SET)."""
        if self.signed_entry_timestamp is None or self.integrated_time is None:
            raise ValueError("a legacy cosign bundle needs a Rekor v1 entry (SET and integrated time)")
        document = {
            "SignedEntryTimestamp": b64(self.signed_entry_timestamp),
            "Payload": {
                "body": b64(self.body),
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": self.log_id.hex(),
            },
        }
        return json.dumps(document, separators=(",", ":"))


class TransparencyLog:
    """An in-memory Rekor: RFC 6962 tree, SETs over canonical JSON (v1), signed-note checkpoints.

    Rekor v1 signs with ECDSA P-256; its log ID is the key's RFC 6962 key ID, and its checkpoint signature
    lines start with the log ID's first four bytes. Rekor v2 signs checkpoints with Ed25519 as a C2SP signed
    note: the key hash is SHA-256(name || 0x0A || 0x01 || public key), which is also its log ID.
    """

    FILLER_ENTRIES = 6  # other people's entries, so that proofs have several levels

    def __init__(self, version: Literal[1, 2], *, seed: str, name: str, base_url: str) -> None:
        self.version = version
        self.name = name
        self.base_url = base_url
        self.leaves: list[bytes] = []
        if version == 1:
            self.key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = derived_ec_key(seed)
            self.log_id = key_id(self.key.public_key())
            self.origin = f"{name} - {int.from_bytes(self.log_id[:7], 'big')}"
        else:
            self.key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
            raw = self.key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.log_id = hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()
            self.origin = name
        for i in range(self.FILLER_ENTRIES):
            self.leaves.append(leaf_hash(b"filler entry %d of %s" % (i, name.encode())))

    @property
    def public_key(self) -> Any:
        return self.key.public_key()

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data)

    def checkpoint(self, size: int, root: bytes) -> str:
        note = f"{self.origin}\n{size}\n{b64(root)}\n"
        signature = self.log_id[:4] + self._sign(note.encode())
        return f"{note}\n\u2014 {self.name} {b64(signature)}\n"

    def set_payload(self, body: bytes, integrated_time: int, log_index: int) -> bytes:
        """What a Rekor v1 SET signs: canonical JSON of body, integratedTime, logID (hex), logIndex."""
        return canonical_json(
            {
                "body": b64(body),
                "integratedTime": integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": log_index,
            }
        )

    def append(
        self, kind: str, version: str, body: bytes, integrated_time: datetime.datetime, faults: Faults
    ) -> LogEntry:
        index = len(self.leaves)
        self.leaves.append(leaf_hash(body))
        leaves = list(self.leaves)
        root = merkle_root(leaves)
        checkpoint = self.checkpoint(len(leaves), root)
        if faults.checkpoint_mismatch:
            grown = [*leaves, leaf_hash(b"an entry appended after the proof")]
            checkpoint = self.checkpoint(len(grown), merkle_root(grown))
        time_value: int | None = None
        set_signature: bytes | None = None
        if self.version == 1:
            time_value = int(integrated_time.timestamp())
            signed_index = index + 1 if faults.bad_set else index
            set_signature = self._sign(self.set_payload(body, time_value, signed_index))
        return LogEntry(
            kind=kind,
            version=version,
            body=body,
            log_index=index,
            log_id=self.log_id,
            integrated_time=time_value,
            signed_entry_timestamp=set_signature,
            root_hash=root,
            tree_size=len(leaves),
            hashes=inclusion_path(index, leaves),
            checkpoint=checkpoint,
        )

    def trusted_root_entry(self, valid_from: datetime.datetime) -> dict[str, Any]:
        details = "PKIX_ECDSA_P256_SHA_256" if self.version == 1 else "PKIX_ED25519"
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(spki_der(self.public_key)),
                "keyDetails": details,
                "validFor": {"start": rfc3339(valid_from)},
            },
            "logId": {"keyId": b64(self.log_id)},
        }


class CertificateTransparencyLog:
    """A CT log that issues SCTs for precertificates (RFC 6962 section 3.2), embedded by the CA."""

    def __init__(self, seed: str, base_url: str) -> None:
        self.key = derived_ec_key(seed)
        self.log_id = key_id(self.key.public_key())
        self.base_url = base_url

    def sct(self, tbs_precertificate: bytes, issuer_key_hash: bytes, timestamp: datetime.datetime) -> bytes:
        """One TLS-encoded SignedCertificateTimestamp over a precertificate entry."""
        millis = int(timestamp.timestamp() * 1000)
        extensions = b""
        signed = (
            struct.pack("!BBQH", 0, 0, millis, 1)  # v1, certificate_timestamp, timestamp, precert_entry
            + issuer_key_hash
            + len(tbs_precertificate).to_bytes(3, "big")
            + tbs_precertificate
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + self.log_id
            + struct.pack("!Q", millis)
            + struct.pack("!H", len(extensions))
            + extensions
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )

    def trusted_root_entry(self, valid_from: datetime.datetime) -> dict[str, Any]:
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(spki_der(self.key.public_key())),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": rfc3339(valid_from)},
            },
            "logId": {"keyId": b64(self.log_id)},
        }


def tbs_without_poison(precertificate: x509.Certificate) -> bytes:
    """The precertificate's DER TBSCertificate minus its poison extension: what a CT log signs."""
    tbs = asn1_x509.Certificate.load(precertificate.public_bytes(serialization.Encoding.DER))[
        "tbs_certificate"
    ]
    kept = [ext for ext in tbs["extensions"] if ext["extn_id"].dotted != OID_PRECERT_POISON.dotted_string]
    tbs["extensions"] = asn1_x509.Extensions(kept)
    der: bytes = tbs.dump(force=True)
    return der


def sct_list_extension(scts: list[bytes]) -> x509.UnrecognizedExtension:
    """The X.509 extension holding a TLS SignedCertificateTimestampList, wrapped in an OCTET STRING."""
    body = b"".join(struct.pack("!H", len(sct)) + sct for sct in scts)
    tls_list = struct.pack("!H", len(body)) + body
    return x509.UnrecognizedExtension(OID_SCT_LIST, asn1_core.OctetString(tls_list).dump())


class CertificateAuthority:
    """A Fulcio: root and intermediate, issuing 10-minute code-signing certificates with embedded SCTs."""

    def __init__(self, seed: str, not_before: datetime.datetime, base_url: str) -> None:
        self.base_url = base_url
        self.not_before = not_before
        self.root_key = derived_ec_key(seed + " root")
        self.intermediate_key = derived_ec_key(seed + " intermediate")
        not_after = not_before + datetime.timedelta(days=3650)
        self.root = _ca_certificate(
            _name(f"{seed} root"),
            self.root_key,
            issuer=None,
            issuer_key=self.root_key,
            not_before=not_before,
            not_after=not_after,
            eku=None,
            path_length=1,
        )
        self.intermediate = _ca_certificate(
            _name(f"{seed} intermediate"),
            self.intermediate_key,
            issuer=self.root,
            issuer_key=self.root_key,
            not_before=not_before,
            not_after=not_after,
            eku=ExtendedKeyUsageOID.CODE_SIGNING,
            path_length=0,
        )

    @property
    def chain(self) -> list[x509.Certificate]:
        """Intermediate first, root last: the order of ``certChain`` and cosign's chain annotation."""
        return [self.intermediate, self.root]

    def issue(
        self,
        identity: Identity,
        public_key: ec.EllipticCurvePublicKey,
        not_before: datetime.datetime,
        ct_log: CertificateTransparencyLog | None,
    ) -> x509.Certificate:
        """A Fulcio-profile leaf; with ``ct_log``, the precertificate flow embeds that log's SCT."""
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity.san)
            if identity.san_is_uri
            else x509.RFC822Name(identity.san)
        )
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_before + datetime.timedelta(minutes=10))
            .add_extension(
                key_usage(ca=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        )
        for oid, value in fulcio_extensions(identity):
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
        if ct_log is None:
            return builder.sign(self.intermediate_key, hashes.SHA256())
        # RFC 6962 precertificate flow: the CA signs a precertificate (the final TBSCertificate with a
        # critical poison extension where the SCT list will go); the log signs that TBSCertificate with
        # the poison removed, bound to the issuer's key hash; the CA then issues the final certificate
        # with the SCT list in the poison's place.
        precertificate = builder.add_extension(x509.PrecertPoison(), critical=True).sign(
            self.intermediate_key, hashes.SHA256()
        )
        tbs = tbs_without_poison(precertificate)
        sct = ct_log.sct(tbs, key_id(self.intermediate_key.public_key()), not_before)
        final = builder.add_extension(sct_list_extension([sct]), critical=False).sign(
            self.intermediate_key, hashes.SHA256()
        )
        if final.tbs_precertificate_bytes != tbs:
            raise AssertionError("the SCT was signed over another TBSCertificate than the final one")
        return final

    def trusted_root_entry(self) -> dict[str, Any]:
        return {
            "subject": {"organization": "sigstore-box.test", "commonName": "sigstore-box"},
            "uri": self.base_url,
            "certChain": {
                "certificates": [
                    {"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))} for c in self.chain
                ]
            },
            "validFor": {"start": rfc3339(self.not_before)},
        }


def fulcio_extensions(identity: Identity) -> list[tuple[x509.ObjectIdentifier, bytes]]:
    """The identity extensions Fulcio writes, in the encodings ``identity.issuer_oids`` asks for."""
    old = identity.issuer_oids in ("both", "v1")
    new = identity.issuer_oids in ("both", "v2")
    found: list[tuple[x509.ObjectIdentifier, bytes]] = []
    if old:
        found.append((OID_ISSUER_V1, identity.issuer.encode()))
    gh = identity.github
    if gh is not None and old:
        found += [
            (OID_GITHUB_TRIGGER, gh.trigger.encode()),
            (OID_GITHUB_SHA, gh.sha.encode()),
            (OID_GITHUB_NAME, gh.name.encode()),
            (OID_GITHUB_REPOSITORY, gh.repository.encode()),
            (OID_GITHUB_REF, gh.ref.encode()),
        ]
    if new:
        found.append((OID_ISSUER_V2, der_utf8(identity.issuer)))
    if gh is not None and new:
        found += [
            (OID_BUILD_SIGNER_URI, der_utf8(identity.san)),
            (OID_SOURCE_REPOSITORY_URI, der_utf8(f"https://github.com/{gh.repository}")),
            (OID_SOURCE_REPOSITORY_DIGEST, der_utf8(gh.sha)),
            (OID_SOURCE_REPOSITORY_REF, der_utf8(gh.ref)),
            (OID_BUILD_TRIGGER, der_utf8(gh.trigger)),
        ]
    return found


class TimestampAuthority:
    """An RFC 3161 TSA (root + leaf with the critical timeStamping EKU) answering with signed tokens."""

    def __init__(self, seed: str, not_before: datetime.datetime, base_url: str) -> None:
        self.base_url = base_url
        self.not_before = not_before
        self.root_key = derived_ec_key(seed + " root")
        self.key = derived_ec_key(seed + " leaf")
        not_after = not_before + datetime.timedelta(days=3650)
        self.root = _ca_certificate(
            _name(f"{seed} root"),
            self.root_key,
            issuer=None,
            issuer_key=self.root_key,
            not_before=not_before,
            not_after=not_after,
            eku=None,
            path_length=0,
        )
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{seed} leaf"))
            .issuer_name(self.root.subject)
            .public_key(self.key.public_key())
            .serial_number(_serial(seed + " leaf"))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                key_usage(ca=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()), critical=False
            )
            .sign(self.root_key, hashes.SHA256())
        )
        self._serial = 0

    def timestamp(self, message: bytes, at: datetime.datetime) -> bytes:
        """A DER TimeStampResp granting a token over SHA-256(``message``) at time ``at``."""
        self._serial += 1
        tst_info = asn1_tsp.TSTInfo(
            {
                "version": "v1",
                "policy": TSA_POLICY,
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": hashlib.sha256(message).digest(),
                },
                "serial_number": self._serial,
                "gen_time": at.astimezone(UTC).replace(microsecond=0),
                "accuracy": {"seconds": 1},
                "ordering": False,
                "nonce": int.from_bytes(hashlib.sha256(message).digest()[:8], "big"),
            }
        )
        tst_der = tst_info.dump()
        leaf_der = self.certificate.public_bytes(serialization.Encoding.DER)
        root_der = self.root.public_bytes(serialization.Encoding.DER)
        signed_attrs = asn1_cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}]}],
                },
            ]
        )
        signature = self.key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        leaf_asn1 = asn1_x509.Certificate.load(leaf_der)
        signer = asn1_cms.SignerInfo(
            {
                "version": "v1",
                "sid": asn1_cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": leaf_asn1.issuer,
                            "serial_number": leaf_asn1.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": asn1_algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed_data = asn1_cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [{"algorithm": "sha256"}],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": asn1_core.ParsableOctetString(tst_der),
                },
                "certificates": [leaf_asn1, asn1_x509.Certificate.load(root_der)],
                "signer_infos": [signer],
            }
        )
        response = asn1_tsp.TimeStampResp(
            {
                "status": {"status": "granted"},
                "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
            }
        )
        der: bytes = response.dump()
        return der

    def trusted_root_entry(self) -> dict[str, Any]:
        return {
            "subject": {"organization": "sigstore-box.test", "commonName": "sigstore-box-tsa"},
            "uri": self.base_url,
            "certChain": {
                "certificates": [
                    {"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                    for c in (self.certificate, self.root)
                ]
            },
            "validFor": {"start": rfc3339(self.not_before)},
        }


# --- what signing produces ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedBundle:
    """A Sigstore bundle v0.3 as the box signed it, with what a test needs to know about it."""

    document: dict[str, Any]
    certificate: x509.Certificate | None
    signing_time: datetime.datetime
    log_entry: LogEntry | None
    timestamp: bytes | None

    @property
    def json(self) -> bytes:
        return json.dumps(self.document, indent=None, separators=(",", ":")).encode()

    @property
    def media_type(self) -> str:
        media_type: str = self.document["mediaType"]
        return media_type

    def as_version(self, version: Literal["0.1", "0.2"]) -> SignedBundle:
        """The same signature in an older bundle layout: media type ``...bundle+json;version=0.N`` and the
        leaf in ``x509CertificateChain`` instead of ``certificate`` (what sigstore clients wrote before
        v0.3)."""
        material = dict(self.document["verificationMaterial"])
        if "certificate" in material:
            material["x509CertificateChain"] = {"certificates": [material.pop("certificate")]}
        document = {
            **self.document,
            "mediaType": f"application/vnd.dev.sigstore.bundle+json;version={version}",
            "verificationMaterial": material,
        }
        return replace(self, document=document)


@dataclass(frozen=True)
class LegacySignature:
    """A legacy cosign ``.sig`` layer (simple-signing payload + annotations) and its parts."""

    layer: SignatureLayerSpec
    payload: bytes
    signature: bytes
    certificate: x509.Certificate | None
    log_entry: LogEntry | None

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.layer.annotations


# --- the box -----------------------------------------------------------------------------------------


class SigstoreBox:
    """A whole Sigstore deployment whose private keys the tests hold.

    ``seed`` names the deployment: two boxes with different seeds trust nothing of each other (a
    signature from one is "signed by an unknown CA / log" for the other); the same seed gives the same
    keys and CA certificates, run after run. ``now`` fixes the box's clock (default: the current second);
    the trust material is valid from 30 days before it, signatures are made a minute before it.
    """

    def __init__(self, seed: str = "sigstore-box", now: datetime.datetime | None = None) -> None:
        self.seed = seed
        self.now = (now or datetime.datetime.now(UTC)).replace(microsecond=0)
        self.valid_from = self.now - datetime.timedelta(days=30)
        self.fulcio = CertificateAuthority(f"{seed} fulcio", self.valid_from, "https://fulcio.box.test")
        self.ct_log = CertificateTransparencyLog(f"{seed} ctlog", "https://ctfe.box.test")
        self.rekor = TransparencyLog(
            1, seed=f"{seed} rekor", name="rekor.box.test", base_url="https://rekor.box.test"
        )
        self.rekor_v2 = TransparencyLog(
            2,
            seed=f"{seed} rekor v2",
            name="log2025-1.rekor.box.test",
            base_url="https://log2025-1.rekor.box.test",
        )
        self.tsa = TimestampAuthority(f"{seed} tsa", self.valid_from, "https://tsa.box.test/api/v1/timestamp")

    @functools.cached_property
    def _rogue(self) -> SigstoreBox:
        """Another deployment, trusted by nobody: source of untrusted CAs and CT logs."""
        return SigstoreBox(seed=f"{self.seed} rogue", now=self.now)

    # trust material

    def trusted_root(self) -> dict[str, Any]:
        """Sigstore's ``trusted_root.json`` (media type ``...trustedroot+json;version=0.1``) for this box."""
        return {
            "mediaType": TRUSTED_ROOT_V01,
            "tlogs": [
                self.rekor.trusted_root_entry(self.valid_from),
                self.rekor_v2.trusted_root_entry(self.valid_from),
            ],
            "certificateAuthorities": [self.fulcio.trusted_root_entry()],
            "ctlogs": [self.ct_log.trusted_root_entry(self.valid_from)],
            "timestampAuthorities": [self.tsa.trusted_root_entry()],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    @property
    def chain_pem(self) -> str:
        """Fulcio's intermediate then root, PEM: cosign's ``dev.sigstore.cosign/chain`` annotation."""
        return "".join(pem(c) for c in self.fulcio.chain)

    @property
    def rekor_public_pem(self) -> str:
        return (
            serialization.load_der_public_key(spki_der(self.rekor.public_key))
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    # building blocks

    def signing_time(self, at: datetime.datetime | None) -> datetime.datetime:
        return (at or self.now - datetime.timedelta(minutes=1)).astimezone(UTC).replace(microsecond=0)

    def certificate(
        self,
        identity: Identity,
        key: ec.EllipticCurvePrivateKey,
        at: datetime.datetime,
        faults: Faults = NO_FAULTS,
    ) -> x509.Certificate:
        """A Fulcio certificate for ``key`` that is valid at ``at`` (or expired, per ``faults``)."""
        not_before = at - datetime.timedelta(minutes=1)
        if faults.expired_certificate:
            not_before = at - datetime.timedelta(minutes=20)
        ca = self._rogue.fulcio if faults.untrusted_ca else self.fulcio
        ct_log: CertificateTransparencyLog | None = (
            self._rogue.ct_log if faults.untrusted_sct else self.ct_log
        )
        if faults.no_sct:
            ct_log = None
        return ca.issue(identity, key.public_key(), not_before, ct_log)

    def _log(
        self, log: LogKind, kind: str, body: dict[str, Any], at: datetime.datetime, faults: Faults
    ) -> LogEntry | None:
        if log == "none":
            return None
        target = self.rekor if log == "rekor-v1" else self.rekor_v2
        version = body["apiVersion"]
        return target.append(kind, version, canonical_json(body), at, faults)

    @staticmethod
    def _verifier(certificate: x509.Certificate | None, public_key: Any) -> tuple[str, dict[str, Any]]:
        """(v1 PEM base64, v2 verifier JSON) for the certificate, or for a bare key."""
        if certificate is not None:
            v1 = b64(certificate.public_bytes(serialization.Encoding.PEM))
            v2: dict[str, Any] = {
                "x509Certificate": {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))}
            }
        else:
            v1 = b64(
                public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            v2 = {"publicKey": {"rawBytes": b64(spki_der(public_key))}}
        v2["keyDetails"] = "PKIX_ECDSA_P256_SHA_256"
        return v1, v2

    def _hashedrekord(
        self,
        log: LogKind,
        digest: bytes,
        signature: bytes,
        certificate: x509.Certificate | None,
        public_key: Any,
    ) -> dict[str, Any]:
        v1_verifier, v2_verifier = self._verifier(certificate, public_key)
        if log == "rekor-v2":
            return {
                "apiVersion": "0.0.2",
                "kind": "hashedrekord",
                "spec": {
                    "hashedRekordV002": {
                        "data": {"algorithm": "SHA2_256", "digest": b64(digest)},
                        "signature": {"content": b64(signature), "verifier": v2_verifier},
                    }
                },
            }
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": b64(signature), "publicKey": {"content": v1_verifier}},
            },
        }

    def _dsse_entry(
        self, log: LogKind, envelope: dict[str, Any], certificate: x509.Certificate | None, public_key: Any
    ) -> tuple[str, dict[str, Any]]:
        payload = base64.b64decode(envelope["payload"])
        signature = base64.b64decode(envelope["signatures"][0]["sig"])
        if log == "rekor-v2":  # Rekor v2 logs DSSE as a hashedrekord over the PAE
            pae_digest = hashlib.sha256(pae(envelope["payloadType"], payload)).digest()
            return "hashedrekord", self._hashedrekord(log, pae_digest, signature, certificate, public_key)
        v1_verifier, _ = self._verifier(certificate, public_key)
        return "dsse", {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(canonical_json(envelope)).hexdigest(),
                },
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": b64(signature), "verifier": v1_verifier}],
            },
        }

    def _timestamp(self, signature: bytes, at: datetime.datetime, faults: Faults) -> bytes:
        """The TSA's token over the signature bytes (what Sigstore clients timestamp)."""
        return self.tsa.timestamp(b"other bytes" if faults.bad_timestamp else signature, at)

    def _bundle(
        self,
        content: dict[str, Any],
        signature: bytes,
        *,
        certificate: x509.Certificate | None,
        public_key: Any,
        entry: LogEntry | None,
        timestamp: bool,
        at: datetime.datetime,
        faults: Faults,
    ) -> SignedBundle:
        material: dict[str, Any] = {}
        if certificate is not None:
            material["certificate"] = {"rawBytes": b64(certificate.public_bytes(serialization.Encoding.DER))}
        else:  # cosign 3 key-signed bundles: a hint (base64 SHA-256 of the DER public key), not the key
            material["publicKey"] = {"hint": b64(hashlib.sha256(spki_der(public_key)).digest())}
        material["tlogEntries"] = [entry.bundle_json()] if entry is not None else []
        token = self._timestamp(signature, at, faults) if timestamp else None
        if token is not None:
            material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": b64(token)}]}
        document = {"mediaType": BUNDLE_V03, "verificationMaterial": material, **content}
        return SignedBundle(document, certificate, at, entry, token)

    # signing

    def message_bundle(
        self,
        artifact: bytes,
        identity: Identity,
        *,
        log: LogKind = "rekor-v1",
        timestamp: bool = False,
        at: datetime.datetime | None = None,
        faults: Faults = NO_FAULTS,
    ) -> SignedBundle:
        """Keyless ``sign-blob``: a message signature over SHA-256(``artifact``), logged as hashedrekord."""
        when = self.signing_time(at)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self.certificate(identity, key, when, faults)
        digest = hashlib.sha256(artifact).digest()
        signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
        logged_signature = (
            key.sign(b"other content", ec.ECDSA(hashes.SHA256())) if faults.body_mismatch else signature
        )
        entry = self._log(
            log,
            "hashedrekord",
            self._hashedrekord(log, digest, logged_signature, certificate, None),
            when,
            faults,
        )
        content = {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            }
        }
        return self._bundle(
            content,
            signature,
            certificate=certificate,
            public_key=key.public_key(),
            entry=entry,
            timestamp=timestamp,
            at=when,
            faults=faults,
        )

    def dsse_bundle(
        self,
        payload: bytes,
        signer: Identity | ec.EllipticCurvePrivateKey,
        *,
        payload_type: str = IN_TOTO_PAYLOAD_TYPE,
        log: LogKind = "rekor-v1",
        timestamp: bool = False,
        at: datetime.datetime | None = None,
        faults: Faults = NO_FAULTS,
    ) -> SignedBundle:
        """A DSSE envelope over ``payload``: keyless for an ``Identity``, key-signed for a private key."""
        when = self.signing_time(at)
        key, certificate = self._signing_key(signer, when, faults)
        signature = key.sign(pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature)}],
        }
        logged = envelope
        if faults.body_mismatch:
            other = key.sign(pae(payload_type, payload + b" "), ec.ECDSA(hashes.SHA256()))
            logged = {**envelope, "signatures": [{"sig": b64(other)}]}
        kind, body = self._dsse_entry(log, logged, certificate, key.public_key())
        entry = self._log(log, kind, body, when, faults)
        if faults.tampered_payload:
            envelope = {**envelope, "payload": b64(tamper(payload))}
        return self._bundle(
            {"dsseEnvelope": envelope},
            signature,
            certificate=certificate,
            public_key=key.public_key(),
            entry=entry,
            timestamp=timestamp,
            at=when,
            faults=faults,
        )

    def image_bundle(
        self,
        image_digest: str,
        signer: Identity | ec.EllipticCurvePrivateKey,
        *,
        predicate_type: str = COSIGN_SIGN_PREDICATE,
        predicate: Mapping[str, Any] | None = None,
        log: LogKind = "rekor-v1",
        timestamp: bool = False,
        at: datetime.datetime | None = None,
        faults: Faults = NO_FAULTS,
    ) -> SignedBundle:
        """What ``cosign sign`` (3.x) or ``cosign attest --new-bundle-format`` attaches as a referrer: a DSSE
        in-toto statement about ``image_digest`` (subject of another image: pass that image's digest)."""
        return self.dsse_bundle(
            in_toto_statement(image_digest, predicate_type, predicate),
            signer,
            log=log,
            timestamp=timestamp,
            at=at,
            faults=faults,
        )

    def legacy_signature(
        self,
        image_digest: str,
        docker_reference: str,
        signer: Identity | ec.EllipticCurvePrivateKey,
        *,
        log: LogKind = "rekor-v1",
        timestamp: bool = False,
        at: datetime.datetime | None = None,
        faults: Faults = NO_FAULTS,
        optional: Mapping[str, Any] | None = None,
    ) -> LegacySignature:
        """A legacy cosign ``.sig`` layer: simple-signing payload and the annotations cosign 2 writes.

        Keyless: signature, certificate, chain and (Rekor v1) the SET bundle of a hashedrekord entry;
        key-signed: signature and bundle. ``timestamp=True`` adds the ``dev.sigstore.cosign/rfc3161timestamp``
        annotation (a token over the raw signature bytes, as ``cosign sign --timestamp-server-url`` makes).
        """
        when = self.signing_time(at)
        key, certificate = self._signing_key(signer, when, faults)
        payload = simple_signing_payload(image_digest, docker_reference, optional)
        signature = sign_bytes(key, payload)
        logged_signature = sign_bytes(key, payload + b" ") if faults.body_mismatch else signature
        body = self._hashedrekord(
            log, hashlib.sha256(payload).digest(), logged_signature, certificate, key.public_key()
        )
        layer_blob = tamper(payload) if faults.tampered_payload else payload
        return self._legacy_layer(
            SIMPLE_SIGNING,
            layer_blob,
            signature,
            {SIGNATURE_ANNOTATION: b64(signature)},
            certificate=certificate,
            entry=self._legacy_log(log, "hashedrekord", body, when, faults),
            timestamp=self._timestamp(signature, when, faults) if timestamp else None,
        )

    def legacy_attestation(
        self,
        image_digest: str,
        docker_reference: str,
        signer: Identity | ec.EllipticCurvePrivateKey,
        *,
        predicate_type: str = SLSA_PROVENANCE_V02,
        predicate: Mapping[str, Any] | None = None,
        log: LogKind = "rekor-v1",
        timestamp: bool = False,
        at: datetime.datetime | None = None,
        faults: Faults = NO_FAULTS,
    ) -> LegacySignature:
        """A legacy cosign ``.att`` layer (``cosign attest`` before 3.0): a DSSE envelope over an in-toto
        Statement v0.1 about ``image_digest``, with an empty signature annotation, the predicateType
        annotation, certificate, chain and the SET bundle of an ``intoto`` 0.0.2 Rekor entry (which records
        the envelope's and the payload's SHA-256). ``timestamp=True``: a token over the layer blob.
        """
        when = self.signing_time(at)
        key, certificate = self._signing_key(signer, when, faults)
        payload = in_toto_statement(
            image_digest, predicate_type, predicate or {}, subject_name=docker_reference, version="v0.1"
        )
        signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
        envelope = {
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(signature)}],
        }
        blob = json.dumps(envelope, separators=(",", ":")).encode()
        logged_signature = signature
        if faults.body_mismatch:
            logged_signature = key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload + b" "), ec.ECDSA(hashes.SHA256()))
        v1_verifier, _ = self._verifier(certificate, key.public_key())
        # Rekor keeps the signature base64-encoded twice, and drops the payload.
        logged = {"publicKey": v1_verifier, "sig": b64(b64(logged_signature).encode())}
        body = {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "envelope": {"payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": [logged]},
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(blob).hexdigest()},
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                }
            },
        }
        if faults.tampered_payload:
            blob = json.dumps({**envelope, "payload": b64(tamper(payload))}, separators=(",", ":")).encode()
        return self._legacy_layer(
            DSSE_ENVELOPE,
            blob,
            signature,
            {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type},
            certificate=certificate,
            entry=self._legacy_log(log, "intoto", body, when, faults),
            timestamp=self._timestamp(blob, when, faults) if timestamp else None,
        )

    def _signing_key(
        self, signer: Identity | ec.EllipticCurvePrivateKey, at: datetime.datetime, faults: Faults
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate | None]:
        """The key that signs: a fresh one with a Fulcio certificate for an identity, else the given key."""
        if isinstance(signer, Identity):
            key = ec.generate_private_key(ec.SECP256R1())
            return key, self.certificate(signer, key, at, faults)
        return signer, None

    def _legacy_log(
        self, log: LogKind, kind: str, body: dict[str, Any], at: datetime.datetime, faults: Faults
    ) -> LogEntry | None:
        if log == "rekor-v2":
            raise ValueError("the legacy .sig/.att layouts have no place for Rekor v2 entries")
        return self._log(log, kind, body, at, faults)

    def _legacy_layer(
        self,
        media_type: str,
        blob: bytes,
        signature: bytes,
        annotations: dict[str, str],
        *,
        certificate: x509.Certificate | None,
        entry: LogEntry | None,
        timestamp: bytes | None,
    ) -> LegacySignature:
        if certificate is not None:
            annotations[CERTIFICATE_ANNOTATION] = pem(certificate)
            annotations[CHAIN_ANNOTATION] = self.chain_pem
        if entry is not None:
            annotations[BUNDLE_ANNOTATION] = entry.legacy_bundle()
        if timestamp is not None:
            annotations[RFC3161_ANNOTATION] = json.dumps({"SignedRFC3161Timestamp": b64(timestamp)})
        layer = SignatureLayerSpec(blob, annotations, media_type)
        return LegacySignature(layer, blob, signature, certificate, entry)


def tamper(payload: bytes) -> bytes:
    """The same document with one more space: a change a signature must catch."""
    return payload[:-1] + b" " + payload[-1:]


def in_toto_statement(
    image_digest: str,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
    predicate: Mapping[str, Any] | None = None,
    *,
    subject_name: str | None = None,
    version: Literal["v1", "v0.1"] = "v1",
) -> bytes:
    """An in-toto Statement about one image, compact as cosign writes it (v0.1 with the image's name
    as the subject name for legacy ``.att`` layers, v1 for bundles)."""
    algorithm, _, hex_digest = image_digest.partition(":")
    subject: dict[str, Any] = {"digest": {algorithm: hex_digest}}
    if subject_name is not None:
        subject = {"name": subject_name, **subject}
    statement: dict[str, Any] = {
        "_type": f"https://in-toto.io/Statement/{version}",
        "subject": [subject],
        "predicateType": predicate_type,
    }
    if predicate is not None:
        statement["predicate"] = dict(predicate)
    return json.dumps(statement, separators=(",", ":")).encode()


@functools.cache
def shared_box() -> SigstoreBox:
    """One box per test process (minting is cheap, but its logs are meant to grow across tests)."""
    return SigstoreBox()
