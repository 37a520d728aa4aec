"""Configuration of ``trustwatch serve``: one table of options, read from flags, environment and YAML.

Every option is declared once in :data:`OPTIONS`; the argument parser, the environment variables
(``TRUSTWATCH_<NAME>``), the YAML config file keys and the README table all come from it, so they cannot drift
apart. Precedence: command-line flag, then environment variable, then config file, then default.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the option and where it came from."""


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable and config-file key all derive from ``name``."""

    name: str
    help: str
    default: Any = None
    kind: Literal["str", "float", "int", "path", "list", "paths", "bool"] = "str"
    choices: tuple[str, ...] = ()
    # Other spellings of the flag, e.g. ``--policy`` for ``--policies`` (``trustwatch apply`` says --policy).
    aliases: tuple[str, ...] = ()
    # For numbers: the accepted range, ``(low, high)``; ``low`` is excluded when ``low_open`` (a timeout
    # of 0 is no timeout). NaN and infinities are never accepted.
    bounds: tuple[float, float] | None = None
    low_open: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "TRUSTWATCH_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "config",
        "YAML file whose keys are any of these option names (snake_case or kebab-case).",
        kind="path",
    ),
    Option(
        "metrics_address",
        "HOST:PORT of the plain-HTTP server for /metrics, /healthz and /readyz (loopback by default; "
        "0.0.0.0:8080 inside a Pod, as the Helm chart sets it).",
        "127.0.0.1:8080",
    ),
    Option(
        "webhook_address",
        "HOST:PORT of the HTTPS admission webhook (POST /mutate, POST /validate; loopback by default, "
        "0.0.0.0:9443 inside a Pod, as the Helm chart sets it).",
        "127.0.0.1:9443",
    ),
    Option("tls_cert", "PEM certificate for the webhook; reloaded when the file changes.", kind="path"),
    Option("tls_key", "PEM private key for --tls-cert; reloaded when the file changes.", kind="path"),
    Option(
        "state_dir", "Writable directory for generated TLS material and locally written reports.", kind="path"
    ),
    Option(
        "policies",
        "Kyverno ClusterPolicy/Policy and (Namespaced)ImageValidatingPolicy YAML files or directories "
        "(a mounted ConfigMap works); repeatable or comma-separated. Enables the webhook. Default with no "
        "cluster: the embedded example.",
        kind="paths",
        aliases=("--policy",),
    ),
    Option(
        "webhook",
        "Run the admission webhook: auto (when policies are configured), on, off.",
        "auto",
        choices=("auto", "on", "off"),
    ),
    Option(
        "reports_dir",
        "Directories of PolicyReport YAML/JSON files to watch; repeatable. Default with no "
        "cluster: the embedded examples plus the local report output.",
        kind="paths",
    ),
    Option(
        "kubernetes",
        "Use the Kubernetes API: auto (in-cluster or kubeconfig when present), on, off.",
        "auto",
        choices=("auto", "on", "off"),
    ),
    Option(
        "report_output",
        "Where audit results from the webhook go: auto (Kubernetes API when running in a cluster, "
        "else local files; a kubeconfig alone never writes into a cluster), kubernetes, local, none.",
        "auto",
        choices=("auto", "kubernetes", "local", "none"),
    ),
    Option(
        "report_cleanup_interval",
        "Seconds between checks that remove results about deleted resources from the reports "
        "trustwatch writes through the Kubernetes API.",
        20.0,
        kind="float",
    ),
    Option(
        "report_api",
        "API of written reports.",
        "wgpolicyk8s.io/v1alpha2",
        choices=("wgpolicyk8s.io/v1alpha2", "openreports.io/v1alpha1"),
    ),
    Option(
        "label_mode",
        "Label set of report result metrics: default, detailed (adds resource name and "
        "report: high cardinality), custom (see --custom-labels).",
        "default",
        choices=("default", "detailed", "custom"),
    ),
    Option(
        "custom_labels", "Labels for --label-mode custom, comma-separated (see docs/reports.md).", kind="list"
    ),
    Option(
        "report_summaries",
        "Expose per-report summary series (5 per report); turn off on very large "
        "clusters to keep scrapes fast.",
        True,
        kind="bool",
    ),
    Option("namespace_include", "Only watch/count reports in namespaces matching these globs.", kind="list"),
    Option("namespace_exclude", "Ignore reports in namespaces matching these globs.", kind="list"),
    Option("policy_include", "Only count results of policies matching these globs.", kind="list"),
    Option("policy_exclude", "Ignore results of policies matching these globs.", kind="list"),
    Option("source_include", "Only count results whose source matches these globs.", kind="list"),
    Option("source_exclude", "Ignore results whose source matches these globs.", kind="list"),
    Option(
        "status_include",
        "Only count results with these statuses (pass, fail, warn, error, skip).",
        kind="list",
    ),
    Option("status_exclude", "Ignore results with these statuses.", kind="list"),
    Option("severity_include", "Only count results with these severities.", kind="list"),
    Option("severity_exclude", "Ignore results with these severities.", kind="list"),
    Option("kind_include", "Only count results about resources of these kinds.", kind="list"),
    Option("kind_exclude", "Ignore results about resources of these kinds.", kind="list"),
    Option(
        "registry_config",
        "Docker config.json (or dockerconfigjson secret content) with registry credentials.",
        kind="path",
    ),
    Option("insecure_registry", "Registries (HOST[:PORT]) reached over plain HTTP; repeatable.", kind="list"),
    Option(
        "trusted_root",
        "Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, timestamp authorities) that policy "
        "attestors trust, e.g. a private Sigstore (an ImageValidatingPolicy attestor's own trustedRoot "
        "wins). Default: the public-good root shipped with trustwatch.",
        kind="path",
    ),
    Option(
        "timeout",
        "Admission deadline in seconds (match the webhook's timeoutSeconds); a decision is "
        "always returned before it.",
        10.0,
        kind="float",
        bounds=(0.0, 30.0),  # Kubernetes caps a webhook's timeoutSeconds at 30
        low_open=True,
    ),
    Option(
        "cache_ttl",
        "Seconds a successful verification stays cached.",
        3600.0,
        kind="float",
        bounds=(0.0, 7 * 86400.0),
        low_open=True,
    ),
    Option(
        "cache_size", "Most verification results held in the cache.", 1000, kind="int", bounds=(1, 1_000_000)
    ),
    Option(
        "grace_period",
        "Seconds to finish in-flight requests after SIGTERM.",
        10.0,
        kind="float",
        bounds=(0.0, 3600.0),
    ),
    Option("log_format", "Log format.", "text", choices=("text", "json")),
    Option("log_level", "Log level.", "info", choices=("debug", "info", "warning", "error")),
)
OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class ServeConfig:
    """The resolved settings of one ``trustwatch serve`` process (see :data:`OPTIONS` for meanings)."""

    config: Path | None = None
    # Loopback: a local run exposes nothing; in a Pod the chart binds every interface explicitly.
    metrics_address: str = "127.0.0.1:8080"
    webhook_address: str = "127.0.0.1:9443"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    state_dir: Path | None = None
    policies: tuple[Path, ...] = ()
    webhook: str = "auto"
    reports_dir: tuple[Path, ...] = ()
    kubernetes: str = "auto"
    report_output: str = "auto"
    report_cleanup_interval: float = 20.0
    report_api: str = "wgpolicyk8s.io/v1alpha2"
    label_mode: str = "default"
    custom_labels: tuple[str, ...] = ()
    report_summaries: bool = True
    namespace_include: tuple[str, ...] = ()
    namespace_exclude: tuple[str, ...] = ()
    policy_include: tuple[str, ...] = ()
    policy_exclude: tuple[str, ...] = ()
    source_include: tuple[str, ...] = ()
    source_exclude: tuple[str, ...] = ()
    status_include: tuple[str, ...] = ()
    status_exclude: tuple[str, ...] = ()
    severity_include: tuple[str, ...] = ()
    severity_exclude: tuple[str, ...] = ()
    kind_include: tuple[str, ...] = ()
    kind_exclude: tuple[str, ...] = ()
    registry_config: Path | None = None
    insecure_registry: tuple[str, ...] = ()
    trusted_root: Path | None = None
    timeout: float = 10.0
    cache_ttl: float = 3600.0
    cache_size: int = 1000
    grace_period: float = 10.0
    log_format: str = "text"
    log_level: str = "info"

    def resolved_state_dir(self) -> Path:
        """Where generated files go: --state-dir, else $XDG_STATE_HOME/trustwatch (~/.local/state)."""
        if self.state_dir is not None:
            return self.state_dir
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "trustwatch"


def split_address(address: str, option: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6); port 0 asks the OS for a free one."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{option}: {address!r} is not HOST:PORT (for example 127.0.0.1:8080)")
    return host.strip("[]") or "0.0.0.0", int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register one flag per option; defaults stay None so unset flags fall through to env and file."""
    for option in OPTIONS:
        default_text = "" if option.default is None else f" (default: {option.default})"
        help_text = f"{option.help}{default_text} [env {option.env}]"
        kwargs: dict[str, Any] = {"dest": option.name, "default": None, "help": help_text}
        if option.kind in ("list", "paths"):
            kwargs["action"] = "append"
        if option.choices:
            kwargs["choices"] = option.choices
        parser.add_argument(option.flag, *option.aliases, **kwargs)


