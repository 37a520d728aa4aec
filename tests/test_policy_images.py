"""Image extraction from Pods and Pod templates, JSON pointers, normalisation and imageReferences matching."""

from __future__ import annotations

import pytest

from exporter.policy import ContainerImage, extract_images, normalize_image
from tests.test_policy_builders import load, pod_spec, policy, rule, verification, workload

DIGEST = "sha256:" + "ab" * 32
PREFIXES = {
    "Pod": "/spec",
    "Deployment": "/spec/template/spec",
    "StatefulSet": "/spec/template/spec",
    "DaemonSet": "/spec/template/spec",
    "ReplicaSet": "/spec/template/spec",
    "ReplicationController": "/spec/template/spec",
    "Job": "/spec/template/spec",
    "CronJob": "/spec/jobTemplate/spec/template/spec",
}


@pytest.mark.parametrize(("kind", "prefix"), sorted(PREFIXES.items()))
def test_all_container_lists_of_every_workload_kind(kind: str, prefix: str) -> None:
    spec = pod_spec("app:1", "sidecar:2", init=("init:1",), ephemeral=("debug:1",))
    assert extract_images(workload(kind, spec)) == [
        ContainerImage("i0", "initContainers", "init:1", f"{prefix}/initContainers/0/image"),
        ContainerImage("c0", "containers", "app:1", f"{prefix}/containers/0/image"),
        ContainerImage("c1", "containers", "sidecar:2", f"{prefix}/containers/1/image"),
        ContainerImage("e0", "ephemeralContainers", "debug:1", f"{prefix}/ephemeralContainers/0/image"),
    ]


def test_other_kinds_and_malformed_objects_have_no_images() -> None:
    assert extract_images({"kind": "ConfigMap", "data": {"image": "x"}}) == []
    assert extract_images({"kind": "Pod"}) == []
    assert extract_images({"kind": "Deployment", "spec": {"template": "oops"}}) == []
    assert extract_images({"kind": "Pod", "spec": {"containers": "nope"}}) == []
    odd = {
        "kind": "Pod",
        "spec": {"containers": [{"name": "no-image"}, "junk", {"name": "ok", "image": "a"}]},
    }
    assert extract_images(odd) == [ContainerImage("ok", "containers", "a", "/spec/containers/2/image")]


@pytest.mark.parametrize(
    ("image", "normalised"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        ("user/test:unsigned", "docker.io/user/test:unsigned"),
        ("docker.io/user/test", "docker.io/user/test:latest"),
        ("ghcr.io/org/team/app:v1", "ghcr.io/org/team/app:v1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("127.0.0.1:5000/user/test:signed", "127.0.0.1:5000/user/test:signed"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"ghcr.io/org/app:v1@{DIGEST}", f"ghcr.io/org/app@{DIGEST}"),
    ],
)
def test_normalisation_like_kyverno(image: str, normalised: str) -> None:
    assert normalize_image(image) == normalised


@pytest.mark.parametrize(
    "image", ["", "Upper", "docker.io/Upper/case", "a b", "nginx:", "nginx@sha256:short", "x" * 300]
)
def test_invalid_references(image: str) -> None:
    with pytest.raises(ValueError, match="invalid image reference"):
        normalize_image(image)


@pytest.mark.parametrize(
    ("references", "skips", "image", "expected"),
    [
        (["*"], [], "user/test:unsigned", True),
        (["docker.io/user/*"], [], "user/test:unsigned", True),
        (["user/*"], [], "user/test:unsigned", False),  # patterns see the normalised image
        (["docker.io/library/nginx*"], [], "nginx", True),
        (["ghcr.io/org/*"], [], "ghcr.io/org/app:1", True),
        (["ghcr.io/org/*"], ["ghcr.io/org/debug*"], "ghcr.io/org/debug-tools:1", False),
        (["*"], ["*:latest"], "nginx", False),
        (["*"], ["*:latest"], "nginx:1", True),
        (["*@sha256:*"], [], f"nginx:1@{DIGEST}", True),
        (["*:1"], [], f"nginx:1@{DIGEST}", False),  # the digest replaces the tag
    ],
)
def test_applies_to(references: list[str], skips: list[str], image: str, expected: bool) -> None:
    entry = verification(imageReferences=references, skipImageReferences=skips)
    (check,) = load(policy(rule(verifyImages=[entry]))).rules[0].verify_images
    assert check.applies_to(image) is expected
