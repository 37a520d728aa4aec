"""Entry point of the ``trustwatch`` command: parses arguments and hands off to one sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from exporter import __version__

# Sub-command name -> module under exporter.commands. Modules are imported only to register their flags;
# they keep heavy imports (kubernetes, aiohttp) inside run() so `trustwatch verify` stays fast.
COMMANDS = ("serve", "verify", "verify_attestation", "apply")


class _ExactParser(argparse.ArgumentParser):
    """A parser that takes flags only as spelt: prefix matching turned ``--policy`` into an ambiguity error
    and let ``--policy-include`` be typed where ``--policies`` was meant."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = _ExactParser(
        prog="trustwatch",
        description="Admit only trusted container images, and turn every PolicyReport into metrics.",
    )
    parser.add_argument("--version", action="version", version=f"trustwatch {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_ExactParser
    )
    for name in COMMANDS:
        module = importlib.import_module(f"exporter.commands.{name}")
        module.register(subparsers)
    version = subparsers.add_parser("version", help="print the version and exit")
    version.set_defaults(run=lambda _args: _print_version())
    return parser


def _print_version() -> int:
    print(f"trustwatch {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 policy/verification failure, 2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
