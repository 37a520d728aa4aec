"""The trusted_root.json model: the shipped public-good root, a private root, clear errors for bad files."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.sigstore import TrustedRootError, load_trusted_root, parse_trusted_root, public_good_root

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
SHIPPED = Path(__file__).resolve().parents[1] / "exporter/sigstore/data/public-good-trusted_root.json"


def test_public_good_root_has_every_kind_of_trust_material() -> None:
    root = public_good_root()
    assert [log.base_url for log in root.tlogs] == [
        "https://rekor.sigstore.dev",
        "https://log2025-1.rekor.sigstore.dev",
    ]
    rekor = root.tlog(base64.b64decode("wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="))
    assert rekor is not None and rekor.key.algorithm == "ECDSA secp256r1"
    assert root.tlogs[1].key.algorithm == "Ed25519"
    first_ca, current_ca = root.certificate_authorities
    assert first_ca.valid.covers(datetime(2021, 10, 20, tzinfo=UTC))
    assert not first_ca.valid.covers(datetime(2023, 1, 1, tzinfo=UTC))
    assert current_ca.valid.end is None and len(current_ca.chain) == 2
    assert current_ca.root.subject == current_ca.root.issuer
    assert len(root.ctlogs) == 2 and len(root.timestamp_authorities) == 1


@pytest.mark.skipif(not VECTORS.is_dir(), reason="interop vectors not present")
def test_shipped_root_is_sigstores_production_root() -> None:
    assert SHIPPED.read_bytes() == (VECTORS / "_trust/public-good-trusted_root.json").read_bytes()
    rekor_pem = (VECTORS / "_trust/rekor-public-good.pub").read_text().strip()
    assert public_good_root().tlogs[0].key.pem == rekor_pem


def test_private_root_from_a_file(tmp_path: Path) -> None:
    document = json.loads(SHIPPED.read_text())
    document["tlogs"] = document["tlogs"][:1]
    path = tmp_path / "private.json"
    path.write_text(json.dumps(document))
    root = load_trusted_root(path)
    assert root.source == str(path) and len(root.tlogs) == 1


def _broken(change: str) -> bytes:
    document = json.loads(SHIPPED.read_text())
    if change == "media type":
        document["mediaType"] = "application/json"
    elif change == "log id":
        document["tlogs"][0]["logId"]["keyId"] = base64.b64encode(b"\0" * 32).decode()
    elif change == "certificate":
        document["certificateAuthorities"][0]["certChain"]["certificates"][0]["rawBytes"] = "AAAA"
    elif change == "window":
        document["ctlogs"][0]["publicKey"]["validFor"] = {"start": "yesterday"}
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("media type", "mediaType must be"),
        ("log id", "tlogs[0].logId.keyId is not the SHA-256"),
        ("certificate", "certificateAuthorities[0].certChain.certificates[0]: not a DER certificate"),
        ("window", "ctlogs[0].publicKey.validFor.start: 'yesterday' is not an RFC 3339 timestamp"),
    ],
)
def test_bad_roots_name_the_field(change: str, message: str) -> None:
    with pytest.raises(TrustedRootError, match=r"^mine\.json: ") as raised:
        parse_trusted_root(_broken(change), "mine.json")
    assert message in str(raised.value)


def test_unreadable_and_non_json_roots(tmp_path: Path) -> None:
    with pytest.raises(TrustedRootError, match="cannot read trusted root"):
        load_trusted_root(tmp_path / "missing.json")
    with pytest.raises(TrustedRootError, match="not JSON"):
        parse_trusted_root(b"\xff{", "bad.json")


def test_verification_docs_name_the_shipped_roots_hash() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs/verification.md").read_text()
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() in docs


def test_trust_checks_do_not_import_sigstore_python() -> None:
    """sigstore-python is the tests' reference verifier only: the service must start without it."""
    code = (
        "import sys, exporter.sigstore; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sigstore'))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": str(root)},
    )
    assert result.stdout.strip() == "[]"
