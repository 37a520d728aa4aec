"""Flags as people type them: one name for the policy option in both commands, no prefix guessing."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli import build_parser
from exporter.config import ConfigError, resolve


@pytest.mark.parametrize("flag", ["--policies", "--policy"])
def test_serve_and_apply_take_both_spellings_of_the_policy_flag(flag: str) -> None:
    serve = build_parser().parse_args(["serve", flag, "a.yaml", flag, "b.yaml"])
    assert resolve(serve, {}).policies == (Path("a.yaml"), Path("b.yaml"))
    apply = build_parser().parse_args(["apply", flag, "a.yaml", "--resource", "r.yaml"])
    assert apply.policy == ["a.yaml"]


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--policy-inc", "x"],  # once taken as --policy-include
        ["serve", "--webhook-addr", "127.0.0.1:1"],
        ["apply", "--policy", "p.yaml", "--resource", "r.yaml", "--policy-rep"],
        ["verify", "img", "--key", "k.pub", "--coun", "2"],
    ],
)
def test_flags_are_never_guessed_from_a_prefix(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_an_unknown_trustwatch_environment_variable_is_an_error() -> None:
    args = build_parser().parse_args(["serve"])
    with pytest.raises(ConfigError, match=r"TRUSTWATCH_POLICY \(did you mean TRUSTWATCH_POLICIES\?\)"):
        resolve(args, {"TRUSTWATCH_POLICY": "p.yaml", "TRUSTWATCH_TIMEOUT": "3"})
    assert resolve(args, {"TRUSTWATCH_TIMEOUT": "3", "OTHER_THING": "x"}).timeout == 3.0
