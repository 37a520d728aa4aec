"""Who may have signed, as cosign's flags say it: shared by ``trustwatch verify`` and ``verify-attestation``.

``--key`` (public keys), ``--cert``/``--cert-chain`` (a certificate of the user's own PKI), or keyless
``--certificate-identity[-regexp]`` + ``--certificate-oidc-issuer[-regexp]`` with the
``--certificate-github-workflow-*`` extensions; trust material (``--trusted-root``, ``--rekor-key``),
``--insecure-ignore-tlog``/``--insecure-ignore-sct`` and ``--signature-repository`` (or cosign's
``COSIGN_REPOSITORY``). Standard library only at import time: the verification core loads when options are
built, so both commands start fast.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from exporter.commands.registry_args import UsageError, read_text_file

if TYPE_CHECKING:
    from exporter.cosign import AttestorSpec, IdentityPolicy, VerificationOptions

# ``--certificate-github-workflow-X`` -> the Fulcio extension it constrains (cosign's flag names).
GITHUB_WORKFLOW_FLAGS = {
    "trigger": "githubWorkflowTrigger",
    "sha": "githubWorkflowSha",
    "name": "githubWorkflowName",
    "repository": "githubWorkflowRepository",
    "ref": "githubWorkflowRef",
}
SIGNATURE_REPOSITORY_ENV = "COSIGN_REPOSITORY"
# Identity fields as the verification core names them in errors -> the flags that set them.
_FLAGS_BY_FIELD = {
    "subjectRegExp": "--certificate-identity-regexp",
    "issuerRegExp": "--certificate-oidc-issuer-regexp",
}


def add_signer_arguments(parser: argparse.ArgumentParser) -> None:
    """The key, certificate and keyless identity flags, trust material and log options."""
    signers = parser.add_argument_group("who signed (one of: --key, --cert/--cert-chain, keyless identity)")
    signers.add_argument(
        "--key",
        metavar="FILE",
        action="append",
        default=[],
        help="PEM public key file (may hold several keys); repeat for several files",
    )
    signers.add_argument(
        "--cert", metavar="FILE", help="PEM certificate the signatures must be made with (your own PKI)"
    )
    signers.add_argument(
        "--cert-chain",
        metavar="FILE",
        help="PEM chain (intermediates, then root) the signing certificate must chain to",
    )
    signers.add_argument(
        "--certificate-identity", metavar="SAN", help="keyless: the certificate's exact identity (SAN)"
    )
    signers.add_argument(
        "--certificate-identity-regexp",
        metavar="REGEXP",
        help="keyless: a regular expression the identity must match (anywhere unless anchored)",
    )
    signers.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="keyless: the exact OIDC issuer of the identity"
    )
    signers.add_argument(
        "--certificate-oidc-issuer-regexp",
        metavar="REGEXP",
        help="keyless: a regular expression the OIDC issuer must match",
    )
    for flag, extension in GITHUB_WORKFLOW_FLAGS.items():
        signers.add_argument(
            f"--certificate-github-workflow-{flag}",
            metavar="VALUE",
            dest=f"github_workflow_{flag}",
            help=f"the certificate's {extension} extension must be exactly VALUE",
        )
    trust = parser.add_argument_group("trust material and logs")
    trust.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, timestamp authorities); "
        "default: the public-good root shipped with trustwatch",
    )
    trust.add_argument(
        "--rekor-key",
        metavar="FILE",
        help="Rekor public key log entries must verify with, instead of the trusted root's logs",
    )
    trust.add_argument(
        "--require-tlog",
        action="store_true",
        help="every signature, even a legacy key-signed one, needs a verified transparency-log entry or "
        "timestamp",
    )
    trust.add_argument(
        "--insecure-ignore-tlog",
        action="store_true",
        help="do not require a transparency-log entry or timestamp (the certificate must then be valid now)",
    )
    trust.add_argument(
        "--insecure-ignore-sct",
        action="store_true",
        help="do not check the certificate's embedded SCT (certificate transparency)",
    )
    parser.add_argument(
        "--signature-repository",
        metavar="REPO",
        default=os.environ.get(SIGNATURE_REPOSITORY_ENV),
        help="registry/path to read signatures from instead of the image's repository "
        f"(default: ${SIGNATURE_REPOSITORY_ENV}, as cosign)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        metavar="N",
        help="how many distinct keys must have signed (default 1)",
    )
    parser.add_argument(
        "--signature-algorithm",
        choices=("sha256", "sha384", "sha512"),
        default="sha256",
        help="hash key signatures were made with (default sha256, as cosign does)",
    )


def _identity(args: argparse.Namespace) -> IdentityPolicy | None:
    """The keyless identity the flags describe (None when no identity flag is given)."""
    from exporter.cosign import IdentityPolicy  # noqa: PLC0415

    extensions = {
        extension: value
        for flag, extension in GITHUB_WORKFLOW_FLAGS.items()
        if (value := getattr(args, f"github_workflow_{flag}")) is not None
    }
    fields = (
        args.certificate_identity,
        args.certificate_identity_regexp,
        args.certificate_oidc_issuer,
        args.certificate_oidc_issuer_regexp,
    )
    if fields == (None,) * 4 and not extensions:
        return None
    return IdentityPolicy(
        subject=args.certificate_identity,
        subject_regexp=args.certificate_identity_regexp,
        issuer=args.certificate_oidc_issuer,
        issuer_regexp=args.certificate_oidc_issuer_regexp,
        extensions=extensions,
    )


def _keyless_identity(args: argparse.Namespace) -> IdentityPolicy:
    """As cosign: keyless verification needs both an identity and an issuer, exact or by regexp."""
    if args.certificate_identity is None and args.certificate_identity_regexp is None:
        raise UsageError(
            "give --key, --cert/--cert-chain, or a keyless identity: --certificate-identity or "
            "--certificate-identity-regexp"
        )
    if args.certificate_oidc_issuer is None and args.certificate_oidc_issuer_regexp is None:
        raise UsageError(
            "keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp"
        )
    identity = _identity(args)
    assert identity is not None
    return identity


def _attestors(args: argparse.Namespace) -> tuple[AttestorSpec, ...]:
    """One key attestor per key (so that ``--count`` counts distinct keys), one certificate attestor, or
    one keyless attestor."""
    from exporter.cosign import (  # noqa: PLC0415
        CertificateAttestor,
        KeyAttestor,
        KeylessAttestor,
        load_public_keys,
    )

    if args.key:
        if args.cert or args.cert_chain or _identity(args) is not None:
            raise UsageError(
                "--key checks key signatures; the --cert, --cert-chain and --certificate-* flags are for "
                "certificate signatures: give one or the other"
            )
        keys = tuple(
            key for path in args.key for key in load_public_keys(read_text_file(path, "key file"), path)
        )
        return tuple(
            KeyAttestor(
                name=key.name,
                keys=(key,),
                hash_algorithm=args.signature_algorithm,
                require_reference=args.require_reference,
            )
            for key in keys
        )
    if args.cert or args.cert_chain:
        identity = _identity(args)
        return (
            CertificateAttestor(
                name=args.cert or args.cert_chain,
                certificate=read_text_file(args.cert, "certificate") if args.cert else None,
                chain=read_text_file(args.cert_chain, "certificate chain") if args.cert_chain else None,
                identities=(identity,) if identity is not None else (),
            ),
        )
    identity = _keyless_identity(args)
    return (KeylessAttestor(name="keyless", identities=(identity,)),)


def _in_flag_terms(message: str) -> str:
    """An attestor error as the command line says it: the flag, not the policy field."""
    for field, flag in _FLAGS_BY_FIELD.items():
        message = message.replace(f"{field}: ", f"{flag}: ")
    return message


def build_verification_options(args: argparse.Namespace) -> VerificationOptions:
    """VerificationOptions from the flags; UsageError (exit 2) for conflicting flags or unusable files."""
    from exporter.cosign import AttestorError, KeyLoadError, VerificationOptions  # noqa: PLC0415
    from exporter.cosign.discovery import parse_signature_repository  # noqa: PLC0415
    from exporter.registry import InvalidReferenceError  # noqa: PLC0415
    from exporter.sigstore import TrustedRootError, load_trusted_root  # noqa: PLC0415
    from exporter.sigstore.keys import load_public_key  # noqa: PLC0415

    if args.require_tlog and args.insecure_ignore_tlog:
        raise UsageError("--require-tlog and --insecure-ignore-tlog contradict each other; give one")
    try:
        attestors = _attestors(args)
        rekor_keys = (
            (load_public_key(read_text_file(args.rekor_key, "Rekor key file"), args.rekor_key),)
            if args.rekor_key
            else ()
        )
        trusted_root = load_trusted_root(args.trusted_root) if args.trusted_root else None
        if args.signature_repository:
            parse_signature_repository(args.signature_repository)
        ignore_tlog = True if args.insecure_ignore_tlog else (False if args.require_tlog else None)
        return VerificationOptions(
            attestors=attestors,
            threshold=args.count,
            trusted_root=trusted_root,
            rekor_keys=rekor_keys,
            ignore_tlog=ignore_tlog,
            ignore_sct=args.insecure_ignore_sct,
            signature_repository=args.signature_repository or None,
        )
    except (KeyLoadError, AttestorError, TrustedRootError) as exc:
        raise UsageError(_in_flag_terms(str(exc))) from None
    except InvalidReferenceError as exc:
        raise UsageError(f"--signature-repository: {exc}") from None
