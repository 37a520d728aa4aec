"""Registry flags shared by ``trustwatch verify`` and ``trustwatch apply``, and reading their files.

Standard library only at import time: the registry package (and aiohttp) load when options are built.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.registry import RegistryOptions

DEFAULT_TIMEOUT = 10.0
MAX_REQUEST_TIMEOUT = 5.0


class UsageError(Exception):
    """Bad arguments or unreadable input files: reported on stderr, exit code 2."""


def add_registry_arguments(parser: argparse.ArgumentParser, timeout_help: str) -> None:
    """``--insecure-registry``, ``--registry-config`` and ``--timeout``."""
    parser.add_argument(
        "--insecure-registry",
        metavar="HOST[:PORT]",
        action="append",
        default=[],
        help="registry to reach over plain HTTP; repeatable",
    )
    parser.add_argument(
        "--registry-config",
        metavar="FILE",
        help="docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json or "
        "~/.docker/config.json when present)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"{timeout_help} (default {DEFAULT_TIMEOUT:g})",
    )


def read_text_file(path: str, what: str) -> str:
    """The text of ``path``, or a UsageError that names ``what`` it was meant to be."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read {what} {path}: {detail}") from None


def _default_registry_config() -> str | None:
    directory = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    path = Path(directory) / "config.json"
    return str(path) if path.is_file() else None


def build_registry_options(args: argparse.Namespace) -> RegistryOptions:
    """RegistryOptions from the shared flags; UsageError for a bad timeout or credentials file."""
    from exporter.registry import DockerConfigError, RegistryOptions, load_docker_config  # noqa: PLC0415

    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, not {args.timeout:g}")
    config_path = args.registry_config or _default_registry_config()
    try:
        credentials = load_docker_config(config_path) if config_path else None
    except DockerConfigError as exc:
        raise UsageError(str(exc)) from None
    return RegistryOptions(
        insecure_registries=frozenset(args.insecure_registry),
        credentials=credentials,
        request_timeout=min(MAX_REQUEST_TIMEOUT, args.timeout),
        deadline=args.timeout,
    )
