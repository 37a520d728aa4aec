"""Image reference parsing as Kubernetes users write references (docker.io defaults, ports, digests)."""

from __future__ import annotations

import pytest

from exporter.registry import ImageReference, InvalidReferenceError, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("bitnami/nginx:1.27", "docker.io", "bitnami/nginx", "1.27", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/library/nginx:1", "docker.io", "library/nginx", "1", None),
        (f"ghcr.io/org/app@{DIGEST}", "ghcr.io", "org/app", None, DIGEST),
        (f"host:5000/a/b:tag@{DIGEST}", "host:5000", "a/b", "tag", DIGEST),
        ("localhost/app", "localhost", "app", "latest", None),
        ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None),
        ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None),
        ("registry.example.com/a/b/c/d:x_Y-1.0", "registry.example.com", "a/b/c/d", "x_Y-1.0", None),
        ("Registry.Example.com/app", "Registry.Example.com", "app", "latest", None),
        ("my-org/my__app.x", "docker.io", "my-org/my__app.x", "latest", None),
        ("Registry/app", "Registry", "app", "latest", None),
    ],
)
def test_parses_references_people_write(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_reference(text) == ImageReference(registry, repository, tag, digest)


def test_canonical_form_and_api_host() -> None:
    ref = parse_reference("nginx:1.27")
    assert str(ref) == "docker.io/library/nginx:1.27"
    assert ref.api_host == "registry-1.docker.io"
    pinned = ref.with_digest(DIGEST)
    assert str(pinned) == f"docker.io/library/nginx:1.27@{DIGEST}"
    assert parse_reference(str(pinned)) == pinned
    assert parse_reference("127.0.0.1:5000/app").api_host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("nginx:", "tag ''"),
        ("nginx:-bad", "tag '-bad'"),
        ("Nginx", "lowercase"),
        ("org/App:1", "lowercase"),
        ("nginx@sha256:abc", "64 lowercase hex"),
        ("nginx@md5:" + "a" * 32, "sha256"),
        ("nginx@" + "sha256:" + "AB" * 32, "64 lowercase hex"),
        ("a//b", "component ''"),
        ("a/b/", "component ''"),
        ("ng inx", "whitespace"),
        ("bad_host.com:port/app", "host"),
        ("a--/b", "component 'a--'"),
        ("x" * 300, "longer than 255"),
        (":tag", "empty"),
    ],
)
def test_bad_references_name_the_reference_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    assert repr(text) in str(caught.value)
    assert problem in str(caught.value)


def test_with_digest_rejects_a_non_digest() -> None:
    with pytest.raises(InvalidReferenceError, match="sha256"):
        parse_reference("nginx").with_digest("latest")
