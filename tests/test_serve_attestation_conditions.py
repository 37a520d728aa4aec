"""A ClusterPolicy checking what attestations say, through a real `trustwatch serve` and a real registry:
images signed with a key carry cosign ``.att`` layers (a SLSA provenance and a vulnerability scan) signed
with the same key; the builder id and the scan's age admit or refuse them. The same with a keyless
attestor: SLSA v1 provenance bundles on OCI referrers, from our own Sigstore under serve's --trusted-root."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.admission import review_body, workload
from tests.support.oci_push import attach_referrer, push_att
from tests.support.reference_verifier import reference_verify
from tests.support.registry import (
    RegistryServer,
    SignatureLayerSpec,
    needs_registry,
    public_pem,
)
from tests.support.serve import ServeProcess
from tests.support.sigstore_box import GITHUB_ISSUER, GitHubWorkflow, Identity, SigstoreBox

pytestmark = needs_registry

SLSA = "https://slsa.dev/provenance/v0.2"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
TRUSTED_BUILDER = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
KEY = ec.generate_private_key(ec.SECP256R1())  # an EC key: SigstoreBox signs attestations with it


def _attestation(kind: str, attestors: list[dict[str, Any]], *condition: str) -> dict[str, Any]:
    """An ``attestations[]`` entry with one condition: key, operator, value, message."""
    written = dict(zip(("key", "operator", "value", "message"), condition, strict=True))
    return {"type": kind, "attestors": attestors, "conditions": [{"all": [written]}]}


def _policy() -> str:
    attestors = [{"entries": [{"keys": {"publicKeys": public_pem(KEY)}}]}]
    policy: dict[str, Any] = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "check-attestations"},
        "spec": {
            "validationFailureAction": "Enforce",
            "background": False,
            "rules": [
                {
                    "name": "provenance-and-scan",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": ["*/acme/*"],
                            "verifyDigest": False,
                            "attestors": attestors,
                            "attestations": [
                                _attestation(
                                    "slsaprovenance",
                                    attestors,
                                    "{{ builder.id }}",
                                    "Equals",
                                    "https://github.com/acme/app/*",
                                    "built outside acme's release workflow",
                                ),
                                _attestation(
                                    "vuln",
                                    attestors,
                                    "{{ time_since('', metadata.scanFinishedOn, '') }}",
                                    "DurationLessThan",
                                    "24h",
                                    "the vulnerability scan is older than a day",
                                ),
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return json.dumps(policy)  # JSON is YAML, and repeats the shared attestors without YAML aliases


def _scan(age: datetime.timedelta) -> dict[str, Any]:
    finished = datetime.datetime.now(datetime.UTC) - age
    return {
        "scanner": {"uri": "pkg:github/aquasecurity/trivy@v0.50.0", "result": {"vulnerabilities": []}},
        "metadata": {
            "scanStartedOn": (finished - datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scanFinishedOn": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def _push(
    registry: RegistryServer, box: SigstoreBox, tag: str, builder: str, scan_age: datetime.timedelta
) -> str:
    """An image signed with KEY, attested (``cosign attest --key``) by a provenance and a scan."""
    digest = registry.push_image("acme/app", tag, tag.encode())
    registry.sign("acme/app", digest, KEY)
    reference = f"{registry.host}/acme/app"
    provenance = box.legacy_attestation(
        digest, reference, KEY, predicate_type=SLSA, predicate={"builder": {"id": builder}}
    )
    scan = box.legacy_attestation(digest, reference, KEY, predicate_type=VULN, predicate=_scan(scan_age))
    push_att(registry, "acme/app", digest, [provenance.layer, scan.layer])
    return f"{reference}:{tag}"


def test_builder_id_and_scan_freshness_admit_and_refuse(tmp_path: Path, sigstore_box: SigstoreBox) -> None:
    fresh, stale = datetime.timedelta(hours=1), datetime.timedelta(days=3)
    with RegistryServer(tmp_path / "registry") as registry:
        trusted = _push(registry, sigstore_box, "trusted", TRUSTED_BUILDER, fresh)
        elsewhere = _push(registry, sigstore_box, "elsewhere", "https://ci.example/untrusted", fresh)
        old_scan = _push(registry, sigstore_box, "old-scan", TRUSTED_BUILDER, stale)
        policy = tmp_path / "policy.yaml"
        policy.write_text(_policy())
        with ServeProcess(
            tmp_path, "--policies", str(policy), "--insecure-registry", registry.host
        ) as serve:  # fmt: skip
            admitted = serve.review(review_body(workload("Pod", "trusted", "prod", trusted)))["response"]
            refused = serve.review(review_body(workload("Pod", "elsewhere", "prod", elsewhere)))["response"]
            outdated = serve.review(review_body(workload("Pod", "old-scan", "prod", old_scan)))["response"]
    assert admitted["allowed"] is True, admitted
    assert refused["allowed"] is False
    message = refused["status"]["message"]
    assert ".attestations[0].attestors[0].entries[0].keys: attestation checks failed for" in message
    assert f"and predicate {SLSA}: built outside acme's release workflow" in message
    assert outdated["allowed"] is False
    message = outdated["status"]["message"]
    assert ".attestations[1].attestors[0].entries[0].keys: attestation checks failed for" in message
    assert f"and predicate {VULN}: the vulnerability scan is older than a day" in message


WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
RELEASE = Identity(WORKFLOW, GITHUB_ISSUER, github=GitHubWorkflow(repository="acme/app"))


def _keyless_policy() -> str:
    keyless = {"subject": "https://github.com/acme/app/*", "issuer": GITHUB_ISSUER}
    attestors = [{"entries": [{"keyless": keyless}]}]
    condition = {"key": "{{ runDetails.builder.id }}", "operator": "Equals", "value": WORKFLOW}
    policy = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "keyless-provenance"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [
                {
                    "name": "provenance",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": ["*/acme/*"],
                            "verifyDigest": False,
                            "attestations": [
                                {
                                    "type": "slsaprovenance1",
                                    "attestors": attestors,
                                    "conditions": [{"any": [condition]}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return json.dumps(policy)


def _push_bundle(registry: RegistryServer, box: SigstoreBox, tag: str, builder: str, root: Path) -> str:
    """An image whose only attestation is a SLSA v1 provenance bundle by the release workflow, naming
    ``builder``, attached as an OCI referrer (``cosign attest --new-bundle-format``); sigstore-python,
    given the same root and identity, verifies the bundle too (the builder is for the policy to judge)."""
    digest = registry.push_image("acme/app", tag, tag.encode())
    provenance = box.image_bundle(
        digest,
        RELEASE,
        predicate_type="https://slsa.dev/provenance/v1",
        predicate={"runDetails": {"builder": {"id": builder}}},
    )
    agreed = reference_verify(
        provenance.json, root, identity=WORKFLOW, issuer=GITHUB_ISSUER, subject_digest=digest
    )
    assert agreed.accepted, agreed.reason
    layer = SignatureLayerSpec(provenance.json, {}, provenance.media_type)
    attach_referrer(registry, "acme/app", digest, provenance.media_type, [layer])
    return f"{registry.host}/acme/app:{tag}"


def test_keyless_provenance_bundles_admit_and_refuse(tmp_path: Path, sigstore_box: SigstoreBox) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        root = sigstore_box.write_trusted_root(tmp_path / "trusted_root.json")
        trusted = _push_bundle(registry, sigstore_box, "trusted", WORKFLOW, root)
        elsewhere = _push_bundle(registry, sigstore_box, "elsewhere", "https://ci.example/untrusted", root)
        unattested = f"{registry.host}/acme/app:bare"
        registry.push_image("acme/app", "bare", b"bare")
        policy = tmp_path / "policy.yaml"
        policy.write_text(_keyless_policy())
        with ServeProcess(
            tmp_path, "--policies", str(policy), "--insecure-registry", registry.host,
            "--trusted-root", str(root),
        ) as serve:  # fmt: skip
            admitted = serve.review(review_body(workload("Pod", "trusted", "prod", trusted)))["response"]
            refused = serve.review(review_body(workload("Pod", "elsewhere", "prod", elsewhere)))["response"]
            missing = serve.review(review_body(workload("Pod", "bare", "prod", unattested)))["response"]
    assert admitted["allowed"] is True, admitted
    assert refused["allowed"] is False
    message = refused["status"]["message"]
    assert ".attestations[0].attestors[0].entries[0].keyless: attestation checks failed for" in message
    assert f"{{{{ runDetails.builder.id }}}} Equals {WORKFLOW}" in message
    assert missing["allowed"] is False
    assert (
        ".attestations[0].attestors[0].entries[0].keyless: attestations not found for predicate type "
        "https://slsa.dev/provenance/v1" in missing["status"]["message"]
    )
