"""``trustwatch serve``: the webhook, the report watcher and the metrics endpoint in one process."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from exporter.config import ConfigError, add_arguments, describe_options, resolve

EPILOG = """\
Every flag can also be set as an environment variable (TRUSTWATCH_<FLAG>, e.g. TRUSTWATCH_LOG_FORMAT=json) or
as a key of the --config YAML file; flags win over the environment, which wins over the file. An unknown
TRUSTWATCH_* variable or file key is an error, and flags are never guessed from a prefix.
With no cluster (no in-cluster service account, no kubeconfig) trustwatch runs on local files: the embedded
example policy and reports (unless --policies names your own), a self-signed webhook certificate and reports
written under --state-dir. Only a process running in a cluster writes reports into it by default; from a
laptop with a kubeconfig, --report-output kubernetes does."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the admission webhook, the PolicyReport watcher and the /metrics endpoint",
        description="Run the admission webhook, the PolicyReport watcher and the /metrics endpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.add_argument(
        "--print-options", action="store_true", help="print every option as a Markdown table and exit"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.print_options:
        print(describe_options())
        return 0
    try:
        config = resolve(args)
    except ConfigError as exc:
        print(f"trustwatch serve: {exc}", file=sys.stderr)
        return 2
    import asyncio  # noqa: PLC0415  (serve-only imports stay off the CLI's start-up path)

    from exporter import logs, service  # noqa: PLC0415

    logs.configure(config.log_level, json_format=config.log_format == "json")
    try:
        return asyncio.run(service.run(config))
    except (ConfigError, service.StartupError) as exc:
        print(f"trustwatch serve: {exc}", file=sys.stderr)
        return 2
