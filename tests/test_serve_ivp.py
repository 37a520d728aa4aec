"""The README walkthrough written as ImageValidatingPolicies, through a real `trustwatch serve` and a real
registry: the same decisions, pins, warnings and reports as the ClusterPolicy, in Kyverno's CEL form."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path
from typing import Any

import yaml

from tests.support.admission import DATA, Walkthrough, prepare_walkthrough, review_body, workload
from tests.support.registry import RegistryServer, needs_registry
from tests.support.serve import ServeProcess, poll
from tests.test_serve import result_count

pytestmark = needs_registry

CLUSTER_POLICY = ("check-image-signature", "check-image-signature")
IMAGE_POLICIES = ("check-image-signature-audit", "check-image-signature-enforce")


def _ivp_file(walkthrough: Walkthrough, directory: Path) -> Path:
    """The walkthrough's key in the ImageValidatingPolicy form of the policy."""
    policy = yaml.safe_load_all(walkthrough.policy_file.read_text())
    [pem] = [
        document["spec"]["rules"][0]["verifyImages"][0]["key"]
        for document in policy
        if document and document.get("kind") == "ClusterPolicy"
    ]
    text = (
        (DATA / "walkthrough-ivp.yaml")
        .read_text()
        .replace("__KEY_PEM__", textwrap.indent(pem.strip(), " " * 10))
    )
    path = directory / "ivp.yaml"
    path.write_text(text)
    return path


def _flow(serve: ServeProcess, walkthrough: Walkthrough, policies: tuple[str, str]) -> dict[str, Any]:
    """Review the walkthrough's workloads; what the API server and the reports would see."""
    signed, unsigned = walkthrough.signed, walkthrough.unsigned
    denied = serve.review(review_body(workload("Deployment", "unsigned", "prod", unsigned)))["response"]
    admitted = serve.review(review_body(workload("Deployment", "signed", "prod", signed)))["response"]
    audited = serve.review(review_body(workload("Deployment", "unsigned", "dev", unsigned)))["response"]
    pinned = workload("Deployment", "signed", "prod", f"{signed}@{walkthrough.signed_digest}")
    validated = serve.review(review_body(pinned), path="/validate")["response"]
    unpinned = serve.review(review_body(workload("Deployment", "signed", "prod", signed)), path="/validate")
    audit_policy, enforce_policy = policies
    poll(lambda: result_count(serve, "dev", audit_policy, "fail") == 1)
    poll(lambda: result_count(serve, "prod", enforce_policy, "pass") == 1)
    return {
        "denied": (denied["allowed"], denied["status"]["code"]),
        "denied_header": denied["status"]["message"].splitlines()[2],
        "admitted": (admitted["allowed"], json.loads(base64.b64decode(admitted["patch"]))),
        "audited": (audited["allowed"], len(audited.get("warnings", []))),
        "validated": validated["allowed"],
        "unpinned": unpinned["response"]["allowed"],
        "reports": {
            "dev_fail": result_count(serve, "dev", audit_policy, "fail"),
            "prod_pass": result_count(serve, "prod", enforce_policy, "pass"),
        },
        "denials": serve.sample_value(
            "trustwatch_admission_denials", policy=enforce_policy, namespace="prod"
        ),
        "audit_admitted": serve.sample_value(
            "trustwatch_admission_audit_failures_admitted", policy=audit_policy, namespace="dev"
        ),
    }


def _serve(tmp_path: Path, name: str, policy: Path, registry: RegistryServer) -> ServeProcess:
    reports = tmp_path / f"{name}-cluster-reports"
    reports.mkdir()
    workdir = tmp_path / name
    workdir.mkdir()
    return ServeProcess(
        workdir,
        "--policies", str(policy),
        "--reports-dir", str(reports),
        "--insecure-registry", registry.host,
    )  # fmt: skip


def test_walkthrough_as_image_validating_policies_decides_like_the_cluster_policy(tmp_path: Path) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        walkthrough = prepare_walkthrough(registry, tmp_path)
        with _serve(tmp_path, "cpol", walkthrough.policy_file, registry) as serve:
            expected = _flow(serve, walkthrough, CLUSTER_POLICY)
        with _serve(tmp_path, "ivpol", _ivp_file(walkthrough, tmp_path), registry) as serve:
            observed = _flow(serve, walkthrough, IMAGE_POLICIES)
            denied = serve.review(
                review_body(workload("Deployment", "unsigned", "prod", walkthrough.unsigned))
            )
            message = denied["response"]["status"]["message"]
            assert "check-image-signature-enforce:\n  autogen-check-image-signature-enforce: |\n" in message
            assert f"image signature verification failed for {walkthrough.unsigned}" in message
            assert (
                serve.sample_value(
                    "trustwatch_admission_policy_results",
                    policy="check-image-signature-enforce",
                    namespace="prod",
                    result="fail",
                    policy_type="ImageValidatingPolicy",
                )
                == 2
            )
            written = serve.state_dir / "reports"
            documents = [yaml.safe_load(path.read_text()) for path in sorted(written.glob("*.yaml"))]
            dev_report = next(d for d in documents if d["metadata"]["namespace"] == "dev")
    assert observed == expected
    assert expected["denied"] == (False, 403)
    assert expected["audited"] == (True, 1)
    assert (expected["validated"], expected["unpinned"]) == (True, False)
    assert dev_report["metadata"]["name"] == "ivpol-check-image-signature-audit"
    (result,) = dev_report["results"]
    assert (result["policy"], result["rule"], result["result"], result["source"]) == (
        "check-image-signature-audit",
        "autogen-check-image-signature-audit",
        "fail",
        "KyvernoImageValidatingPolicy",
    )
    assert result["resources"][0]["name"] == "unsigned"
