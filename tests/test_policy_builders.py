"""Builders for policy tests: Kyverno policy documents, resources and Kubernetes objects (no tests here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exporter.policy import KyvernoPolicy, PolicyLoadError, ResourceInfo, parse_policies

POLICY_DIR = Path(__file__).parent / "data" / "policies"
WALKTHROUGH_POLICY = POLICY_DIR / "check-image-signature.yaml"
AUTOGEN_ANNOTATION = "pod-policies.kyverno.io/autogen-controllers"
# The kinds of an autogen-<rule> for Kyverno's default controllers, in Kyverno's (sorted-by-kind) order.
CONTROLLER_KINDS = (
    "apps/v1/DaemonSet",
    "apps/v1/Deployment",
    "batch/v1/Job",
    "apps/v1/ReplicaSet",
    "v1/ReplicationController",
    "apps/v1/StatefulSet",
)

# Generated test keys (public halves only); the first is the one in the walkthrough policy file.
PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEOtsS35ZALk2z401w2i/63UsQwgmB
vWERNWWF+mkvLuTJitTY6L4pLyFd+TdSi0OSkZB+uyt7wWavhFq6vQCrJA==
-----END PUBLIC KEY-----"""
SECOND_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEX2n97+BIDCF2zeaqT59Fl6Chh39u
6b4V4NeoKaXgwpBgP9WJHy9+v0jXYjOiqP6clQOO+PXKTc7P81Z8I9njVw==
-----END PUBLIC KEY-----"""


def verification(**fields: Any) -> dict[str, Any]:
    """A current-syntax verifyImages entry covering every image with PUBLIC_KEY."""
    return {
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keys": {"publicKeys": PUBLIC_KEY}}]}],
        **fields,
    }


def rule(name: str = "check", kinds: tuple[str, ...] = ("Pod",), **fields: Any) -> dict[str, Any]:
    """A verifyImages rule matching ``kinds`` through match.any."""
    return {
        "name": name,
        "match": {"any": [{"resources": {"kinds": list(kinds)}}]},
        "verifyImages": [verification()],
        **fields,
    }


def policy(
    *rules: dict[str, Any],
    kind: str = "ClusterPolicy",
    name: str = "p",
    namespace: str | None = None,
    annotations: dict[str, str] | None = None,
    api_version: str = "kyverno.io/v1",
    **spec: Any,
) -> dict[str, Any]:
    """A policy document with ``rules`` (default: one Pod rule) and extra ``spec`` fields."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "spec": {"rules": list(rules) or [rule()], **spec},
    }


def load(document: dict[str, Any]) -> KyvernoPolicy:
    """Parse one Kyverno policy document (as JSON, which is YAML too)."""
    (parsed,) = parse_policies(json.dumps(document), "test.yaml")
    assert isinstance(parsed, KyvernoPolicy), f"{document.get('kind')} is not a ClusterPolicy/Policy"
    return parsed


def load_error(document: dict[str, Any]) -> PolicyLoadError:
    """The error parsing ``document`` raises."""
    with pytest.raises(PolicyLoadError) as caught:
        parse_policies(json.dumps(document), "test.yaml")
    return caught.value


def walkthrough_policy() -> KyvernoPolicy:
    """The walkthrough ClusterPolicy (tests/data/policies: no annotations, a generated test key)."""
    (parsed,) = parse_policies(WALKTHROUGH_POLICY.read_text(), str(WALKTHROUGH_POLICY))
    assert isinstance(parsed, KyvernoPolicy)
    return parsed


def resource(
    kind: str = "Pod",
    namespace: str | None = "dev",
    name: str = "web",
    group: str = "",
    version: str = "v1",
    **fields: Any,
) -> ResourceInfo:
    """A ResourceInfo for matching tests."""
    return ResourceInfo(kind=kind, group=group, version=version, name=name, namespace=namespace, **fields)


def pod_spec(*images: str, init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Pod spec with containers c0.., initContainers i0.., ephemeralContainers e0.."""
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    }
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": f"e{i}", "image": image} for i, image in enumerate(ephemeral)]
    return spec


def workload(kind: str, spec: dict[str, Any], namespace: str = "dev", name: str = "web") -> dict[str, Any]:
    """A Pod, a Pod controller or a CronJob object whose Pod spec is ``spec``."""
    api_version = {
        "Pod": "v1",
        "ReplicationController": "v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
    }.get(kind, "apps/v1")
    template = {"metadata": {"labels": {"app": name}}, "spec": spec}
    body: dict[str, Any]
    if kind == "Pod":
        body = {"spec": spec}
    elif kind == "CronJob":
        body = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    else:
        body = {"spec": {"template": template}}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        **body,
    }
