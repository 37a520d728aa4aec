"""`trustwatch verify IMAGE`: check an image's cosign signatures from the command line, as `cosign verify`.

Exit codes: 0 verified, 1 not verified (unsigned or invalid), 2 error (bad arguments, unreadable key or
config, registry unreachable). Heavy imports stay inside run() so the command starts fast and never loads
the kubernetes client.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from exporter.commands.registry_args import UsageError, add_registry_arguments, build_registry_options
from exporter.commands.signer_args import add_signer_arguments, build_verification_options

if TYPE_CHECKING:
    from exporter.cosign import VerificationOptions, VerificationOutcome, VerifiedSignature
    from exporter.registry import ImageReference, RegistryOptions

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1
EXIT_ERROR = 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="verify an image's cosign signatures (keys, certificates or keyless identities)",
        description="Verify the cosign signatures of IMAGE, as `cosign verify` does: legacy "
        "sha256-<hex>.sig tags and Sigstore bundles attached as OCI referrers, signed with a key (--key), a "
        "certificate of your own PKI (--cert/--cert-chain) or keyless (--certificate-identity and "
        "--certificate-oidc-issuer). Nothing is fetched but the registry's content: logs and timestamps "
        "are checked offline against the trusted root. Exit 0 verified, 1 not verified (unsigned or invalid "
        "signatures), 2 error (bad arguments, unreadable files, registry unreachable).",
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="image reference, e.g. ghcr.io/org/app:1.0 or …@sha256:…"
    )
    add_signer_arguments(parser)
    parser.add_argument(
        "--require-reference",
        action="store_true",
        help="also require the signed docker-reference to name IMAGE's repository",
    )
    parser.add_argument(
        "-a",
        "--annotations",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a signature counts only if its signed payload carries this annotation (repeatable), as "
        "`cosign verify -a`",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text", help="result format")
    add_registry_arguments(parser, "give up after S seconds of registry traffic")
    parser.set_defaults(run=run)


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
        document["signatures"] = [signature_json(signature) for signature in outcome.signatures]
    if outcome.status == "invalid":
        document["reasons"] = list(outcome.reasons)
    return document


def signature_json(signature: VerifiedSignature) -> dict[str, Any]:
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
            f"NOT VERIFIED {outcome.reference}: no valid signature by a trusted signer\n"
            f"  digest: {outcome.digest}{lines}"
        )
    return f"ERROR {outcome.reference}: {outcome.cause}"


def parse_annotations(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` flags as sorted pairs (the value may hold '='); UsageError for one without '='."""
    annotations: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageError(f"--annotations: expected KEY=VALUE, got {pair!r}")
        annotations[key] = value
    return tuple(sorted(annotations.items()))


def exit_code(outcome: VerificationOutcome) -> int:
    if outcome.status == "verified":
        return EXIT_VERIFIED
    if outcome.status == "error":
        return EXIT_ERROR
    return EXIT_NOT_VERIFIED


def run(args: argparse.Namespace) -> int:
    from exporter.registry import InvalidReferenceError, parse_reference  # noqa: PLC0415

    try:
        reference = parse_reference(args.image)
        options = dataclasses.replace(
            build_verification_options(args), annotations=parse_annotations(args.annotations)
        )
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
    return exit_code(outcome)
