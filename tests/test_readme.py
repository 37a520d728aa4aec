"""The README stays true: its option table, its example files and its two set-up commands."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from exporter.admission.review import parse_review
from exporter.config import describe_options
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
    assert policy.name == "check-image-signature"
    assert {rule.name for rule in policy.rules} >= {"verify-image", "autogen-verify-image"}


def test_every_linked_document_exists() -> None:
    for target in re.findall(r"\]\(((?:docs|examples|tests)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"


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


def test_user_docs_speak_to_users_not_about_how_the_work_was_organised() -> None:
    internal = re.compile(r"\bthe issue'?s?\b|\bissue #?\d+|\bseed policy\b", re.IGNORECASE)
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found = internal.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"
