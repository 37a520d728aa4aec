"""The one command-line behaviour of every generator of committed files (dashboards, rules, docs tables).

Generated files are committed so users can read and apply them without running anything; each generator
rewrites them, or with ``--check`` only reports the stale ones (as the tests and ``deploy/render.sh --check``
do), so an edit to the source without regenerating fails CI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, render: Callable[[], Mapping[Path, str]], argv: Sequence[str] | None = None) -> int:
    """Write each path of ``render()`` whose content differs; with --check, list them and return 1.

    ``script`` is the generator's ``__file__``: the command the stale-file message tells you to run.
    """
    command = f"python3 {Path(script).resolve().relative_to(ROOT)}"
    parser = argparse.ArgumentParser(
        prog=command, description="Regenerate the committed files this script derives, or check them."
    )
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for target, text in render().items():
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(str(target.relative_to(ROOT)))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run {command}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0
