"""Kyverno conditions over attestation predicates: every operator, the JMESPath functions, durations,
and how failures are worded (pure: no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.policy.conditions import Condition, ConditionBlock, Operator, compare, evaluate, parse_quantity
from exporter.policy.durations import format_duration, parse_duration
from exporter.policy.expressions import (
    ExpressionError,
    UnresolvedVariableError,
    compile_expression,
    compile_template,
)


def cond(key: Any, operator: Operator, value: Any, message: str = "") -> Condition:
    return Condition(compile_template(key), operator, compile_template(value), message)


PROVENANCE: dict[str, Any] = {  # a predicate as decoded from JSON
    "builder": {"id": "https://github.com/acme/builder@v1"},
    "buildType": "https://tekton.dev/chains/v2",
    "materials": [{"uri": "git+https://github.com/acme/app"}, {"uri": "oci://ghcr.io/acme/base"}],
    "count": 3,
    "ratio": 0.5,
    "signed": True,
    "version": "1.10.0",
}


@pytest.mark.parametrize(
    ("key", "operator", "value", "expected"),
    [
        # Equals / NotEquals: strings are wildcard patterns on the value side, numbers cross types
        ("abc", "Equals", "abc", True),
        ("abc", "Equals", "a*", True),
        ("a*", "Equals", "abc", False),
        ("abc", "NotEquals", "abd", True),
        (1, "Equals", 1.0, True),
        (1, "Equals", "1", True),
        (1.5, "Equals", "1.5", True),
        ("1", "Equals", 1, False),
        (True, "Equals", True, True),
        (True, "Equals", "true", False),
        ("1h", "Equals", "60m", True),
        ("1Gi", "Equals", "1024Mi", True),
        ("1Ki", "Equals", "1024", True),
        ([1, 2], "Equals", [1, 2], True),
        ({"a": 1}, "Equals", {"a": 1}, True),
        ({"a": 1}, "NotEquals", {"a": 2}, True),
        # In / NotIn (older), AnyIn / AllIn / AnyNotIn / AllNotIn with wildcards in the value list
        ("b", "In", ["a", "b"], True),
        ("c", "In", ["a", "b"], False),
        (["a", "b"], "In", ["a", "b", "c"], True),
        (["a", "z"], "NotIn", ["a", "b"], True),
        ("c", "NotIn", ["a", "b"], True),
        ("ghcr.io/acme/app", "AnyIn", ["ghcr.io/acme/*"], True),
        (["x", "ghcr.io/acme/app"], "AnyIn", ["ghcr.io/acme/*"], True),
        (["x", "y"], "AnyIn", ["ghcr.io/acme/*"], False),
        (["a", "b"], "AllIn", ["a", "b", "c"], True),
        (["a", "d"], "AllIn", ["a", "b", "c"], False),
        (["a", "d"], "AnyNotIn", ["a", "b"], True),
        (["a", "b"], "AnyNotIn", ["a", "b"], False),
        (["x", "y"], "AllNotIn", ["a", "b"], True),
        (["x", "a"], "AllNotIn", ["a", "b"], False),
        ("a", "AnyIn", '["a", "b"]', True),
        ("a", "AnyIn", "a", True),
        (3, "AnyIn", [1, 2, 3], True),
        ("a", "AnyIn", 5, False),
        # numeric, quantity, duration and semver ordering
        (5, "GreaterThan", 3, True),
        (5, "GreaterThan", "3", True),
        ("5", "GreaterThanOrEquals", 5, True),
        (2.5, "LessThan", 3, True),
        (3, "LessThanOrEquals", 3, True),
        ("1500m", "GreaterThan", "1", True),
        ("1Gi", "LessThan", "1G", False),
        ("2h", "GreaterThan", "90m", True),
        ("30m", "LessThan", 3600, True),
        ("1.10.0", "GreaterThan", "1.9.2", True),
        ("1.0.0-rc.1", "LessThan", "1.0.0", True),
        ("1.0.0-alpha", "LessThan", "1.0.0-beta", True),
        ("abc", "GreaterThan", "abb", False),
        (True, "GreaterThan", 0, False),
        # Duration operators: Go durations or numbers of seconds
        ("25h", "DurationGreaterThan", "24h", True),
        ("24h", "DurationGreaterThanOrEquals", "1440m", True),
        ("1h30m", "DurationLessThan", "2h", True),
        (60, "DurationLessThanOrEquals", "1m", True),
        ("soon", "DurationLessThan", "2h", False),
    ],
)
def test_operators_follow_kyverno(key: Any, operator: Operator, value: Any, expected: bool) -> None:
    assert compare(operator, key, value) is expected


def test_variables_resolve_over_the_predicate_whole_or_spliced() -> None:
    assert compile_template("{{ builder.id }}").resolve(PROVENANCE) == PROVENANCE["builder"]["id"]
    assert compile_template("{{materials[].uri}}").resolve(PROVENANCE) == [
        "git+https://github.com/acme/app",
        "oci://ghcr.io/acme/base",
    ]
    assert compile_template("n={{ count }}, ok={{ signed }}").resolve(PROVENANCE) == "n=3, ok=true"
    assert compile_template(["{{ count }}", {"x": "{{ ratio }}"}]).resolve(PROVENANCE) == [3, {"x": 0.5}]
    assert compile_template(42).resolve(PROVENANCE) == 42


def test_kyverno_functions() -> None:
    def run(expression: str, data: Any = PROVENANCE) -> Any:
        return compile_template("{{ " + expression + " }}").resolve(data)

    assert run("to_upper(buildType)") == "HTTPS://TEKTON.DEV/CHAINS/V2"
    assert run("to_lower('AbC')") == "abc"
    assert run("regex_match('^https://github.com/acme/.*@v[0-9]+$', builder.id)") is True
    assert run("regex_match('^v2', buildType)") is False
    assert run("regex_match('^3$', count)") is True
    assert run("truncate(buildType, `5`)") == "https"
    assert run("split('a,b', ',')") == ["a", "b"]
    assert run("trim('--a--', '-')") == "a"
    assert run("equal_fold('ABC', 'abc')") is True
    assert run("replace_all('a-b-c', '-', '+')") == "a+b+c"
    assert run("base64_decode(base64_encode('hi'))") == "hi"
    assert run("compare('a', 'b')") == -1
    assert run("time_since('', '2024-01-01T00:00:00Z', '2024-01-02T01:30:00.5Z')") == "25h30m0.5s"
    assert run("time_since('', '2024-01-01T00:00:00+02:00', '2024-01-01T00:00:00Z')") == "2h0m0s"
    started = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    since = run("time_since('', t, '')", {"t": started})
    assert compare("DurationGreaterThan", since, "1h59m") and compare("DurationLessThan", since, "2h1m")
    now = datetime.fromisoformat(run("time_now_utc()"))
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5


@pytest.mark.parametrize(
    ("expression", "data", "problem"),
    [
        ("time_since('', 'yesterday', '')", {}, "not an RFC 3339 time"),
        ("time_since('Mon Jan 2', '2024-01-01T00:00:00Z', '')", {}, "layout"),
        ("time_since('', '2024-01-01T00:00:00', '')", {}, "no time zone"),
        ("to_upper(count)", {"count": 3}, "invalid type"),
        ("regex_match('(', 'x')", {}, "invalid regular expression"),
        ("base64_decode('%%%')", {}, "base64_decode"),
    ],
)
def test_a_function_that_cannot_run_is_an_expression_error(expression: str, data: Any, problem: str) -> None:
    with pytest.raises(ExpressionError, match=problem):
        compile_template("{{ " + expression + " }}").resolve(data)


def test_a_variable_naming_nothing_is_kyvernos_unknown_key() -> None:
    with pytest.raises(UnresolvedVariableError, match='Unknown key "idx" in path'):
        compile_template("{{ builder.idx }}").resolve(PROVENANCE)
    with pytest.raises(UnresolvedVariableError, match='Unknown key "nothing" in path'):
        compile_template("{{ nothing.at.all }}").resolve(PROVENANCE)
    with pytest.raises(UnresolvedVariableError, match="materials"):
        compile_template("x-{{ materials[?uri=='none'] | [0].uri }}").resolve(PROVENANCE)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("builder.", "invalid JMESPath expression"), ("nope(a)", "unknown function nope()"), ("a[", "invalid")],
)
def test_expressions_compile_at_load(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        compile_expression(text)
    with pytest.raises(ValueError, match=problem):
        compile_template({"list": ["ok", "{{ " + text + " }}"]})


def test_any_and_all_blocks_and_their_messages() -> None:
    ok = cond("{{ builder.id }}", "Equals", "https://github.com/acme/*", "builder must be acme's")
    wrong = cond("{{ buildType }}", "Equals", "https://other/*", "build type must be other's")
    bad_count = cond("{{ count }}", "GreaterThan", 5)
    assert evaluate((ConditionBlock(any=None, all=(ok,)),), PROVENANCE).passed
    assert evaluate((ConditionBlock(any=(wrong, ok), all=()),), PROVENANCE).passed
    verdict = evaluate((ConditionBlock(any=None, all=(ok, wrong, bad_count)),), PROVENANCE)
    assert (verdict.passed, verdict.message) == (False, "build type must be other's")
    verdict = evaluate((ConditionBlock(any=(wrong, bad_count), all=(ok,)),), PROVENANCE)
    assert (verdict.passed, verdict.message) == (
        False,
        "build type must be other's; {{ count }} GreaterThan 5",
    )
    # every block must hold; the first that does not decides the message
    verdict = evaluate((ConditionBlock(None, (ok,)), ConditionBlock(None, (bad_count,))), PROVENANCE)
    assert (verdict.passed, verdict.message) == (False, "{{ count }} GreaterThan 5")


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("1h", 3600 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("2.5s", 2_500_000_000),
        ("300ms", 300_000_000),
        ("1µs", 1000),
        ("1us", 1000),
        ("-1m", -60 * 10**9),
        ("1", None),
        ("", None),
        ("1d", None),
        ("h", None),
    ],
)
def test_go_durations_parse(text: str, nanoseconds: int | None) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (60 * 10**9, "1m0s"),
        (3600 * 10**9, "1h0m0s"),
        (93_784_500_000_000, "26h3m4.5s"),
        (-2 * 10**9, "-2s"),
    ],
)
def test_durations_print_as_go_does(nanoseconds: int, text: str) -> None:
    assert format_duration(nanoseconds) == text
    assert parse_duration(text) == nanoseconds


def test_quantities() -> None:
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1e3") == parse_quantity("1k")
    assert parse_quantity("1Ei") is not None and parse_quantity("abc") is None
    huge = parse_quantity("1e999999999999")  # an exponent Decimal cannot hold: no quantity, no crash
    assert huge is None or huge > 0
