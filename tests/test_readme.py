"""The README stays true: its option table, its example files and its two set-up commands."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

from exporter.admission.review import parse_review
from exporter.cli import build_parser
from exporter.config import describe_options
from exporter.policy import KyvernoPolicy
from exporter.policy.loader import load_policy_paths
from tests.support.serve import ServeProcess, poll

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_option_table_is_current() -> None:
    match = re.search(r"<!-- options-table:start -->\n(.*?)\n<!-- options-table:end -->", README, re.DOTALL)
    assert match is not None, "README lost its options-table markers"
    assert match.group(1) == describe_options(), (
        "README's option table is stale: replace it with the output of `trustwatch serve --print-options`"
    )


def test_set_up_commands_are_the_ones_ci_runs() -> None:
    assert "python3 -m venv .venv && . .venv/bin/activate && pip install . && trustwatch serve" in README
    assert "bash .ci/run" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/run-all.sh" in ci
    assert "bash tests/run-all.sh" in README


def test_example_files_the_readme_uses_are_valid() -> None:
    review = parse_review((ROOT / "examples" / "admission" / "pod-review.json").read_bytes())
    assert (review.namespace, review.operation) == ("prod", "CREATE")
    (policy,) = load_policy_paths([ROOT / "examples" / "policies"])
    assert isinstance(policy, KyvernoPolicy) and policy.name == "check-image-signature"
    assert {rule.name for rule in policy.rules} >= {"verify-image", "autogen-verify-image"}


def test_every_linked_document_exists() -> None:
    for target in re.findall(r"\]\(((?:docs|examples|tests)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"


def _table_rows(heading: str) -> list[str]:
    """The first cell of every row of the table under README's ``## heading``."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `")]


def test_commands_table_lists_every_command() -> None:
    parser = build_parser()
    (subparsers,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    listed = {cell.strip("`").split()[1] for cell in _table_rows("Commands")}
    assert listed == set(subparsers.choices), "README's command table and `trustwatch --help` disagree"


def test_documentation_index_lists_every_document() -> None:
    section = README.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- \[docs/([^\]]+\.md)\]", section, re.MULTILINE))
    assert listed == {path.name for path in (ROOT / "docs").glob("*.md")}


def test_layout_table_names_every_package_of_exporter() -> None:
    (row,) = [line for line in README.splitlines() if line.startswith("| `exporter/` |")]
    packages = {path.parent.name for path in (ROOT / "exporter").glob("*/__init__.py")}
    missing = {name for name in packages if f"`{name}/`" not in row}
    assert not missing, f"README's layout table does not name exporter/{sorted(missing)}"


def test_examples_are_what_trustwatch_embeds() -> None:
    """README shows examples/; `trustwatch serve` serves exporter/defaults/: they must be the same files."""

    def files(root: Path) -> dict[Path, bytes]:
        return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}

    assert files(ROOT / "examples") == files(ROOT / "exporter" / "defaults")


def _quick_start_blocks() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def test_the_quick_start_runs_in_order_as_a_newcomer_types_it(tmp_path: Path) -> None:
    """Install, look at the metrics, send the example review, look again: the example review must not
    shadow the example reports. Only the addresses differ (the test binds free ports)."""
    install, look, review, *_ci = _quick_start_blocks()
    assert install.strip().endswith("&& trustwatch serve")
    with ServeProcess(tmp_path) as serve:
        poll(lambda: serve.get("/readyz")[0] == 200)
        webhook_port = serve.webhook_url.rsplit(":", 1)[1]

        def typed(block: str) -> str:
            text = block.replace("localhost:8080", serve.metrics_url.removeprefix("http://"))
            text = text.replace("localhost:9443", f"localhost:{webhook_port}")
            text = text.replace("~/.local/state/trustwatch", str(serve.state_dir))
            done = subprocess.run(
                ["bash", "-c", text], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        comments = [line for line in look.splitlines() if line.startswith("# ")]
        expected = [line.removeprefix("# ").split("...") for line in comments]
        assert expected
        before = typed(look.split("\n#", 1)[0])
        for fragments in expected:
            assert any(all(part in line for part in fragments) for line in before.splitlines()), fragments
        answer = json.loads(typed(review))
        assert answer["kind"] == "AdmissionReview" and answer["response"]["uid"]
        assert typed(look.split("\n#", 1)[0]) == before


INTERNAL = re.compile(r"\bthe issue'?s?\b|\bissue #?\d+|\bseed policy\b|\bby the lead\b", re.IGNORECASE)


def test_user_docs_speak_to_users_not_about_how_the_work_was_organised() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found = INTERNAL.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


def test_skip_reasons_speak_to_users() -> None:
    """A skipped test tells whoever runs the suite what is missing, in the same words as the docs."""
    skip = re.compile(r"(?:reason=|pytest\.skip\()\s*f?(\"[^\"]*\"|'[^']*')")
    reasons = [
        (path.name, reason)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for reason in skip.findall(path.read_text(encoding="utf-8"))
    ]
    assert reasons, "no skip reason found: the pattern is stale"
    internal = [(name, reason) for name, reason in reasons if INTERNAL.search(reason)]
    assert not internal, internal
