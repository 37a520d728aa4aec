"""The README stays true: its option table, its example files and its two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.admission.review import parse_review
from exporter.config import describe_options
from exporter.policy.loader import load_policy_paths

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_option_table_is_current() -> None:
    match = re.search(r"<!-- options-table:start -->\n(.*?)\n<!-- options-table:end -->", README, re.DOTALL)
    assert match is not None, "README lost its options-table markers"
    assert match.group(1) == describe_options(), (
        "README's option table is stale: replace it with the output of `trustwatch serve --print-options`"
    )


def test_set_up_commands_are_the_ones_ci_runs() -> None:
    assert "pip install . && trustwatch serve" in README
    assert "bash .ci/run" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/run-all.sh" in ci
    assert "bash tests/run-all.sh" in README


def test_example_files_the_readme_uses_are_valid() -> None:
    review = parse_review((ROOT / "examples" / "admission" / "pod-review.json").read_bytes())
    assert (review.namespace, review.operation) == ("prod", "CREATE")
    (policy,) = load_policy_paths([ROOT / "examples" / "policies"])
    assert policy.name == "check-image-signature"
    assert {rule.name for rule in policy.rules} >= {"verify-image", "autogen-verify-image"}


def test_every_linked_document_exists() -> None:
    for target in re.findall(r"\]\(((?:docs|examples|tests)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"
