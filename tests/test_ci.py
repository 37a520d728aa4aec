"""CI runs every test: a checkout without the interop vectors beside it fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_refuses_to_run_without_the_interop_vectors(tmp_path: Path) -> None:
    repo = tmp_path / "trustwatch"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    finished = subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 1
    assert f"expected {tmp_path}/shared/interop/cosign-vectors/vectors.json" in finished.stderr


def test_pytest_under_ci_stops_when_the_vectors_are_missing(tmp_path: Path) -> None:
    """The same rule inside pytest, for a CI that calls it directly; the header names the folder."""
    repo = tmp_path / "trustwatch"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "test_nothing.py").write_text("def test_nothing() -> None:\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(repo / "tests")]
    env = {key: value for key, value in os.environ.items() if key != "REQUIRE_INTEROP_VECTORS"}
    missing = f"{tmp_path}/shared/interop/cosign-vectors"
    local = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, check=False)
    assert local.returncode == 0
    assert f"cosign interop vectors not found at {missing}" in local.stdout
    required = {**env, "REQUIRE_INTEROP_VECTORS": "1"}
    ci = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=required, check=False)
    assert ci.returncode != 0
    assert f"required but missing: expected {missing}/vectors.json" in ci.stderr