def _convert(option: Option, raw: Any, origin: str) -> Any:
    """Turn a raw flag/env/YAML value into the option's type, or raise ConfigError naming its origin."""
    where = f"{option.flag} (from {origin})"
    try:
        if option.kind in ("list", "paths"):
            items = _as_items(raw)
            return tuple(Path(item) for item in items) if option.kind == "paths" else tuple(items)
        if isinstance(raw, list | dict):
            raise ConfigError(f"{where}: expected a single value, got {raw!r}")
        if option.kind == "float":
            return _in_bounds(option, float(raw), where)
        if option.kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return _in_bounds(option, int(raw), where)
        if option.kind == "path":
            return Path(str(raw))
        if option.kind == "bool":
            return _as_bool(raw)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {str(raw)[:40]!r} is not a valid {option.kind}") from exc
    value = str(raw)
    if option.choices and value not in option.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(option.choices)}")
    return value


def _in_bounds(option: Option, value: float, where: str) -> Any:
    """``value`` if finite and within ``option.bounds``, else ConfigError saying the accepted range."""
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number")
    if option.bounds is not None:
        low, high = option.bounds
        if value > high or value < low or (option.low_open and value == low):
            raise ConfigError(f"{where}: {value:g} is out of range; use {_range(option)}")
    return value


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"{raw!r} is not true or false")
    return text in _TRUE


