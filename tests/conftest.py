"""Suite-wide pytest configuration.

The cosign interop vectors live beside the repository (``../shared/interop/cosign-vectors``), not in it.
Outside CI their tests skip and the run's header names the missing folder once; under ``.ci/run``
(``REQUIRE_INTEROP_VECTORS=1``) a missing folder stops the run instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.sigstore_box import SigstoreBox


INTEROP_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "interop" / "cosign-vectors"


def _vectors_present() -> bool:
    return (INTEROP_VECTORS / "vectors.json").is_file()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("REQUIRE_INTEROP_VECTORS") == "1" and not _vectors_present():
        raise pytest.UsageError(
            f"the cosign interop vectors are required but missing: expected {INTEROP_VECTORS}/vectors.json"
        )


def pytest_report_header(config: pytest.Config) -> str | None:
    if _vectors_present():
        return None
    return f"cosign interop vectors not found at {INTEROP_VECTORS}: the tests that read them are skipped"


@pytest.fixture(scope="session")
def sigstore_box() -> SigstoreBox:
    """One minted Sigstore (Fulcio, CT log, Rekor v1/v2, TSA) for the whole session: see sigstore_box.py."""
    # Imported here so that this conftest also works alone (tests/test_ci.py runs it in an empty checkout).
    from tests.support.sigstore_box import shared_box  # noqa: PLC0415

    return shared_box()
