"""`trustwatch verify-attestation IMAGE --type TYPE`: check an image's signed in-toto attestations, as
`cosign verify-attestation` does, and print the verified statements as JSON lines.

Exit codes as ``trustwatch verify``: 0 at least one statement of the type verified, 1 none (no attestation
of that type, or none signed by a trusted signer), 2 error. Heavy imports stay inside run().
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from exporter.commands.registry_args import UsageError, add_registry_arguments, build_registry_options
from exporter.commands.signer_args import add_signer_arguments, build_verification_options
from exporter.commands.verify import EXIT_ERROR, exit_code

if TYPE_CHECKING:
    from exporter.cosign import VerificationOptions, VerificationOutcome
    from exporter.registry import ImageReference, RegistryOptions

# A few of cosign's --type names, for the help (exporter.cosign.formats.intoto has them all).
TYPE_NAMES = "custom, slsaprovenance, slsaprovenance1, spdxjson, cyclonedx, vuln, openvex"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify-attestation",
        help="verify an image's signed in-toto attestations and print their statements",
        description="Verify the in-toto attestations of IMAGE whose predicate type is TYPE, as `cosign "
        "verify-attestation` does: legacy sha256-<hex>.att tags and DSSE bundles attached as OCI referrers; "
        "the statement's subject must be the image's digest. Prints each verified statement as one JSON "
        "line on standard output (where and by whom each was signed goes to standard error). Exit 0 "
        "verified, 1 not verified, 2 error.",
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="image reference, e.g. ghcr.io/org/app:1.0 or …@sha256:…"
    )
    parser.add_argument(
        "--type",
        default="custom",
        metavar="TYPE",
        help=f"predicate type: one of cosign's names ({TYPE_NAMES}…), or a predicate type URI exactly as "
        "the statement carries it (default custom)",
    )
    add_signer_arguments(parser)
    parser.set_defaults(require_reference=False)
    add_registry_arguments(parser, "give up after S seconds of registry traffic")
    parser.set_defaults(run=run)


async def _verify(
    reference: ImageReference, registry_options: RegistryOptions, options: VerificationOptions, kind: str
) -> VerificationOutcome:
    from exporter.cosign import verify_attestations  # noqa: PLC0415
    from exporter.registry import RegistryClient  # noqa: PLC0415

    async with RegistryClient(registry_options) as client:
        return await verify_attestations(client, reference, options, kind)


def run(args: argparse.Namespace) -> int:
    from exporter.cosign.formats.intoto import predicate_type_uri  # noqa: PLC0415
    from exporter.registry import InvalidReferenceError, parse_reference  # noqa: PLC0415

    kind = predicate_type_uri(args.type)
    try:
        reference = parse_reference(args.image)
        options = build_verification_options(args)
        registry_options = build_registry_options(args)
    except (InvalidReferenceError, UsageError) as exc:
        print(f"trustwatch verify-attestation: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    outcome = asyncio.run(_verify(reference, registry_options, options, kind))
    if outcome.status == "verified":
        for statement in outcome.statements:
            print(json.dumps(statement.statement, separators=(",", ":"), sort_keys=True))
            print(f"  {statement.signature.describe()}", file=sys.stderr)
        print(
            f"verified {len(outcome.statements)} {kind} attestation(s) of {outcome.reference} "
            f"({outcome.digest})",
            file=sys.stderr,
        )
    elif outcome.status == "unsigned":
        print(f"NOT VERIFIED {outcome.reference}: no {kind} attestation found", file=sys.stderr)
    elif outcome.status == "invalid":
        reasons = "".join(f"\n  - {reason}" for reason in outcome.reasons)
        print(
            f"NOT VERIFIED {outcome.reference}: no {kind} attestation signed by a trusted signer{reasons}",
            file=sys.stderr,
        )
    else:
        print(f"ERROR {outcome.reference}: {outcome.cause}", file=sys.stderr)
    return exit_code(outcome)
