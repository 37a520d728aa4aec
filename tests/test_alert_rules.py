"""Alerting rules: valid for promtool, unit-tested per alert, documented, reading only defined metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import ALL_METRICS
from tests.support.promql import metric_names

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "trustwatch-rules.yaml"
RULE_TESTS = RULES_DIR / "trustwatch-rules.test.yaml"
RUNBOOK = ROOT / "docs" / "alerts.md"
DEFINED_SERIES = {name for spec in ALL_METRICS for name in spec.series_names()}
# The alerts users are promised (docs/alerts.md has a runbook for each), by alert name.
REQUIRED_ALERTS = {
    "TrustwatchEnforcementDenied",
    "TrustwatchDenialSpike",
    "TrustwatchUnsignedImageAdmitted",
    "TrustwatchFailOpenAdmission",
    "TrustwatchWebhookLatencyHigh",
    "TrustwatchWebhookLatencyCritical",
    "TrustwatchWebhookErrors",
    "TrustwatchReportWatchDown",
    "TrustwatchReportWatchStale",
    "TrustwatchPolicyLoadFailed",
    "TrustwatchCertificateExpiringSoon",
    "TrustwatchConnectionsRefused",
    "TrustwatchConnectionFlood",
    "TrustwatchAbsent",
}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus); .ci/run installs it")
    return path


def test_every_promised_alert_exists_once() -> None:
    names = [alert["alert"] for alert in _alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_alert_has_severity_summary_description_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in {"info", "warning", "critical"}
    annotations = alert["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook"] == f"docs/alerts.md#{alert['alert'].lower()}"


def test_latency_alerts_use_the_issue_thresholds() -> None:
    by_name = {alert["alert"]: alert for alert in _alerts()}
    assert re.search(r"\)\s*>\s*1\s*$", by_name["TrustwatchWebhookLatencyHigh"]["expr"])
    assert by_name["TrustwatchWebhookLatencyHigh"]["labels"]["severity"] == "warning"
    assert re.search(r"\)\s*>\s*5\s*$", by_name["TrustwatchWebhookLatencyCritical"]["expr"])
    assert by_name["TrustwatchWebhookLatencyCritical"]["labels"]["severity"] == "critical"
    assert "14 * 86400" in by_name["TrustwatchCertificateExpiringSoon"]["expr"]


def test_denial_alert_keeps_policy_and_namespace_for_routing() -> None:
    denied = next(alert for alert in _alerts() if alert["alert"] == "TrustwatchEnforcementDenied")
    assert re.search(r"by \(namespace, policy, rule\)", denied["expr"])


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_every_metric_an_alert_reads_is_defined(alert: dict[str, Any]) -> None:
    names = metric_names(alert["expr"])
    assert names, f"{alert['alert']} reads no metric"
    assert names <= DEFINED_SERIES, f"{alert['alert']} reads undefined metrics {names - DEFINED_SERIES}"


def test_every_alert_has_a_unit_test_that_fires_and_one_that_stays_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
    assert fired <= names and quiet <= names, "tests name alerts that do not exist"


def test_runbook_has_a_section_with_meaning_severity_triage_and_fix_for_every_alert() -> None:
    text = RUNBOOK.read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL))
    for alert in _alerts():
        name = alert["alert"]
        assert name in sections, f"docs/alerts.md has no section for {name}"
        for part in ("**Meaning**", "**Severity**", "**Triage**", "**Fix**"):
            assert part in sections[name], f"{name} runbook lacks {part}"
        assert alert["labels"]["severity"] in sections[name].split("**Severity**")[1].split("\n")[0]


@pytest.mark.prometheus
def test_promtool_check_rules_passes() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULES_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness can fail: flip one expectation and promtool must report it."""
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(RULES)]
    first_quiet = next(
        check
        for case in tests["tests"]
        for check in case["alert_rule_test"]
        if not check["exp_alerts"] and check["alertname"] == "TrustwatchEnforcementDenied"
    )
    first_quiet["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [_promtool(), "test", "rules", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "TrustwatchEnforcementDenied" in result.stdout + result.stderr


def test_prometheusrule_manifest_and_chart_copy_hold_the_same_rules() -> None:
    result = subprocess.run(
        ["python3", str(RULES_DIR / "build.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((RULES_DIR / "prometheusrule.yaml").read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1" and manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    chart_copy = ROOT / "deploy" / "helm" / "trustwatch" / "files" / "trustwatch-rules.yaml"
    assert chart_copy.read_text() == RULES.read_text()


@pytest.mark.prometheus
def test_prometheus_config_example_in_deploy_docs_is_valid(tmp_path: Path) -> None:
    """docs/deploy.md's plain-Prometheus scrape config (with the real rules file) passes promtool."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    configs = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
        if "scrape_configs:" in block
    ]
    assert len(configs) == 1
    config = configs[0]
    assert config["scrape_configs"][0]["honor_labels"] is True
    config["rule_files"] = [str(RULES)]
    job = config["scrape_configs"][0]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    # Debian builds Prometheus without Kubernetes service discovery; check everything else of the job.
    job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    del job["kubernetes_sd_configs"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [_promtool(), "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
