"""Container images of Pods and Pod templates, and Kyverno's normalised form of an image reference.

Kyverno matches ``imageReferences`` against the *normalised* image (default registry ``docker.io`` added,
``latest`` tag defaulted, a digest replacing the tag) and prints that form in messages
(``failed to verify image docker.io/user/test:unsigned``), so both live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from exporter.registry.reference import parse_reference

ContainerField = Literal["containers", "initContainers", "ephemeralContainers"]

# Kyverno's extractor order: init containers first, then containers, then ephemeral containers.
CONTAINER_FIELDS: tuple[ContainerField, ...] = ("initContainers", "containers", "ephemeralContainers")

POD_CONTROLLER_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "ReplicationController"}
)
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    **{kind: ("spec", "template", "spec") for kind in POD_CONTROLLER_KINDS},
}


def normalize_image(image: str) -> str:
    """Kyverno's string form of ``image``: ``registry/path:tag``, or ``registry/path@digest`` when a digest
    is present (the tag is then dropped). Raises ValueError for an invalid reference.

    ``nginx`` -> ``docker.io/library/nginx:latest``;
    ``user/test:unsigned`` and ``index.docker.io/user/test:unsigned`` -> ``docker.io/user/test:unsigned``;
    ``ghcr.io/org/app@sha256:...`` unchanged. Only Docker Hub gets the ``library/`` prefix. The parsing is
    the registry client's (:func:`exporter.registry.reference.parse_reference`), so the image a policy
    matches is exactly the image that is verified and pinned.
    """
    return parse_reference(image).canonical


@dataclass(frozen=True)
class ContainerImage:
    """One container's image: which container, which list it is in, the image as written, and the RFC 6901
    JSON pointer to its ``image`` field (the target of a digest-pinning JSONPatch)."""

    container: str
    field: ContainerField
    image: str
    pointer: str


def _pod_spec(resource: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    path = POD_SPEC_PATHS.get(str(resource.get("kind", "")))
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
