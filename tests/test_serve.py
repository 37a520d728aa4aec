"""`trustwatch serve` as a user runs it: a real child process, port 0, files, readiness, signals."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import pytest

from tests.support.admission import walkthrough_policy_text
from tests.support.registry import generate_signing_key, public_pem
from tests.support.serve import ServeProcess, iter_samples, poll

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "reports"


def result_count(serve: ServeProcess, namespace: str, policy: str, status: str) -> float:
    families = serve.metric_families()
    return sum(
        value
        for labels, value in iter_samples(families, "trustwatch_policy_report_results")
        if labels["namespace"] == namespace and labels["policy"] == policy and labels["status"] == status
    )


def test_default_serve_shows_the_embedded_examples(tmp_path: Path) -> None:
    """README's first command: no cluster, no flags beyond addresses -> example metrics and a webhook."""
    with ServeProcess(tmp_path) as serve:
        poll(lambda: serve.get("/readyz")[0] == 200)
        assert result_count(serve, "dev", "check-image-signature", "fail") == 1
        assert result_count(serve, "prod", "check-image-signature", "pass") == 1
        assert result_count(serve, "prod", "CVE-2023-23914", "fail") == 1
        cluster = serve.metric_families()["trustwatch_cluster_policy_report_results"]
        assert {s.labels["rule"]: s.value for s in cluster.samples if s.labels["status"] == "fail"} == {
            "4.2.4": 1
        }
        assert serve.webhook_url.startswith("https://127.0.0.1:")
        assert serve.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert serve.get("/healthz") == (200, "ok\n")
        status, exposition = serve.get("/metrics")
        assert status == 200 and "trustwatch_admission_requests" in exposition
        assert "_created" not in exposition  # they doubled the series count for no use
    assert serve.returncode == 0
    assert any(entry.get("message") == "stopped" for entry in serve.logs)


def test_not_ready_until_first_sync_and_bad_report_files_skipped(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "good.yaml").write_text((EXAMPLES / "walkthrough.yaml").read_text())
    (reports / "broken.yaml").write_text("kind: PolicyReport\nresults: [\n")
    with ServeProcess(tmp_path, "--reports-dir", str(reports), "--webhook", "off") as serve:
        _status, body = poll(lambda: (answer := serve.get("/readyz"))[0] == 200 and answer)
        (check,) = json.loads(body)["checks"].items()
        assert check[0] == "local-reports"
        assert check[1] == "ok: report files: 1 skipped as unreadable (named in the log)"
        assert str(tmp_path) not in body  # /readyz is unauthenticated: no file system paths
        assert result_count(serve, "dev", "check-image-signature", "fail") == 1
        assert serve.sample_value("trustwatch_report_files_skipped") == 1
        assert "webhook" not in " ".join(str(entry.get("message")) for entry in serve.logs)


def _start_up_failure(serve: ServeProcess) -> str:
    """Start ``serve``, which must stop with exit code 2 before it is up; its log messages, joined."""
    with pytest.raises(AssertionError, match="exited"):
        serve.__enter__()
    assert serve.process is not None
    assert serve.process.wait(30) == 2
    raw = " ".join(str(entry.get("message")) for entry in serve.logs)
    assert "trustwatch serve:" in raw
    return raw


def test_configuration_errors_exit_2_with_the_reason(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(walkthrough_policy_text("not a key").replace("verifyDigest: true", "notary: {}"))
    raw = _start_up_failure(ServeProcess(tmp_path, "--policies", str(policy)))
    assert "policy.yaml" in raw


def test_an_unusable_trusted_root_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(walkthrough_policy_text(public_pem(generate_signing_key())))
    root = tmp_path / "mine.json"
    root.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": 3}')
    raw = _start_up_failure(ServeProcess(tmp_path, "--policies", str(policy), "--trusted-root", str(root)))
    assert "mine.json" in raw


@pytest.mark.parametrize("option", ["--metrics-address", "--webhook-address"])
def test_a_busy_port_names_the_option_that_chose_it(tmp_path: Path, option: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        serve = ServeProcess(tmp_path, "--kubernetes", "off", option, busy)
        with contextlib.suppress(AssertionError):  # it may exit before or after the status server listens
            serve.__enter__()
        assert serve.process is not None
        assert serve.process.wait(30) == 2
    raw = " ".join(str(entry.get("message")) for entry in serve.logs)
    assert f"{option} {busy}: cannot listen" in raw
    assert f"choose a free address with {option}" in raw
