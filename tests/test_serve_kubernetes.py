"""`trustwatch serve` connected to a Kubernetes API (the in-repo fake, through a kubeconfig).

The real process discovers the report APIs, lists and watches them, writes its own audit results as
PolicyReports through the API, reads them back through its watch, and exits 0 on SIGTERM while watches
are open.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.admission import prepare_walkthrough, review_body, workload
from tests.support.background import BackgroundLoop
from tests.support.fake_kube import FakeKubeServer, report_document, report_result
from tests.support.registry import RegistryServer, needs_registry
from tests.support.serve import ServeProcess, poll
from tests.test_serve import result_count

pytestmark = needs_registry


def test_cluster_reports_and_own_audit_results_round_trip(tmp_path: Path) -> None:
    with BackgroundLoop() as background, RegistryServer(tmp_path / "registry") as registry:
        api = background.enter(FakeKubeServer())
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        background.call(
            api.put_object,
            report_document(
                "trivy-vuln-web",
                "team-a",
                [report_result("CVE-2024-0001", "fail", severity="critical", source="Trivy Vulnerability")],
            ),
        )
        walkthrough = prepare_walkthrough(registry, tmp_path)
        with ServeProcess(
            tmp_path,
            "--kubernetes", "on",
            "--policies", str(walkthrough.policy_file),
            "--insecure-registry", registry.host,
            env={"KUBECONFIG": str(kubeconfig)},
        ) as serve:  # fmt: skip
            poll(lambda: serve.get("/readyz")[0] == 200)
            assert result_count(serve, "team-a", "CVE-2024-0001", "fail") == 1
            assert any("kubeconfig" in str(entry.get("cluster")) for entry in serve.logs)

            # An update and a deletion through the watch.
            background.call(
                api.put_object,
                report_document("trivy-vuln-web", "team-a", [report_result("CVE-2024-0001", "pass")]),
            )
            poll(lambda: result_count(serve, "team-a", "CVE-2024-0001", "pass") == 1)
            assert result_count(serve, "team-a", "CVE-2024-0001", "fail") == 0

            # An Audit failure at admission becomes a PolicyReport in the API, then a metric.
            pod = workload("Pod", "unsigned", "dev", walkthrough.unsigned)
            answer = serve.review(review_body(pod))["response"]
            assert answer["allowed"] is True
            written = poll(
                lambda: background.call(
                    api.get_object,
                    "wgpolicyk8s.io/v1alpha2",
                    "PolicyReport",
                    "cpol-check-image-signature",
                    "dev",
                )
            )
            assert written["summary"]["fail"] == 1
            assert written["results"][0]["resources"][0]["name"] == "unsigned"
            poll(lambda: result_count(serve, "dev", "check-image-signature", "fail") == 1)
            assert not (serve.state_dir / "reports").exists()

            background.call(
                api.delete_object, "wgpolicyk8s.io/v1alpha2", "PolicyReport", "trivy-vuln-web", "team-a"
            )
            poll(lambda: result_count(serve, "team-a", "CVE-2024-0001", "pass") == 0)
            assert background.call(lambda: api.active_watches) > 0
        assert serve.returncode == 0


def test_not_ready_while_a_report_api_is_forbidden_and_says_why(tmp_path: Path) -> None:
    with BackgroundLoop() as background:
        api = background.enter(FakeKubeServer())
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        background.call(api.fail_next, 10_000, 403, "clusterpolicyreports")
        with ServeProcess(
            tmp_path, "--kubernetes", "on", "--webhook", "off", env={"KUBECONFIG": str(kubeconfig)}
        ) as serve:
            status, body = poll(lambda: (answer := serve.get("/readyz"))[1] and "403" in answer[1] and answer)
            assert status == 503
            detail = json.loads(body)["checks"]["kubernetes-reports"]
            assert detail.startswith("not ready: ")
            assert "ClusterPolicyReport" in detail
            background.call(api.clear_failures)
            poll(lambda: serve.get("/readyz")[0] == 200)
        assert serve.returncode == 0


def test_a_cluster_without_report_apis_is_ready_and_says_so(tmp_path: Path) -> None:
    with BackgroundLoop() as background:
        api = background.enter(FakeKubeServer(groups_present=[]))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        with ServeProcess(
            tmp_path, "--kubernetes", "on", "--webhook", "off", env={"KUBECONFIG": str(kubeconfig)}
        ) as serve:
            _status, body = poll(lambda: (answer := serve.get("/readyz"))[0] == 200 and answer)
            detail = json.loads(body)["checks"]["kubernetes-reports"]
            assert detail.startswith("ok: none of the report APIs is served by this cluster")
            assert "install the PolicyReport (wgpolicyk8s.io) or openreports.io CRDs" in detail
            assert "wgpolicyk8s.io/v1alpha2/PolicyReport: missing" in detail
            assert "openreports.io/v1alpha1/Report: missing" in detail
