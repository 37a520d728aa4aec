"""``attestors[]`` and ``attestations[]`` of an ImageValidatingPolicy, parsed into what the signature
pipeline takes: one :class:`exporter.cosign.VerificationOptions` per attestor (a key, certificate or keyless
attestor with its transparency-log, SCT, timestamp and repository settings).

Key material, certificates, identities' regular expressions and trusted roots are checked here, at load: an
attestor that can never verify is a load error naming its field, not a denial of every image later.
"""

from __future__ import annotations

from typing import Literal

from cryptography import x509

from exporter.cosign.attestors import (
    AttestorError,
    AttestorSpec,
    CertificateAttestor,
    KeyAttestor,
    KeylessAttestor,
)
from exporter.cosign.discovery import parse_signature_repository, tag_prefix_problem
from exporter.cosign.options import VerificationOptions
from exporter.ivp.model import Attestation, CosignAttestor
from exporter.policy.fields import FieldError, Fields
from exporter.policy.parse import SIGNATURE_ALGORITHMS, check_public_keys, public_keys_at, rekor_url_at
from exporter.registry.reference import InvalidReferenceError
from exporter.sigstore import IdentityPolicy, TrustedRootError, parse_trusted_root
from exporter.sigstore.keys import HASH_NAMES, HashName, TrustedKey, load_public_keys

NOTARY = "Notary (Notation) signatures are not supported; use a cosign attestor"
COSIGN_UNSUPPORTED = {
    "tuf": "a TUF repository for the trusted root is not supported; give the trusted_root.json in "
    "trustedRoot, or rely on the shipped public-good root",
}
KEY_UNSUPPORTED = {
    "kms": "KMS keys are not supported; put the public key PEM in data",
    "expression": "keys computed by a CEL expression are not supported; put the public key PEM in data",
    "secretRef": "keys in Secrets are not supported for ImageValidatingPolicies; put the PEM in data",
}
SOURCE_UNSUPPORTED = {
    "PullSecrets": "per-source pull secrets are not supported; registry access comes from trustwatch's "
    "registry settings",
}
_SIGNER_KINDS = ("key", "keyless", "certificate")


def _hash_name(algorithm: str) -> HashName:
    return next(name for name in HASH_NAMES if name == algorithm)


def _key(name: str, key: Fields) -> KeyAttestor:
    data = key.string("data")
    algorithm = key.choice("hashAlgorithm", SIGNATURE_ALGORITHMS, default="sha256") or "sha256"
    key.finish(KEY_UNSUPPORTED)
    if data is None:
        raise FieldError(key.at("data"), "is required: the PEM public key signatures must verify with")
    if "-----BEGIN PUBLIC KEY-----" not in data:
        raise FieldError(key.at("data"), "expected a PEM '-----BEGIN PUBLIC KEY-----' block")
    check_public_keys(data, key.at("data"))
    return KeyAttestor(name=name, keys=load_public_keys(data), hash_algorithm=_hash_name(algorithm))


def _keyless(name: str, keyless: Fields) -> KeylessAttestor:
    identities: list[IdentityPolicy] = []
    for item in keyless.objects("identities", required=True):
        identities.append(
            IdentityPolicy(
                subject=item.string("subject"),
                subject_regexp=item.string("subjectRegExp"),
                issuer=item.string("issuer"),
                issuer_regexp=item.string("issuerRegExp"),
                wildcards=True,  # Kyverno matches subject and issuer as wildcard patterns
            )
        )
        item.finish({})
    roots = _certificates(keyless.string("roots"), keyless.at("roots"))
    keyless.finish({})
    return KeylessAttestor(name=name, identities=tuple(identities), roots=roots)


def _string_or_value(fields: Fields, key: str) -> str | None:
    """``cert``/``certChain``: a plain PEM string (older API versions) or ``{value: PEM}``."""
    raw = fields.raw(key)
    if raw is None or isinstance(raw, str):
        return fields.string(key)
    child = fields.child(key)
    assert child is not None
    value = child.string("value")
    child.finish({"expression": "a certificate computed by a CEL expression is not supported; give value"})
    return value


def _certificates(pem: str | None, path: str) -> str | None:
    """``pem`` when it holds PEM certificates that parse, else a load error at ``path``."""
    if pem is None:
        return None
    try:
        if not x509.load_pem_x509_certificates(pem.encode()):
            raise ValueError("no certificate")
    except ValueError as exc:
        raise FieldError(path, f"expected PEM certificates: {exc}") from None
    return pem


def _certificate(name: str, certificate: Fields) -> CertificateAttestor:
    attestor = CertificateAttestor(
        name=name,
        certificate=_certificates(_string_or_value(certificate, "cert"), certificate.at("cert")),
        chain=_certificates(_string_or_value(certificate, "certChain"), certificate.at("certChain")),
    )
    certificate.finish({})
    return attestor