def _as_items(raw: Any) -> list[str]:
    """Lists come as repeated flags, YAML lists, or comma-separated strings; accept all three."""
    values = raw if isinstance(raw, list | tuple) else [raw]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of option names to values")
    normalised = {str(key).replace("-", "_"): value for key, value in loaded.items()}
    unknown = sorted(set(normalised) - set(OPTIONS_BY_NAME) - {"config"})
    if unknown:
        raise ConfigError(
            f"--config: {path} has unknown option(s) {', '.join(unknown)}; see `trustwatch serve --help`"
        )
    return normalised


def resolve(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    read_file: Callable[[Path], dict[str, Any]] = _read_config_file,
) -> ServeConfig:
    """Merge flags, environment and config file into a :class:`ServeConfig` (flags win)."""
    env = os.environ if environ is None else environ
    _reject_unknown_environment(env)
    values: dict[str, Any] = {}
    config_path = getattr(args, "config", None) or env.get(OPTIONS_BY_NAME["config"].env)
    file_values = read_file(Path(config_path)) if config_path else {}
    for option in OPTIONS:
        flag_value = getattr(args, option.name, None)
        if flag_value is not None:
            values[option.name] = _convert(option, flag_value, "command line")
        elif option.env in env:
            values[option.name] = _convert(option, env[option.env], f"environment {option.env}")
        elif option.name in file_values:
            values[option.name] = _convert(option, file_values[option.name], f"config file {config_path}")
    # Addresses are checked now, so a bad one is reported before anything starts listening.
    for name in ("metrics_address", "webhook_address"):
        split_address(str(values.get(name, OPTIONS_BY_NAME[name].default)), OPTIONS_BY_NAME[name].flag)
    known = {f.name for f in fields(ServeConfig)}
    return ServeConfig(**{key: value for key, value in values.items() if key in known})


ENV_PREFIX = "TRUSTWATCH_"


def _reject_unknown_environment(env: Mapping[str, str]) -> None:
    """A misspelt ``TRUSTWATCH_*`` variable is an error, like an unknown config-file key: silently ignoring
    it would run with a setting the user believes is applied."""
    known = {option.env for option in OPTIONS}
    unknown = sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise ConfigError(
        f"unknown environment variable(s) {', '.join(hints)}; "
        "see `trustwatch serve --help` for the TRUSTWATCH_* variables"
    )


def _accepted(option: Option) -> str:
    """`` Accepted: more than 0, at most 30.`` for an option with bounds, else ''."""
    return f" Accepted: {_range(option)}." if option.bounds is not None else ""


def _range(option: Option) -> str:
    assert option.bounds is not None
    low, high = option.bounds
    return f"{'more than' if option.low_open else 'at least'} {low:g}, at most {high:g}"


def describe_options(options: Sequence[Option] = OPTIONS) -> str:
    """A Markdown table of every option, for the README (a test keeps the README current)."""
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for option in options:
        default = "" if option.default is None else f"`{option.default}`"
        flags = ", ".join(f"`{flag}`" for flag in (option.flag, *option.aliases))
        lines.append(f"| {flags} | `{option.env}` | {default} | {option.help}{_accepted(option)} |")
    return "\n".join(lines)
