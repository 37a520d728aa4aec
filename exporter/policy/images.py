"""Container images of Pods and Pod templates, and Kyverno's normalised form of an image reference.

Kyverno matches ``imageReferences`` against the *normalised* image (default registry ``docker.io`` added,
``latest`` tag defaulted, a digest replacing the tag) and prints that form in messages
(``failed to verify image docker.io/user/test:unsigned``), so both live here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ContainerField = Literal["containers", "initContainers", "ephemeralContainers"]

DEFAULT_REGISTRY = "docker.io"

# Kyverno's extractor order: init containers first, then containers, then ephemeral containers.
CONTAINER_FIELDS: tuple[ContainerField, ...] = ("initContainers", "containers", "ephemeralContainers")

POD_CONTROLLER_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "ReplicationController"}
)
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    **{kind: ("spec", "template", "spec") for kind in POD_CONTROLLER_KINDS},
}

# The reference grammar of github.com/distribution/reference (what Kyverno parses images with).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"(?P<domain>{_DOMAIN})/(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
_MAX_NAME_LENGTH = 255


def _with_default_registry(image: str) -> str:
    first, slash, _ = image.partition("/")
    has_domain = slash and (any(c in first for c in ".:") or first == "localhost" or first != first.lower())
    return image if has_domain else f"{DEFAULT_REGISTRY}/{image}"


def normalize_image(image: str) -> str:
    """Kyverno's string form of ``image``: ``registry/path:tag``, or ``registry/path@digest`` when a digest
    is present (the tag is then dropped). Raises ValueError for an invalid reference.

    ``nginx`` -> ``docker.io/library/nginx:latest``;
    ``user/test:unsigned`` -> ``docker.io/user/test:unsigned``;
    ``ghcr.io/org/app@sha256:...`` unchanged. Only Docker Hub gets the ``library/`` prefix.
    """
    full = _with_default_registry(image)
    match = _REFERENCE.fullmatch(full)
    if match is None or len(match["domain"]) + 1 + len(match["path"]) > _MAX_NAME_LENGTH:
        raise ValueError(f"invalid image reference {image!r}")
    domain, path = match["domain"], match["path"]
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if match["digest"]:
        return f"{domain}/{path}@{match['digest']}"
    return f"{domain}/{path}:{match['tag'] or 'latest'}"


@dataclass(frozen=True)
class ContainerImage:
    """One container's image: which container, which list it is in, the image as written, and the RFC 6901
    JSON pointer to its ``image`` field (the target of a digest-pinning JSONPatch)."""

    container: str
    field: ContainerField
    image: str
    pointer: str


def _pod_spec(resource: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    path = _POD_SPEC_PATHS.get(str(resource.get("kind", "")))
    if path is None:
        return None, ""
    node: Any = resource
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return (node if isinstance(node, Mapping) else None), "/" + "/".join(path)


def extract_images(resource: Mapping[str, Any]) -> list[ContainerImage]:
    """The images of a Pod, of the Pod template of Deployment/StatefulSet/DaemonSet/Job/ReplicaSet/
    ReplicationController, or of a CronJob's job template; [] for any other kind.

    Order: initContainers, containers, ephemeralContainers, each in list order. Entries without a string
    ``image`` are skipped (the API server rejects such objects anyway).
    """
    spec, prefix = _pod_spec(resource)
    if spec is None:
        return []
    images: list[ContainerImage] = []
    for field_name in CONTAINER_FIELDS:
        containers = spec.get(field_name)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if not isinstance(container, Mapping) or not isinstance(container.get("image"), str):
                continue
            images.append(
                ContainerImage(
                    container=str(container.get("name", "")),
                    field=field_name,
                    image=container["image"],
                    pointer=f"{prefix}/{field_name}/{index}/image",
                )
            )
    return images
