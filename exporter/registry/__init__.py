"""OCI distribution client: image references, auth, manifests and blobs with digest checks and size caps."""

from exporter.registry.auth import CredentialStore, DockerConfigError, load_docker_config
from exporter.registry.client import RegistryClient, RegistryOptions
from exporter.registry.errors import NotFoundError, RegistryError
from exporter.registry.manifest import Descriptor, Manifest
from exporter.registry.reference import ImageReference, InvalidReferenceError, parse_reference

__all__ = [
    "CredentialStore",
    "Descriptor",
    "DockerConfigError",
    "ImageReference",
    "InvalidReferenceError",
    "Manifest",
    "NotFoundError",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "load_docker_config",
    "parse_reference",
]
