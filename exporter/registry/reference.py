"""Image references as Kubernetes users write them, parsed into registry, repository, tag and digest.

The grammar follows the distribution project's reference rules (the ones `docker pull` and the kubelet use),
including Docker Hub's defaults: no registry means ``docker.io`` and a single-component name lives under
``library/``.

This is the ONE normaliser of trustwatch: policy matching (:attr:`ImageReference.canonical`), verification
and digest pinning all read references through :func:`parse_reference`, so two spellings of one image can
never be treated differently. Beyond distribution's rules, every spelling of one registry is folded into one
name (see :func:`normalize_registry`): a policy on ``docker.io/org/*`` also covers ``index.docker.io/org/app``
and ``registry-1.docker.io/org/app``, which the container runtime pulls from the same place.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from functools import lru_cache

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
# Names users (and old docker config files) give Docker Hub; all mean the same registry.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

MAX_NAME_LENGTH = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?P<host>[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::(?P<port>[0-9]+))?"
)
# A bare 64-hex name is refused, as distribution does: it reads as an image ID.
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
HTTPS_PORT = "443"
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class InvalidReferenceError(ValueError):
    """An image reference that cannot be parsed; the message names it and says what is wrong."""

    def __init__(self, reference: str, problem: str) -> None:
        super().__init__(f"invalid image reference {reference!r}: {problem}")
        self.reference = reference
        self.problem = problem


def is_sha256_digest(text: str) -> bool:
    """True for ``sha256:`` followed by 64 lowercase hex digits, the only digest form registries serve."""
    return _SHA256_DIGEST.fullmatch(text) is not None


def normalize_registry(host: str) -> str:
    """The canonical name of a registry ``host[:port]``, so every spelling of one registry compares equal.

    Host names are case-insensitive (lowercased), IPv6 literals are written compressed (``[fc00:0::1]`` ->
    ``[fc00::1]``), a port loses leading zeros and HTTPS's default ``:443`` is dropped, and every Docker Hub
    alias (``index.docker.io``, ``registry-1.docker.io``) becomes ``docker.io``. Text that is not a valid
    ``host[:port]`` is returned lowercased; :func:`parse_reference` rejects it before it gets here.
    """
    lowered = host.lower()
    match = _DOMAIN.fullmatch(lowered)
    if match is None:
        return lowered
    name, port = match["host"], match["port"]
    if name.startswith("["):
        try:
            name = f"[{ipaddress.IPv6Address(name[1:-1]).compressed}]"
        except ValueError:
            return lowered
    if port is not None:
        port = str(int(port))
    if port == HTTPS_PORT:
        port = None
    if name in _DOCKER_HUB_ALIASES and port is None:
        return DOCKER_HUB
    return name if port is None else f"{name}:{port}"


@dataclass(frozen=True)
class ImageReference:
    """One image: where it lives and which version (tag, digest or both) is meant."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def api_host(self) -> str:
        """The host (and port) that serves the registry API; Docker Hub's differs from its name."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def canonical(self) -> str:
        """The form policies match against and messages print (Kyverno's): ``registry/path:tag``, or
        ``registry/path@digest`` when a digest is present (the tag, which the runtime ignores, dropped)."""
        if self.digest is not None:
            return f"{self.registry}/{self.repository}@{self.digest}"
        return f"{self.registry}/{self.repository}:{self.tag or 'latest'}"

    @property
    def repository_path(self) -> str:
        """``registry/repository`` without tag or digest, the form cosign's docker-reference uses."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: str) -> ImageReference:
        """The same image pinned to ``digest`` (the tag stays for display)."""
        if not is_sha256_digest(digest):
            raise InvalidReferenceError(
                f"{self}@{digest}", "digest must be sha256: and 64 lowercase hex digits"
            )
        return replace(self, digest=digest)

    def with_tag(self, tag: str) -> ImageReference:
        """Another tag in the same repository, with no digest (e.g. cosign's ``sha256-<hex>.sig``)."""
        if _TAG.fullmatch(tag) is None:
            raise InvalidReferenceError(f"{self.repository_path}:{tag}", f"tag {tag!r} is not a valid tag")
        return ImageReference(self.registry, self.repository, tag, None)


def _split_registry(reference: str, name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    # distribution's rule: the first component names a registry if it has '.', ':' or an uppercase
    # letter (repositories are lowercase), or is 'localhost'.
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if _DOMAIN.fullmatch(first) is None:
            raise InvalidReferenceError(reference, f"registry host {first!r} is not a valid host[:port]")
        if first.startswith("["):
            _check_ipv6(reference, first)
        registry = normalize_registry(first)
        repository = rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def _check_ipv6(reference: str, host: str) -> None:
    literal = host[1 : host.index("]")]
    try:
        ipaddress.IPv6Address(literal)
    except ValueError:
        raise InvalidReferenceError(
            reference, f"registry host {host!r} is not a valid IPv6 address"
        ) from None


def _check_repository(reference: str, repository: str) -> None:
    if not repository:
        raise InvalidReferenceError(reference, "repository name is empty")

    for component in repository.split("/"):
        if _COMPONENT.fullmatch(component) is None:
            hint = " (repository names must be lowercase)" if component.lower() != component else ""
            raise InvalidReferenceError(
                reference,
                f"repository component {component!r} may only hold lowercase letters, digits and "
                f"single separators . _ __ -{hint}",
            )


# Pod specs repeat the same few image strings and parsing one costs ~10 µs on the admission hot path.
@lru_cache(maxsize=4096)
def parse_reference(text: str) -> ImageReference:
    """Parse ``nginx``, ``nginx:1.27``, ``ghcr.io/org/app@sha256:…`` or ``host:5000/a/b:tag@sha256:…``.

    A reference without tag or digest means ``:latest``, as the kubelet does.
    """
    reference = text.strip()
    if not reference:
        raise InvalidReferenceError(text, "it is empty")
    if any(ch.isspace() for ch in reference):
        raise InvalidReferenceError(text, "it contains whitespace")
    if _IDENTIFIER.fullmatch(reference):
        raise InvalidReferenceError(text, "a bare 64-character hexadecimal name reads as an image ID")
    remainder, at, digest_text = reference.partition("@")
    digest: str | None = None
    if at:
        if not is_sha256_digest(digest_text):
            raise InvalidReferenceError(
                text, f"digest {digest_text!r} must be 'sha256:' followed by 64 lowercase hex digits"
            )
        digest = digest_text
    # A ':' after the last '/' starts the tag; one before it belongs to the registry's port.
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    tag: str | None = None
    name = remainder
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if _TAG.fullmatch(tag) is None:
            raise InvalidReferenceError(
                text, f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', not starting with . or -"
            )
    if not name:
        raise InvalidReferenceError(text, "repository name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReferenceError(text, f"name is longer than {MAX_NAME_LENGTH} characters")
    registry, repository = _split_registry(text, name)
    _check_repository(text, repository)
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)
