"""An ImageValidatingPolicy with a keyless attestor and a SLSA provenance attestation, through a real
`trustwatch serve` and a real registry holding bundles minted by our own Sigstore: the builder named in the
verified provenance admits or refuses the image."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from exporter.admission.engine import AdmissionEngine
from exporter.admission.review import parse_review
from exporter.admission.verifier import ImageVerifier
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from exporter.registry import RegistryClient, RegistryOptions
from exporter.sigstore import TrustedRoot, parse_trusted_root
from tests.support.admission import review_body, workload
from tests.support.oci_push import attach_referrer
from tests.support.registry import RegistryServer, SignatureLayerSpec, needs_registry
from tests.support.serve import ServeProcess
from tests.support.sigstore_box import GITHUB_ISSUER, GitHubWorkflow, Identity, SignedBundle, SigstoreBox

pytestmark = needs_registry

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
RELEASE = Identity(WORKFLOW, GITHUB_ISSUER, github=GitHubWorkflow(repository="acme/app"))
SLSA_V1 = "https://slsa.dev/provenance/v1"
TRUSTED_BUILDER = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"


def _policy(trusted_root: str) -> str:
    policy = {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "require-provenance"},
        "spec": {
            "validationActions": ["Deny"],
            "validationConfigurations": {"verifyDigest": False},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "attestors": [
                {
                    "name": "release",
                    "cosign": {
                        "keyless": {"identities": [{"issuer": GITHUB_ISSUER, "subject": WORKFLOW}]},
                        "trustedRoot": trusted_root,
                    },
                }
            ],
            "attestations": [{"name": "slsa", "intoto": {"type": SLSA_V1}}],
            "validations": [
                {
                    "expression": "images.containers.all(i, "
                    "verifyImageSignatures(i, [attestors.release]) > 0)",
                    "message": "not signed by the release workflow",
                },
                {
                    "expression": "images.containers.all(i, "
                    "verifyAttestationSignatures(i, attestations.slsa, [attestors.release]) > 0)",
                    "message": "no SLSA provenance signed by the release workflow",
                },
                {
                    "expression": "images.containers.all(i, "
                    f"extractPayload(i, attestations.slsa).runDetails.builder.id == '{TRUSTED_BUILDER}')",
                    "messageExpression": "'built by ' + images.containers.map(i, "
                    "extractPayload(i, attestations.slsa).runDetails.builder.id).join(', ')",
                },
            ],
        },
    }
    return yaml.safe_dump(policy)


def _layer(signed: SignedBundle) -> list[SignatureLayerSpec]:
    return [SignatureLayerSpec(signed.json, {}, signed.media_type)]


def _push(registry: RegistryServer, box: SigstoreBox, tag: str, builder: str | None) -> str:
    """An image signed by the release workflow, with a SLSA provenance naming ``builder`` (None: none)."""
    digest = registry.push_image("acme/app", tag, tag.encode())
    signature = box.image_bundle(digest, RELEASE)
    attach_referrer(registry, "acme/app", digest, signature.media_type, _layer(signature))
    if builder is not None:
        provenance = box.image_bundle(
            digest, RELEASE, predicate_type=SLSA_V1, predicate={"runDetails": {"builder": {"id": builder}}}
        )
        attach_referrer(registry, "acme/app", digest, provenance.media_type, _layer(provenance))
    return f"{registry.host}/acme/app:{tag}"


def test_slsa_builder_id_admits_and_refuses(tmp_path: Path, sigstore_box: SigstoreBox) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        trusted = _push(registry, sigstore_box, "trusted", TRUSTED_BUILDER)
        elsewhere = _push(registry, sigstore_box, "elsewhere", "https://ci.example/untrusted-builder")
        unattested = _push(registry, sigstore_box, "unattested", None)
        policy = tmp_path / "policy.yaml"
        policy.write_text(_policy(json.dumps(sigstore_box.trusted_root())))
        reports = tmp_path / "cluster-reports"
        reports.mkdir()
        with ServeProcess(
            tmp_path, "--policies", str(policy), "--reports-dir", str(reports),
            "--insecure-registry", registry.host,
        ) as serve:  # fmt: skip
            admitted = serve.review(review_body(workload("Pod", "trusted", "prod", trusted)))["response"]
            refused = serve.review(review_body(workload("Pod", "elsewhere", "prod", elsewhere)))["response"]
            missing = serve.review(review_body(workload("Pod", "unattested", "prod", unattested)))["response"]
    assert admitted["allowed"] is True, admitted
    assert "patch" in admitted  # the verified digest pins the tag
    assert refused["allowed"] is False
    assert textwrap.dedent("""\
        require-provenance:
          require-provenance: |
            built by https://ci.example/untrusted-builder""") in refused["status"]["message"]  # fmt: skip
    assert missing["allowed"] is False
    assert "no SLSA provenance signed by the release workflow" in missing["status"]["message"]


def test_a_keyless_attestor_without_a_trusted_root_uses_the_one_trustwatch_runs_with(
    tmp_path: Path, sigstore_box: SigstoreBox
) -> None:
    """``--trusted-root`` (here: the verifier's root) is what keyless attestors trust unless they name one."""
    policy_document = yaml.safe_load(_policy("{}"))
    del policy_document["spec"]["attestors"][0]["cosign"]["trustedRoot"]
    policies = parse_policies(yaml.safe_dump(policy_document), "policy.yaml")
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    with RegistryServer(tmp_path / "registry") as registry:
        trusted = _push(registry, sigstore_box, "trusted", TRUSTED_BUILDER)

        async def decide(trusted_root: TrustedRoot | None) -> bool:
            options = RegistryOptions(insecure_registries=frozenset({registry.host}))
            async with RegistryClient(options) as client:
                metrics = ServiceMetrics(CollectorRegistry())
                verifier = ImageVerifier(client, metrics, trusted_root=trusted_root)
                engine = AdmissionEngine(lambda: policies, verifier, metrics)
                body = review_body(workload("Pod", "trusted", "prod", trusted))
                decision = await engine.review("mutate", parse_review(body))
                await verifier.close()
                return decision.response.allowed

        assert asyncio.run(decide(root)) is True
        assert asyncio.run(decide(None)) is False  # the shipped public-good root does not trust our box
