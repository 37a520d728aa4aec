"""Image reference parsing as Kubernetes users write references (docker.io defaults, ports, digests)."""

from __future__ import annotations

import pytest

from exporter.registry import ImageReference, InvalidReferenceError, RegistryOptions, parse_reference

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
        ("Registry.Example.com/app", "registry.example.com", "app", "latest", None),
        ("my-org/my__app.x", "docker.io", "my-org/my__app.x", "latest", None),
        ("Registry/app", "registry", "app", "latest", None),
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


# --- distribution's reference grammar (github.com/distribution/reference, ParseNormalizedNamed) -----------
# Names distribution accepts; trustwatch must parse every one (a name it refused would make a rule `error`).
DISTRIBUTION_VALID = [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/debian",
    "192.168.0.1:8/debian",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "d/docker",
    "dock__er/docker",
    "xn--n3h.com:18080/foo",
    "test_com/foo",
    f"busybox:latest@{DIGEST}",
]
# Names distribution refuses; so must trustwatch (the runtime could not pull them either).
DISTRIBUTION_INVALID = [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "docker/",
    "docker.io/library/nginx@sha256:" + "AB" * 32,  # digests are lowercase hex
]


@pytest.mark.parametrize("text", DISTRIBUTION_VALID)
def test_every_name_distribution_accepts_parses(text: str) -> None:
    assert parse_reference(text).repository


@pytest.mark.parametrize("text", DISTRIBUTION_INVALID)
def test_every_name_distribution_refuses_is_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (
            [
                "myorg/app:1",
                "docker.io/myorg/app:1",
                "index.docker.io/myorg/app:1",
                "registry-1.docker.io/myorg/app:1",
                "Docker.IO/myorg/app:1",
                "INDEX.DOCKER.IO/myorg/app:1",
                "docker.io:443/myorg/app:1",
                "registry-1.docker.io:0443/myorg/app:1",
            ],
            "docker.io/myorg/app:1",
        ),
        (
            [
                "ubuntu",
                "ubuntu:latest",
                "library/ubuntu",
                "docker.io/ubuntu",
                "index.docker.io/library/ubuntu",
            ],
            "docker.io/library/ubuntu:latest",
        ),
        (["ghcr.io/org/app:v1", "GHCR.io/org/app:v1", "ghcr.io:443/org/app:v1"], "ghcr.io/org/app:v1"),
        (
            ["[fc00::1]:5000/app:v", "[FC00::1]:5000/app:v", "[fc00:0:0::1]:05000/app:v"],
            "[fc00::1]:5000/app:v",
        ),
        ([f"nginx:1@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"], f"docker.io/library/nginx@{DIGEST}"),
    ],
)
def test_every_spelling_of_one_image_has_one_canonical_form(spellings: list[str], canonical: str) -> None:
    assert {parse_reference(text).canonical for text in spellings} == {canonical}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("docker.io:5000/myorg/app", "docker.io:5000/myorg/app:latest"),  # another port, another registry
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("ghcr.io/org/app:V1", "ghcr.io/org/app:V1"),  # tags are case-sensitive
    ],
)
def test_different_registries_and_tags_stay_different(text: str, canonical: str) -> None:
    assert parse_reference(text).canonical == canonical


def test_insecure_registry_option_is_read_canonically() -> None:
    options = RegistryOptions(insecure_registries=frozenset({"Registry.Local:5000", "[FC00::1]:5000"}))
    assert options.insecure_registries == {"registry.local:5000", "[fc00::1]:5000"}
