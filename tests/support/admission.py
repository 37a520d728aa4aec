"""Builders for admission tests: the walkthrough policy with a chosen key, workloads, AdmissionReviews."""

from __future__ import annotations

import json
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.admission.cache import Lookup
from exporter.admission.verifier import Decide, ImageOutcome
from exporter.policy.loader import parse_policies
from exporter.policy.model import ImageVerification, KyvernoPolicy
from tests.support.registry import RegistryServer, generate_signing_key, public_pem

DATA = Path(__file__).resolve().parent.parent / "data" / "admission"


class ByImageVerifier:
    """A test double of the engine's verifier (:class:`exporter.admission.engine.Verifier`) whose outcome
    depends on the image alone: subclasses write :meth:`answer`, which both policy kinds' checks call.
    Nothing is cached."""

    def cached(self, policy_version: str, rule: str, index: int, image: str) -> ImageOutcome | None:
        return None

    async def verify(
        self, policy_version: str, rule: str, index: int, verification: ImageVerification, image: str
    ) -> tuple[ImageOutcome, Lookup]:
        return await self.answer(image)

    async def verify_decided(
        self,
        policy_version: str,
        slot: str,
        image: str,
        path: str,
        decide: Decide,
        *,
        signature_repository: str | None = None,
        tag_prefix: str = "",
    ) -> tuple[ImageOutcome, Lookup]:
        return await self.answer(image)

    async def answer(self, image: str) -> tuple[ImageOutcome, Lookup]:
        raise NotImplementedError(f"{type(self).__name__} must say what verifying an image gives")


def walkthrough_policy_text(public_pem: str, **replacements: str) -> str:
    """The walkthrough article's ClusterPolicy with ``public_pem`` as its key; ``replacements`` edit lines."""
    text = (DATA / "walkthrough-policy.yaml").read_text(encoding="utf-8")
    text = text.replace("__KEY_PEM__", textwrap.indent(public_pem.strip(), " " * 8))
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def walkthrough_policy(public_pem: str, **replacements: str) -> list[KyvernoPolicy]:
    policies = parse_policies(walkthrough_policy_text(public_pem, **replacements), "walkthrough-policy.yaml")
    return [policy for policy in policies if isinstance(policy, KyvernoPolicy)]


def workload(kind: str, name: str, namespace: str, image: str) -> dict[str, Any]:
    """A Pod, Deployment or CronJob running ``image`` (from tests/data/admission/<kind>.yaml)."""
    text = (DATA / f"{kind.lower()}.yaml").read_text(encoding="utf-8")
    text = text.replace("NAMESPACE", namespace).replace("NAME", name).replace("IMAGE", image)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def review_body(
    obj: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    api_version: str = "admission.k8s.io/v1",
) -> bytes:
    """An AdmissionReview for ``obj`` as the API server sends it."""
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    request = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "resource": {"group": group, "version": version, "resource": obj["kind"].lower() + "s"},
        "operation": operation,
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"].get("namespace", ""),
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "userInfo": {"username": "kubernetes-admin"},
    }
    return json.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "request": request}).encode()


@dataclass(frozen=True)
class Walkthrough:
    """The README walkthrough set up in a real registry: image references and the policy file."""

    signed: str
    unsigned: str
    signed_digest: str
    policy_file: Path


def prepare_walkthrough(registry: RegistryServer, directory: Path) -> Walkthrough:
    """Push ``user/test:signed`` (signed with a fresh key) and ``user/test:unsigned``; write the policy."""
    key = generate_signing_key()
    digest = registry.push_image("user/test", "signed")
    registry.sign("user/test", digest, key)
    registry.push_image("user/test", "unsigned")
    policy_file = directory / "policy.yaml"
    policy_file.write_text(walkthrough_policy_text(public_pem(key)))
    return Walkthrough(
        f"{registry.host}/user/test:signed", f"{registry.host}/user/test:unsigned", digest, policy_file
    )
