"""The README walkthrough end to end through a real `trustwatch serve` process.

Signed and unsigned images in a real docker-registry, AdmissionReviews over TLS, Enforce in `prod`, Audit
in `dev`, the audit result written as a PolicyReport file, read back by the watcher and visible in /metrics.
The same walkthrough on a (fake) cluster, with controllers creating Pods and a Deployment deleted, is
``test_cluster_walkthrough_reports_what_exists`` in tests/test_serve_kubernetes.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from tests.support.admission import prepare_walkthrough, review_body, workload
from tests.support.registry import RegistryServer, needs_registry
from tests.support.serve import ServeProcess, poll
from tests.test_serve import result_count

pytestmark = needs_registry


def test_walkthrough_end_to_end(tmp_path: Path) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        walkthrough = prepare_walkthrough(registry, tmp_path)
        signed, unsigned, signed_digest = walkthrough.signed, walkthrough.unsigned, walkthrough.signed_digest
        empty_reports = tmp_path / "cluster-reports"
        empty_reports.mkdir()
        with ServeProcess(
            tmp_path,
            "--policies", str(walkthrough.policy_file),
            "--reports-dir", str(empty_reports),
            "--insecure-registry", registry.host,
        ) as serve:  # fmt: skip
            denied = serve.review(review_body(workload("Deployment", "unsigned", "prod", unsigned)))[
                "response"
            ]
            assert denied["allowed"] is False
            assert denied["status"]["message"].startswith(
                "\n\npolicy Deployment/prod/unsigned for resource violation:"
            )
            assert (
                f"autogen-verify-image: |\n    failed to verify image {unsigned}: "
                ".attestors[0].entries[0].keys: no matching signatures" in denied["status"]["message"]
            )

            admitted = serve.review(review_body(workload("Deployment", "signed", "prod", signed)))["response"]
            assert admitted["allowed"] is True
            assert admitted["patchType"] == "JSONPatch"
            patch = json.loads(base64.b64decode(admitted["patch"]))
            assert {"op": "replace", "path": "/spec/template/spec/containers/0/image",
                    "value": f"{signed}@{signed_digest}"} in patch  # fmt: skip

            audited = serve.review(review_body(workload("Deployment", "unsigned", "dev", unsigned)))[
                "response"
            ]
            assert audited["allowed"] is True
            assert any("no matching signatures" in warning for warning in audited["warnings"])

            # The audit result is written as a PolicyReport file and comes back through the watcher.
            poll(lambda: result_count(serve, "dev", "check-image-signature", "fail") == 1)
            poll(lambda: result_count(serve, "prod", "check-image-signature", "pass") == 1)
            # The denied Deployment never existed: prod reports the signed one only (PASS 1 FAIL 0).
            assert result_count(serve, "prod", "check-image-signature", "fail") == 0
            written = serve.state_dir / "reports"
            documents = [yaml.safe_load(path.read_text()) for path in sorted(written.glob("*.yaml"))]
            prod_report = next(d for d in documents if d["metadata"]["namespace"] == "prod")
            assert prod_report["summary"]["pass"] == 1 and prod_report["summary"]["fail"] == 0
            dev_report = next(d for d in documents if d["metadata"]["namespace"] == "dev")
            assert dev_report["metadata"]["name"] == "cpol-check-image-signature"
            assert dev_report["summary"]["fail"] == 1 and dev_report["summary"]["pass"] == 0
            (result,) = dev_report["results"]
            assert result["properties"] == {"process": "admission review"}
            assert result["resources"][0]["name"] == "unsigned"

            assert (
                serve.sample_value(
                    "trustwatch_admission_denials", policy="check-image-signature", namespace="prod"
                )
                == 1
            )
            assert (
                serve.sample_value(
                    "trustwatch_admission_audit_failures_admitted",
                    policy="check-image-signature",
                    namespace="dev",
                )
                == 1
            )
    assert serve.returncode == 0
