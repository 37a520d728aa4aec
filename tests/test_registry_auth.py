"""Docker config credentials, auth challenges, the token cache and option checks (no network)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from exporter.registry import DockerConfigError, RegistryOptions, load_docker_config
from exporter.registry.auth import TokenCache, parse_challenge, token_from_response


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_dockerconfigjson_secret_content_and_config_file_give_the_same_credentials(tmp_path: Path) -> None:
    document = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hubpass")},
            "ghcr.io": {"username": "octo", "password": "token:with:colons"},
            "http://127.0.0.1:5000/v2/": {"auth": _auth("local", "pw")},
        }
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    for source in (path, str(path), json.dumps(document), json.dumps(document).encode(), document):
        store = load_docker_config(source)
        assert len(store) == 3
        hub = store.lookup("docker.io")
        assert hub is not None and (hub.username, hub.password) == ("hubuser", "hubpass")
        assert store.lookup("index.docker.io") == hub
        ghcr = store.lookup("ghcr.io")
        assert ghcr is not None and ghcr.password == "token:with:colons"
        assert store.lookup("127.0.0.1:5000") is not None
        assert store.lookup("quay.io") is None


def test_legacy_dockercfg_layout_and_identity_tokens() -> None:
    store = load_docker_config({"registry.test": {"auth": _auth("u", "p")}})
    assert store.lookup("registry.test") is not None
    acr = load_docker_config(
        {"auths": {"acr.test": {"username": "00000000-0000", "identitytoken": "refresh"}}}
    )
    credential = acr.lookup("acr.test")
    assert credential is not None and credential.identity_token == "refresh"


def test_credential_helpers_are_ignored_not_fatal() -> None:
    store = load_docker_config({"auths": {"a.test": {"auth": _auth("u", "p")}}, "credsStore": "desktop"})
    assert store.lookup("a.test") is not None


def test_credentials_never_appear_in_repr() -> None:
    store = load_docker_config({"auths": {"a.test": {"username": "u", "password": "s3cr3t"}}})
    assert "s3cr3t" not in repr(store)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{not json", "docker config is not valid JSON"),
        ("[]", "docker config is not a JSON object"),
        ({"auths": []}, "'auths' is not an object"),
        (
            {"auths": {"r.test": {"auth": "%%%"}}},
            "auths entry 'r.test': 'auth' is not base64 of 'user:password'",
        ),
        (
            {"auths": {"r.test": {"auth": base64.b64encode(b"nocolon").decode()}}},
            "'auth' does not decode to 'user:password'",
        ),
        ({"auths": {"r.test": {}}}, "neither 'auth' nor 'username'+'password'"),
        ({"auths": {"r.test": "text"}}, "auths entry 'r.test' is not an object"),
    ],
)
def test_bad_docker_configs_say_which_entry_is_wrong(source: str | dict[str, Any], message: str) -> None:
    with pytest.raises(DockerConfigError) as caught:
        load_docker_config(source)
    assert message in str(caught.value)


def test_unreadable_config_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(DockerConfigError, match=f"cannot read docker config {missing}"):
        load_docker_config(missing)


def test_parses_bearer_and_basic_challenges() -> None:
    bearer = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert bearer is not None
    assert bearer.scheme == "bearer"
    assert dict(bearer.params) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull",
    }
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic" and basic.params["realm"] == "Registry Realm"
    assert parse_challenge("") is None
    assert parse_challenge(None) is None


def test_token_cache_expires_and_stays_bounded() -> None:
    now = [1000.0]
    cache = TokenCache(max_entries=2, clock=lambda: now[0])
    cache.put("r.test", "repository:a:pull", "token-a", 60)
    assert cache.get("r.test", "repository:a:pull") == "token-a"
    assert cache.get("r.test", "repository:b:pull") is None
    now[0] += 56
    assert cache.get("r.test", "repository:a:pull") is None, "refreshed a little before the registry's expiry"
    for name in "bcd":
        cache.put("r.test", f"repository:{name}:pull", name, None)
    assert len(cache) == 2
    assert cache.get("r.test", "repository:b:pull") is None
    assert cache.get("r.test", "repository:d:pull") == "d"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"token": "t", "expires_in": 300}', ("t", 300.0)),
        (b'{"access_token": "a"}', ("a", None)),
    ],
)
def test_token_responses(body: bytes, expected: tuple[str, float | None]) -> None:
    assert token_from_response(body) == expected


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'{"expires_in": 3}', b'{"token": ""}'])
def test_bad_token_responses_are_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match="token endpoint answer"):
        token_from_response(body)


def test_registry_options_refuse_non_positive_limits() -> None:
    with pytest.raises(ValueError, match=r"timeouts must be positive \(request_timeout=0, deadline=10\)"):
        RegistryOptions(request_timeout=0)
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        RegistryOptions(max_connections=0)
