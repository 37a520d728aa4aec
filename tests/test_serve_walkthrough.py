"""The README walkthrough end to end through a real `trustwatch serve` process.

Signed and unsigned images in a real docker-registry, AdmissionReviews over TLS, Enforce in `prod`, Audit
in `dev`, the audit result written as a PolicyReport file, read back by the watcher and visible in /metrics.
The same walkthrough on a (fake) cluster, with controllers creating Pods and a Deployment deleted, is
``test_cluster_walkthrough_reports_what_exists`` in tests/test_serve_kubernetes.py. The same flow with
today's signatures (cosign 3 bundles on referrers, key-based and keyless, and a legacy keyless ``.sig``) is
``test_walkthrough_with_cosign3_layouts_and_keyless``.
"""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.admission import prepare_walkthrough, review_body, workload
from tests.support.oci_push import attach_referrer
from tests.support.reference_verifier import reference_verify
from tests.support.registry import RegistryServer, SignatureLayerSpec, needs_registry, public_pem
from tests.support.serve import ServeProcess, poll
from tests.support.sigstore_box import GITHUB_ISSUER, GitHubWorkflow, Identity, SignedBundle, SigstoreBox
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


WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
RELEASE = Identity(WORKFLOW, GITHUB_ISSUER, github=GitHubWorkflow(repository="acme/app"))
INTRUDER = Identity("https://github.com/intruder/app/.github/workflows/x.yml@refs/heads/main", GITHUB_ISSUER)

COSIGN3_POLICY = """
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image-signature
spec:
  failurePolicy: Fail
  validationFailureAction: Audit
  validationFailureActionOverrides:
  - action: Enforce
    namespaces: [prod]
  rules:
  - name: verify-image
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ['*']
      attestors:
      - count: 1
        entries:
        - keys:
            publicKeys: |-
__KEY_PEM__
        - keyless:
            subject: https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*
            issuer: https://token.actions.githubusercontent.com
            additionalExtensions:
              githubWorkflowRepository: acme/app
"""


def _attach_bundle(registry: RegistryServer, repo: str, digest: str, bundle: SignedBundle) -> None:
    """cosign 3 on a registry without the referrers API: the bundle as a referrer, listed in the
    ``sha256-<hex>`` fallback index."""
    layer = SignatureLayerSpec(bundle.json, {}, bundle.media_type)
    attach_referrer(registry, repo, digest, bundle.media_type, [layer])


def test_walkthrough_with_cosign3_layouts_and_keyless(tmp_path: Path, sigstore_box: SigstoreBox) -> None:
    """The walkthrough's flow (Enforce in prod, Audit in dev) with what signers make today: cosign 3's
    key-signed bundle on a referrer, a keyless bundle on a referrer, a legacy keyless ``.sig``; our own
    Sigstore's trusted root given to serve with --trusted-root."""
    key = ec.generate_private_key(ec.SECP256R1())
    root = sigstore_box.write_trusted_root(tmp_path / "trusted_root.json")
    with RegistryServer(tmp_path / "registry") as registry:
        host = registry.host
        images: dict[str, str] = {}
        for name in ("key-bundle", "keyless-bundle", "keyless-sig", "intruder", "unsigned"):
            digest = registry.push_image(f"acme/{name}", "v1")
            images[name] = digest
        _attach_bundle(
            registry,
            "acme/key-bundle",
            images["key-bundle"],
            sigstore_box.image_bundle(images["key-bundle"], key),
        )
        keyless = sigstore_box.image_bundle(images["keyless-bundle"], RELEASE)
        _attach_bundle(registry, "acme/keyless-bundle", images["keyless-bundle"], keyless)
        intruder_bundle = sigstore_box.image_bundle(images["intruder"], INTRUDER)
        # sigstore-python, given the same root and the policy's identity, agrees on both keyless bundles
        agreed = reference_verify(
            keyless.json,
            root,
            identity=WORKFLOW,
            issuer=GITHUB_ISSUER,
            subject_digest=images["keyless-bundle"],
        )
        assert agreed.accepted, agreed.reason
        refused = reference_verify(
            intruder_bundle.json,
            root,
            identity=WORKFLOW,
            issuer=GITHUB_ISSUER,
            subject_digest=images["intruder"],
        )
        assert not refused.accepted
        legacy = sigstore_box.legacy_signature(images["keyless-sig"], f"{host}/acme/keyless-sig", RELEASE)
        registry.push_signature_layers("acme/keyless-sig", images["keyless-sig"], [legacy.layer])
        _attach_bundle(registry, "acme/intruder", images["intruder"], intruder_bundle)
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            COSIGN3_POLICY.replace("__KEY_PEM__", textwrap.indent(public_pem(key).strip(), " " * 14))
        )
        reports = tmp_path / "cluster-reports"
        reports.mkdir()
        with ServeProcess(
            tmp_path,
            "--policies", str(policy),
            "--reports-dir", str(reports),
            "--insecure-registry", host,
            "--trusted-root", str(root),
        ) as serve:  # fmt: skip
            for name in ("key-bundle", "keyless-bundle", "keyless-sig"):
                image = f"{host}/acme/{name}:v1"
                admitted = serve.review(review_body(workload("Pod", name, "prod", image)))["response"]
                assert admitted["allowed"] is True, (name, admitted)
                patch = json.loads(base64.b64decode(admitted["patch"]))
                pinned = f"{image}@{images[name]}"
                assert {"op": "replace", "path": "/spec/containers/0/image", "value": pinned} in patch

            unsigned = f"{host}/acme/unsigned:v1"
            denied = serve.review(review_body(workload("Pod", "unsigned", "prod", unsigned)))["response"]
            assert denied["allowed"] is False
            message = denied["status"]["message"]
            assert (
                f"failed to verify image {unsigned}: .attestors[0].entries[0].keys: no matching signatures"
                in message
            )
            assert ".attestors[0].entries[1].keyless: no matching signatures" in message

            intruder = f"{host}/acme/intruder:v1"
            denied = serve.review(review_body(workload("Pod", "intruder", "prod", intruder)))["response"]
            assert denied["allowed"] is False
            assert ".attestors[0].entries[1].keyless: no matching signatures" in denied["status"]["message"]
            assert "intruder" in denied["status"]["message"]

            audited = serve.review(review_body(workload("Pod", "intruder", "dev", intruder)))["response"]
            assert audited["allowed"] is True
            assert any("no matching signatures" in warning for warning in audited["warnings"])
            poll(lambda: result_count(serve, "dev", "check-image-signature", "fail") == 1)
            poll(lambda: result_count(serve, "prod", "check-image-signature", "pass") == 3)
    assert serve.returncode == 0
