"""An ImageValidatingPolicy attestor's ``source`` (``repository``, ``tagPrefix``) at admission, with a real
docker-registry: signatures are read where the attestor says, under cosign's attachment tag prefix."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CollectorRegistry

from exporter.admission.engine import AdmissionEngine
from exporter.admission.review import parse_review
from exporter.admission.verifier import ImageVerifier
from exporter.cosign.discovery import discover, tag_prefix_problem
from exporter.cosign.found import FoundArtifacts
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from exporter.registry import RegistryClient, RegistryOptions, parse_reference
from tests.support.admission import review_body, workload
from tests.support.registry import RegistryServer, needs_registry, public_pem
from tests.support.sigstore_box import SigstoreBox
from tests.test_ivp_parse import ivp, load_one

SIGNER = ec.generate_private_key(ec.SECP256R1())


def test_tag_prefix_must_start_a_valid_tag() -> None:
    assert tag_prefix_problem("") is None
    assert tag_prefix_problem("release_1.2-") is None
    assert tag_prefix_problem("a" * 53) is None
    assert tag_prefix_problem("a" * 54) is not None  # with sha256-<64 hex>.att the tag would pass 128
    for bad in (".v", "-v", "v/1", "v:1"):
        assert tag_prefix_problem(bad) is not None, bad


def test_source_is_parsed_into_the_attestors_options() -> None:
    document = ivp()
    document["spec"]["attestors"][0]["cosign"]["source"] = {
        "repository": "registry.example/sigs",
        "tagPrefix": "v1-",
    }
    options = load_one(document).attestors[0].options
    assert (options.signature_repository, options.signature_tag_prefix) == ("registry.example/sigs", "v1-")


def _policy(registry: RegistryServer, source: dict[str, str] | None) -> list[Any]:
    document = ivp()
    cosign = document["spec"]["attestors"][0]["cosign"]
    cosign["key"]["data"] = public_pem(SIGNER)
    if source is not None:
        cosign["source"] = copy.deepcopy(source)
    return parse_policies(yaml.safe_dump(document), "policy.yaml")


def _allowed(registry: RegistryServer, policies: list[Any], image: str) -> bool:
    async def run() -> bool:
        options = RegistryOptions(insecure_registries=frozenset({registry.host}))
        async with RegistryClient(options) as client:
            metrics = ServiceMetrics(CollectorRegistry())
            verifier = ImageVerifier(client, metrics)
            engine = AdmissionEngine(lambda: policies, verifier, metrics)
            decision = await engine.review(
                "mutate", parse_review(review_body(workload("Pod", "a", "p", image)))
            )
            await verifier.close()
            return decision.response.allowed

    return asyncio.run(run())


@needs_registry[0]
@needs_registry[1]
def test_signatures_are_read_from_the_source_repository_under_the_tag_prefix(
    tmp_path: Path, sigstore_box: SigstoreBox
) -> None:
    with RegistryServer(tmp_path / "registry") as registry:
        digest = registry.push_image("acme/app", "v1")
        signed = sigstore_box.legacy_signature(digest, f"{registry.host}/acme/app", SIGNER)
        registry.push_image("acme/sigs", "placeholder")
        registry.push_signature_layers("acme/sigs", digest, [signed.layer], prefix="v1-")
        image = f"{registry.host}/acme/app:v1"
        sigs = f"{registry.host}/acme/sigs"
        assert _allowed(registry, _policy(registry, {"repository": sigs, "tagPrefix": "v1-"}), image)
        assert not _allowed(registry, _policy(registry, {"repository": sigs}), image)  # no prefix: not there
        assert not _allowed(
            registry, _policy(registry, {"tagPrefix": "v1-"}), image
        )  # the image's repository
        assert not _allowed(registry, _policy(registry, None), image)

        async def found(prefix: str) -> int:
            options = RegistryOptions(insecure_registries=frozenset({registry.host}))
            async with RegistryClient(options) as client:
                artifacts = await discover(
                    client, parse_reference(image), signature_repository=sigs, tag_prefix=prefix
                )
            assert isinstance(artifacts, FoundArtifacts), artifacts
            return len(artifacts.artifacts)

        assert asyncio.run(found("v1-")) == 1
        assert asyncio.run(found("")) == 0