def _options(name: str, cosign: Fields, spec: AttestorSpec) -> VerificationOptions:
    ctlog = cosign.child("ctlog")
    rekor_keys: tuple[TrustedKey, ...] = ()
    rekor_url: str | None = None
    ct_log_keys: tuple[TrustedKey, ...] = ()
    tsa_chains: tuple[str, ...] = ()
    ignore_tlog: bool | None = None
    ignore_sct = False
    if ctlog is not None:
        rekor_url = rekor_url_at(ctlog)  # the Rekor log whose entries count (IVP names it ctlog.url)
        rekor_keys = public_keys_at(ctlog, "rekorPubKey")
        ct_log_keys = public_keys_at(ctlog, "ctLogPubKey")
        chain = ctlog.string("tsaCertChain")
        tsa_chains = (chain,) if chain else ()
        if ctlog.boolean("insecureIgnoreTlog", False):
            ignore_tlog = True
        elif rekor_keys and isinstance(spec, KeyAttestor):
            ignore_tlog = False  # as for ClusterPolicy key attestors: a Rekor key requires the log entry
        ignore_sct = ctlog.boolean("insecureIgnoreSCT", False)
        ctlog.finish({})
    repository, tag_prefix = None, ""
    source = cosign.child("source")
    if source is not None:
        repository, tag_prefix = _source(source)
    trusted_root = None
    root_text = cosign.string("trustedRoot")
    if root_text is not None:
        try:
            trusted_root = parse_trusted_root(root_text.encode(), cosign.at("trustedRoot"))
        except TrustedRootError as exc:
            raise FieldError(cosign.at("trustedRoot"), str(exc)) from None
    return VerificationOptions(
        attestors=(spec,),
        trusted_root=trusted_root,
        rekor_keys=rekor_keys,
        rekor_url=rekor_url,
        ct_log_keys=ct_log_keys,
        tsa_chains=tsa_chains,
        ignore_tlog=ignore_tlog,
        ignore_sct=ignore_sct,
        signature_repository=repository,
        signature_tag_prefix=tag_prefix,
        annotations=tuple(sorted((cosign.string_map("annotations") or {}).items())),
    )


def _source(source: Fields) -> tuple[str | None, str]:
    """``source``: the repository signatures are read from, and cosign's tag prefix; both checked at load."""
    repository = source.string("repository")
    tag_prefix = source.string("tagPrefix") or ""
    source.finish(SOURCE_UNSUPPORTED)
    if repository is not None:
        try:
            parse_signature_repository(repository)
        except InvalidReferenceError as exc:
            raise FieldError(source.at("repository"), str(exc)) from None
    problem = tag_prefix_problem(tag_prefix)
    if problem is not None:
        raise FieldError(source.at("tagPrefix"), problem)
    return repository, tag_prefix


def parse_attestor(fields: Fields, name: str) -> CosignAttestor:
    """One ``attestors[]`` entry (its ``name`` already read and checked). Raises :class:`FieldError`."""
    cosign = fields.child("cosign")
    fields.finish({"notary": NOTARY})
    if cosign is None:
        raise FieldError(fields.at("cosign"), "is required (the only attestor type supported)")
    given = [kind for kind in _SIGNER_KINDS if cosign.raw(kind) is not None]
    if len(given) != 1:
        raise FieldError(cosign.path, "give exactly one of key, keyless and certificate")
    kind: Literal["key", "keyless", "certificate"] = "key"
    try:
        if given == ["key"]:
            spec: AttestorSpec = _key(name, _child(cosign, "key"))
        elif given == ["keyless"]:
            kind = "keyless"
            spec = _keyless(name, _child(cosign, "keyless"))
        else:
            kind = "certificate"
            spec = _certificate(name, _child(cosign, "certificate"))
        options = _options(name, cosign, spec)
    except AttestorError as exc:
        raise FieldError(cosign.at(kind), str(exc).removeprefix(f"{name}: ")) from None
    cosign.finish(COSIGN_UNSUPPORTED)
    return CosignAttestor(name=name, options=options, kind=kind)


def _child(fields: Fields, key: str) -> Fields:
    child = fields.child(key)
    assert child is not None
    return child


def parse_attestation(fields: Fields, name: str) -> Attestation:
    """One ``attestations[]`` entry: ``intoto: {type}`` or ``referrer: {type}``."""
    candidates: tuple[Literal["intoto", "referrer"], ...] = ("intoto", "referrer")
    kinds = [kind for kind in candidates if fields.raw(kind) is not None]
    fields.finish({})
    if len(kinds) != 1:
        raise FieldError(fields.path, "give exactly one of intoto and referrer")
    kind = kinds[0]
    body = _child(fields, kind)
    predicate_type = body.required_string("type")
    body.finish({})
    return Attestation(name=name, predicate_type=predicate_type, kind=kind)
