"""`trustwatch verify IMAGE --key FILE`: check an image's cosign signatures from the command line.

Exit codes: 0 verified, 1 not verified (unsigned or invalid), 2 error (bad arguments, unreadable key or
config, registry unreachable). Heavy imports stay inside run() so the command starts fast and never loads
the kubernetes client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from exporter.commands.registry_args import (
    UsageError,
    add_registry_arguments,
    build_registry_options,
    read_text_file,
)

if TYPE_CHECKING:
    from exporter.cosign import VerificationOptions, VerificationOutcome, VerifiedSignature
    from exporter.registry import ImageReference, RegistryOptions

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1
EXIT_ERROR = 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="verify an image's cosign signatures against public keys",
        description="Verify the cosign key-based signatures of IMAGE. Exit 0 verified, 1 not verified "
        "(unsigned or invalid signatures), 2 error (bad arguments, unreadable key, registry unreachable).",
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="image reference, e.g. ghcr.io/org/app:1.0 or …@sha256:…"
    )
    parser.add_argument(
        "--key",
        metavar="FILE",
        action="append",
        required=True,
        help="PEM public key file (may hold several keys); repeat for several files",
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
        help="hash the signatures were made with (default sha256, as cosign does)",
    )
    parser.add_argument(
        "--rekor-key", metavar="FILE", help="Rekor public key to check signature bundles with"
    )
    parser.add_argument(
        "--require-tlog",
        action="store_true",
        help="a signature counts only with a Rekor bundle that verifies (needs --rekor-key)",
    )
    parser.add_argument(
        "--require-reference",
        action="store_true",
        help="also require the signed docker-reference to name IMAGE's repository",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="result format")
    add_registry_arguments(parser, "give up after S seconds of registry traffic")
    parser.set_defaults(run=run)


def _verify_options(args: argparse.Namespace) -> VerificationOptions:
    """One key attestor per key, so that ``--count`` counts distinct keys."""
    from exporter.cosign import (  # noqa: PLC0415
        AttestorError,
        KeyAttestor,
        KeyLoadError,
        VerificationOptions,
        load_public_key,
        load_public_keys,
    )

    try:
        keys = tuple(
            key for path in args.key for key in load_public_keys(read_text_file(path, "key file"), path)
        )
        rekor_keys = (
            (load_public_key(read_text_file(args.rekor_key, "Rekor key file"), args.rekor_key),)
            if args.rekor_key
            else ()
        )
        if args.require_tlog and not rekor_keys:
            raise UsageError(
                "--require-tlog needs a Rekor public key (--rekor-key) to check log entries with"
            )
        attestors = tuple(
            KeyAttestor(
                name=key.name,
                keys=(key,),
                hash_algorithm=args.signature_algorithm,
                require_reference=args.require_reference,
            )
            for key in keys
        )
        return VerificationOptions(
            attestors=attestors,
            threshold=args.count,
            rekor_keys=rekor_keys,
            ignore_tlog=False if args.require_tlog else None,
        )
    except (KeyLoadError, AttestorError) as exc:
        raise UsageError(str(exc)) from None


async def _verify(
    reference: ImageReference, registry_options: RegistryOptions, options: VerificationOptions
) -> VerificationOutcome:
    from exporter.cosign import verify_image  # noqa: PLC0415
    from exporter.registry import RegistryClient  # noqa: PLC0415

    async with RegistryClient(registry_options) as client:
        return await verify_image(client, reference, options)


def _as_json(image: str, outcome: VerificationOutcome | None, error: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"image": image, "status": "error" if outcome is None else outcome.status}
    if outcome is None:
        document["error"] = error
        return document
    document["reason"] = outcome.reason
    if outcome.status == "error":
        document["error"] = outcome.cause
    else:
        document["digest"] = outcome.digest
    if outcome.status == "verified":
        document["matchedKeys"] = list(outcome.matched_keys)
        document["signatures"] = [_signature_json(signature) for signature in outcome.signatures]
    if outcome.status == "invalid":
        document["reasons"] = list(outcome.reasons)
    return document


def _signature_json(signature: VerifiedSignature) -> dict[str, Any]:
    """Where and how one signature was found and proven (JSON output)."""
    document: dict[str, Any] = {
        "attestor": signature.attestor,
        "format": signature.format,
        "place": signature.place,
        "repository": signature.repository,
        "manifestDigest": signature.manifest_digest,
    }
    optional: dict[str, Any] = {
        "bundleVersion": signature.bundle_version,
        "key": signature.key,
        "predicateType": signature.predicate_type,
        "logIndex": signature.log_index,
        "integratedTime": signature.integrated_time.isoformat() if signature.integrated_time else None,
        "signingTime": signature.signing_time.isoformat() if signature.signing_time else None,
        "timeSource": signature.time_source,
    }
    if signature.identity is not None:
        optional["identity"] = {
            "subject": signature.identity.subject,
            "issuer": signature.identity.issuer,
            "extensions": dict(signature.identity.extensions),
        }
    document.update({name: value for name, value in optional.items() if value is not None})
    return document


def _as_text(outcome: VerificationOutcome) -> str:
    if outcome.status == "verified":
        keys = ", ".join(outcome.matched_attestors)
        found = "".join(f"\n  - {signature.describe()}" for signature in outcome.signatures)
        return f"VERIFIED {outcome.reference}\n  digest: {outcome.digest}\n  signed by: {keys}{found}"
    if outcome.status == "unsigned":
        return (
            f"NOT VERIFIED {outcome.reference}: unsigned\n  digest: {outcome.digest}\n"
            "  no cosign signature found (no sha256-<digest>.sig manifest, no Sigstore bundle referrer)"
        )
    if outcome.status == "invalid":
        lines = "".join(f"\n  - {reason}" for reason in outcome.reasons)
        return (
            f"NOT VERIFIED {outcome.reference}: no valid signature by a trusted key\n"
            f"  digest: {outcome.digest}{lines}"
        )
    return f"ERROR {outcome.reference}: {outcome.cause}"


def _exit_code(outcome: VerificationOutcome) -> int:
    if outcome.status == "verified":
        return EXIT_VERIFIED
    if outcome.status == "error":
        return EXIT_ERROR
    return EXIT_NOT_VERIFIED


def run(args: argparse.Namespace) -> int:
    from exporter.registry import InvalidReferenceError, parse_reference  # noqa: PLC0415

    try:
        reference = parse_reference(args.image)
        options = _verify_options(args)
        registry_options = build_registry_options(args)
    except (InvalidReferenceError, UsageError) as exc:
        if args.output == "json":
            print(json.dumps(_as_json(args.image, None, str(exc)), indent=2))
        print(f"trustwatch verify: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    outcome = asyncio.run(_verify(reference, registry_options, options))
    if args.output == "json":
        print(json.dumps(_as_json(args.image, outcome, None), indent=2))
    else:
        print(_as_text(outcome))
    return _exit_code(outcome)
