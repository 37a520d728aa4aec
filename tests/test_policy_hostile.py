"""Malformed policy sources become PolicyLoadErrors with a message (never a raw exception), and a reload
that meets one keeps the last good set and counts it in trustwatch_policy_load_errors_total."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.metrics import ServiceMetrics
from exporter.policy.loader import PolicyLoadError, parse_policies
from exporter.policy.reload import PolicyReloader
from tests.support.admission import walkthrough_policy_text
from tests.support.registry import generate_signing_key, public_pem

GOOD = walkthrough_policy_text(public_pem(generate_signing_key()))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: ConfigMap\ndata: {1: a, b.yaml: c}\n", "malformed document"),
        ("apiVersion: kyverno.io/v1\nkind: [ClusterPolicy]\nmetadata: {name: x}\n", "is not a Kyverno"),
        ("? [a, b]\n: c\n", "invalid YAML/JSON"),
        ("count: " + "9" * 5000 + "\n", "invalid YAML/JSON"),
        ("a: " + "[" * 900 + "]" * 900, "nested too deeply"),
        ("a: " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (GOOD.replace("name: check-image-signature", "name: 123", 1), "metadata.name: expected a string"),
        ("kind: 5\n", "kind 5 is not a Kyverno"),
    ],
    ids=["mixed-keys", "kind-list", "complex-key", "digits", "900-deep", "100k-deep", "name-int", "kind-int"],
)
def test_malformed_sources_are_policy_load_errors(text: str, problem: str) -> None:
    with pytest.raises(PolicyLoadError, match=problem) as caught:
        parse_policies(text, "hostile.yaml")
    assert str(caught.value).startswith("hostile.yaml")


def test_a_reload_that_meets_a_malformed_file_counts_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(GOOD)
    metrics = ServiceMetrics()
    reloader = PolicyReloader([tmp_path], metrics)
    good = reloader.load_initial()
    policy.write_text("kind: ConfigMap\ndata: {1: a, b.yaml: c}\n")
    os.utime(policy, (1, 1))
    assert reloader.check_once() is False
    assert reloader.current() is good
    assert metrics.registry.get_sample_value("trustwatch_policy_load_errors_total") == 1
    assert metrics.registry.get_sample_value("trustwatch_policy_last_load_success") == 0
