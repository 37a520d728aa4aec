"""`trustwatch serve` connected to a Kubernetes API (the in-repo fake, through a kubeconfig).

The real process discovers the report APIs, lists and watches them, and exits 0 on SIGTERM while watches
are open. With ``--report-output kubernetes`` and the fake's admission webhooks and controllers, the
walkthrough runs as on a real cluster: reports name the objects that exist (Pods by their generated
names, with uids), denials are Events, and results go when their resource is deleted.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import kubernetes.client

from tests.support.admission import prepare_walkthrough, review_body, walkthrough_policy_text, workload
from tests.support.background import BackgroundLoop
from tests.support.fake_kube import (
    CLUSTER_RESOURCES,
    NAMESPACES,
    REPORT_RESOURCES,
    AdmissionDeniedError,
    FakeKubeServer,
    report_document,
    report_result,
)
from tests.support.registry import RegistryServer, generate_signing_key, needs_registry, public_pem
from tests.support.serve import ServeProcess, poll
from tests.test_serve import result_count

pytestmark = needs_registry


def test_cluster_reports_and_own_audit_results_round_trip(tmp_path: Path) -> None:
    with BackgroundLoop() as background, RegistryServer(tmp_path / "registry") as registry:
        api = background.enter(FakeKubeServer((*REPORT_RESOURCES, NAMESPACES)))
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

            # A laptop with a kubeconfig writes its audit results locally, never into the cluster.
            pod = workload("Pod", "unsigned", "dev", walkthrough.unsigned)
            answer = serve.review(review_body(pod))["response"]
            assert answer["allowed"] is True
            poll(lambda: result_count(serve, "dev", "check-image-signature", "fail") == 1)
            assert list((serve.state_dir / "reports").glob("*.yaml"))
            assert background.call(api.objects, "wgpolicyk8s.io/v1alpha2", "PolicyReport") != []
            assert [
                report["metadata"]["name"]
                for report in background.call(api.objects, "wgpolicyk8s.io/v1alpha2", "PolicyReport")
            ] == ["trivy-vuln-web"]

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


POLR = "wgpolicyk8s.io/v1alpha2"


def report_of(api: FakeKubeServer, background: BackgroundLoop, namespace: str) -> dict[str, Any]:
    found = background.call(api.get_object, POLR, "PolicyReport", "cpol-check-image-signature", namespace)
    return found or {"results": [], "summary": {}}


def resources_in(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (r["resources"][0]["kind"], r["resources"][0]["name"], r["resources"][0].get("uid", ""), r["result"])
        for r in report["results"]
    )


def test_cluster_walkthrough_reports_what_exists(tmp_path: Path) -> None:
    with BackgroundLoop() as background, RegistryServer(tmp_path / "registry") as registry:
        api = background.enter(FakeKubeServer(CLUSTER_RESOURCES, controllers=True))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        walkthrough = prepare_walkthrough(registry, tmp_path)
        # Results written while trustwatch was down, about things that no longer (or never) existed.
        stale = report_document(
            "cpol-check-image-signature",
            "prod",
            [
                report_result("check-image-signature", "fail", resource=("Deployment", "prod", "unsigned")),
                report_result(
                    "check-image-signature", "fail", resource=("Pod", "prod", "unsigned-d7cbb58d5-")
                ),
            ],
            labels={"app.kubernetes.io/managed-by": "trustwatch"},
        )
        stale["results"][0]["resources"][0]["apiVersion"] = "apps/v1"
        for entry in stale["results"]:
            entry["timestamp"] = {"seconds": int(time.time()) - 3600, "nanos": 0}
        background.call(api.put_object, stale)
        with ServeProcess(
            tmp_path,
            "--kubernetes", "on",
            "--report-output", "kubernetes",
            "--report-cleanup-interval", "1",
            "--policies", str(walkthrough.policy_file),
            "--insecure-registry", registry.host,
            env={"KUBECONFIG": str(kubeconfig)},
        ) as serve:  # fmt: skip
            poll(lambda: serve.get("/readyz")[0] == 200)
            # Reconciled on start: the stale results are gone.
            poll(lambda: report_of(api, background, "prod")["results"] == [])
            background.call(api.register_webhook, serve.webhook_url, serve.ca_file)

            # kubectl create deployment unsigned -n prod: denied, an Event, no result.
            unsigned = workload("Deployment", "unsigned", "prod", walkthrough.unsigned)
            try:
                background.run(api.create(unsigned))
                raise AssertionError("the unsigned Deployment was admitted in prod")
            except AdmissionDeniedError as denied:
                assert "no matching signatures" in denied.status["message"]
            (event,) = poll(lambda: background.call(api.objects, "v1", "Event"))
            assert (event["reason"], event["type"], event["metadata"]["namespace"]) == (
                "PolicyViolation",
                "Warning",
                "prod",
            )
            assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Namespace", "name": "prod"}
            assert event["message"].startswith(
                "Deployment prod/unsigned: [autogen-verify-image] fail (blocked)"
            )

            # kubectl create deployment signed -n prod, unsigned -n dev: admitted; controllers make Pods.
            signed = background.run(api.create(workload("Deployment", "signed", "prod", walkthrough.signed)))
            background.run(api.create(workload("Deployment", "unsigned", "dev", walkthrough.unsigned)))
            background.run(api.settle())
            pods = {p["metadata"]["name"]: p for p in background.call(api.objects, "v1", "Pod")}
            assert len(pods) == 2
            expected_prod = sorted(
                [
                    ("Deployment", "signed", signed["metadata"]["uid"], "pass"),
                    *(
                        (o["kind"], o["metadata"]["name"], o["metadata"]["uid"], "pass")
                        for kind in ("ReplicaSet", "Pod")
                        for o in background.call(
                            api.objects, "apps/v1" if kind == "ReplicaSet" else "v1", kind
                        )
                        if o["metadata"]["namespace"] == "prod"
                    ),
                ]
            )
            poll(lambda: resources_in(report_of(api, background, "prod")) == expected_prod)
            prod_pod = next(name for name, p in pods.items() if p["metadata"]["namespace"] == "prod")
            assert prod_pod.startswith("signed-") and not prod_pod.endswith("-")  # its generated name
            poll(lambda: report_of(api, background, "dev")["summary"].get("fail") == 3)
            poll(lambda: result_count(serve, "prod", "check-image-signature", "fail") == 0)
            poll(lambda: result_count(serve, "prod", "check-image-signature", "pass") == 3)

            # kubectl delete deployment signed -n prod: its ReplicaSet and Pod go too, and their results.
            background.call(api.delete_object, "apps/v1", "Deployment", "signed", "prod")
            poll(lambda: report_of(api, background, "prod")["results"] == [], timeout=30)
            poll(lambda: result_count(serve, "prod", "check-image-signature", "pass") == 0)
            assert report_of(api, background, "dev")["summary"]["fail"] == 3

            # kubectl set image deployment/unsigned test=user/test:signed -n dev: the Deployment's result is
            # replaced; the new ReplicaSet and Pod pass; the old Pod goes (its ReplicaSet stays, at zero).
            patch = {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "test", "image": walkthrough.signed}]}}
                }
            }
            custom = kubernetes.client.CustomObjectsApi(api.api_client())
            custom.patch_namespaced_custom_object("apps", "v1", "dev", "deployments", "unsigned", patch)
            background.run(api.settle())
            dev_objects = [
                (o["kind"], o["metadata"]["name"])
                for version, kind in (("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"), ("v1", "Pod"))
                for o in background.call(api.objects, version, kind)
                if o["metadata"]["namespace"] == "dev"
            ]
            assert len(dev_objects) == 4  # the Deployment, two ReplicaSets, one Pod
            poll(
                lambda: (
                    sorted(
                        (kind, name)
                        for kind, name, _uid, _r in resources_in(report_of(api, background, "dev"))
                    )
                    == sorted(dev_objects)
                )
            )
            results = {
                (kind, result)
                for kind, _name, _uid, result in resources_in(report_of(api, background, "dev"))
            }
            assert results == {
                ("Deployment", "pass"),
                ("ReplicaSet", "fail"),
                ("ReplicaSet", "pass"),
                ("Pod", "pass"),
            }
        assert serve.returncode == 0


def test_an_unreachable_cluster_is_said_once_and_the_webhook_serves_anyway(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": closed}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(walkthrough_policy_text(public_pem(generate_signing_key())))
    with ServeProcess(
        tmp_path,
        "--policies", str(policy),
        "--report-output", "kubernetes",  # the report writer and the reaper retry too
        "--report-cleanup-interval", "0.5",
        env={"KUBECONFIG": str(kubeconfig)},
    ) as serve:  # fmt: skip
        # Admission does not wait for the report watcher: an image no rule selects is admitted at once.
        pod = workload("Pod", "app", "dev", "registry.invalid/app:1")
        pod["spec"] = {"containers": []}
        assert serve.review(review_body(pod))["response"]["allowed"] is True
        said = serve.wait_for_log(lambda e: "cannot reach the Kubernetes API server" in str(e.get("message")))
        assert said["server"] == closed and "--kubernetes off" in said["message"] and said["error"]
        started = time.monotonic()
        poll(lambda: time.monotonic() - started > 5)  # components keep retrying meanwhile
        loud = [e for e in serve.logs if e.get("level") in ("warning", "error", "raw")]
    assert loud == [said], loud
