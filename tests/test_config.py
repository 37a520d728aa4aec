"""`trustwatch serve` settings: one option table feeds flags, environment and the YAML config file."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from exporter.config import OPTIONS, ConfigError, ServeConfig, add_arguments, resolve, split_address


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_of_option_table_and_dataclass_agree() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(ServeConfig)}
    for option in OPTIONS:
        if option.default is not None:
            assert defaults[option.name] == option.default, option.name
    assert set(defaults) == {option.name for option in OPTIONS}


def test_listeners_bind_loopback_unless_told_otherwise() -> None:
    """A local run must not expose the plain-HTTP status server or the webhook to the network."""
    resolved = resolve(parse(), {})
    assert split_address(resolved.metrics_address, "--metrics-address")[0] == "127.0.0.1"
    assert split_address(resolved.webhook_address, "--webhook-address")[0] == "127.0.0.1"


def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    config_file = tmp_path / "trustwatch.yaml"
    config_file.write_text("timeout: 3\nlog-format: json\nlabel_mode: detailed\ncache_size: 7\n")
    env = {"TRUSTWATCH_TIMEOUT": "5", "TRUSTWATCH_LOG_FORMAT": "text"}
    resolved = resolve(parse("--config", str(config_file), "--timeout", "8"), env)
    assert resolved.timeout == 8.0
    assert resolved.log_format == "text"
    assert resolved.label_mode == "detailed"
    assert resolved.cache_size == 7
    assert resolved.config == config_file


def test_lists_accept_repetition_commas_and_yaml_lists(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("namespace_exclude: [kube-system, 'trustwatch']\n")
    resolved = resolve(
        parse("--config", str(config_file), "--policies", "a.yaml,b.yaml", "--policies", "dir/"),
        {"TRUSTWATCH_INSECURE_REGISTRY": "127.0.0.1:5000, localhost:5001"},
    )
    assert resolved.policies == (Path("a.yaml"), Path("b.yaml"), Path("dir"))
    assert resolved.insecure_registry == ("127.0.0.1:5000", "localhost:5001")
    assert resolved.namespace_exclude == ("kube-system", "trustwatch")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TRUSTWATCH_TIMEOUT": "soon"},
            "--timeout (from environment TRUSTWATCH_TIMEOUT): 'soon' is not a valid",
        ),
        ({"TRUSTWATCH_LABEL_MODE": "all"}, "'all' is not one of default, detailed, custom"),
    ],
)
def test_bad_values_name_the_option_and_origin(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(parse(), env)


def test_booleans_from_flags_environment_and_yaml(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("report_summaries: false\n")
    assert resolve(parse("--config", str(config_file)), {}).report_summaries is False
    assert resolve(parse(), {"TRUSTWATCH_REPORT_SUMMARIES": "no"}).report_summaries is False
    assert resolve(parse("--report-summaries", "on"), {"TRUSTWATCH_REPORT_SUMMARIES": "0"}).report_summaries
    assert resolve(parse(), {}).report_summaries is True
    with pytest.raises(ConfigError, match=r"--report-summaries .*'maybe' is not a valid bool"):
        resolve(parse("--report-summaries", "maybe"), {})


def test_config_file_errors_are_explained(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("timeout: 3\ntimout: 4\n")
    with pytest.raises(ConfigError, match="unknown option\\(s\\) timout"):
        resolve(parse("--config", str(unknown)), {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("timeout: [3\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        resolve(parse("--config", str(broken)), {})
    with pytest.raises(ConfigError, match="cannot read"):
        resolve(parse("--config", str(tmp_path / "missing.yaml")), {})
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- a\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        resolve(parse("--config", str(not_mapping)), {})


def test_split_address() -> None:
    assert split_address("127.0.0.1:0", "--metrics-address") == ("127.0.0.1", 0)
    assert split_address("[::1]:9443", "--webhook-address") == ("::1", 9443)
    assert split_address(":8080", "--metrics-address") == ("0.0.0.0", 8080)
    with pytest.raises(ConfigError, match="--metrics-address: '8080' is not HOST:PORT"):
        split_address("8080", "--metrics-address")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--timeout", "0"),
            "--timeout (from command line): 0 is out of range; use more than 0, at most 30",
        ),
        (("--timeout", "-5"), "--timeout (from command line): -5 is out of range"),
        (("--timeout", "nan"), "--timeout (from command line): nan is not a finite number"),
        (("--timeout", "31"), "--timeout (from command line): 31 is out of range"),
        (("--cache-size", "0"), "--cache-size (from command line): 0 is out of range; use at least 1"),
        (("--cache-ttl", "0"), "--cache-ttl (from command line): 0 is out of range; use more than 0"),
        (("--grace-period", "-1"), "--grace-period (from command line): -1 is out of range; use at least 0"),
        (("--grace-period", "inf"), "--grace-period (from command line): inf is not a finite number"),
        (("--webhook-address", "127.0.0.1:99999"), "--webhook-address: '127.0.0.1:99999' is not HOST:PORT"),
        (("--metrics-address", "localhost"), "--metrics-address: 'localhost' is not HOST:PORT"),
    ],
)
def test_values_out_of_range_are_refused_before_anything_starts(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(parse(*argv), {})
