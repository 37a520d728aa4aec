"""Registry credentials and the pieces of the Distribution auth flow that are not HTTP plumbing.

Credentials come from a docker ``config.json`` or the content of a Kubernetes
``kubernetes.io/dockerconfigjson`` (or legacy ``kubernetes.io/dockercfg``) secret. Bearer tokens are
cached per registry and scope until they expire, so a busy webhook asks the token endpoint once per
repository, not once per request.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.jsondoc import parse_json_object
from exporter.registry.reference import normalize_registry


class DockerConfigError(ValueError):
    """A docker config / dockerconfigjson document that cannot be used; says which entry is wrong."""


@dataclass(frozen=True)
class Credential:
    """A username and password (or token) for one registry; ``identity_token`` is an OAuth2 refresh token."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def registry_key(server: str) -> str:
    """The registry host a docker config key names: ``https://index.docker.io/v1/`` -> ``docker.io``."""
    text = server.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    return normalize_registry(text.split("/", 1)[0])


@dataclass(frozen=True)
class CredentialStore:
    """Credentials by registry host (``docker.io``, ``ghcr.io``, ``127.0.0.1:5000``)."""

    entries: Mapping[str, Credential] = field(default_factory=dict)

    def lookup(self, registry: str) -> Credential | None:
        return self.entries.get(normalize_registry(registry))

    def __len__(self) -> int:
        return len(self.entries)


def _credential(server: str, entry: Any) -> Credential:
    if not isinstance(entry, dict):
        raise DockerConfigError(f"auths entry {server!r} is not an object")
    username, password = entry.get("username"), entry.get("password")
    identity_token = entry.get("identitytoken") or None
    encoded = entry.get("auth")
    if encoded:
        if not isinstance(encoded, str):
            raise DockerConfigError(f"auths entry {server!r}: 'auth' is not a string")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise DockerConfigError(
                f"auths entry {server!r}: 'auth' is not base64 of 'user:password'"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise DockerConfigError(f"auths entry {server!r}: 'auth' does not decode to 'user:password'")
    if not isinstance(username, str) or not isinstance(password, str):
        if isinstance(identity_token, str):
            return Credential(username if isinstance(username, str) else "", "", identity_token)
        raise DockerConfigError(
            f"auths entry {server!r} has neither 'auth' nor 'username'+'password' nor 'identitytoken'"
        )
    return Credential(username, password, identity_token if isinstance(identity_token, str) else None)


def load_docker_config(source: str | bytes | os.PathLike[str] | Mapping[str, Any]) -> CredentialStore:
    """Read credentials from a config.json path, its JSON text/bytes, or an already parsed document.

    Accepts the ``{"auths": {...}}`` layout of ``config.json`` and ``.dockerconfigjson`` secrets, and the
    bare ``{server: {...}}`` layout of legacy ``.dockercfg`` secrets. Credential helpers (``credsStore``)
    are not run: a webhook has none.
    """
    where = "docker config"
    document: Any
    if isinstance(source, Mapping):
        document = source
    else:
        if isinstance(source, bytes):
            text = source.decode("utf-8", errors="replace")
        elif isinstance(source, str) and source.lstrip().startswith(("{", "[")):
            text = source
        else:
            where = str(source)
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise DockerConfigError(f"cannot read docker config {where}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DockerConfigError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise DockerConfigError(f"{where} is not a JSON object")
    auths = document.get("auths", document if "auths" not in document else None)
    if not isinstance(auths, Mapping):
        raise DockerConfigError(f"{where}: 'auths' is not an object")
    entries: dict[str, Credential] = {}
    for server, entry in auths.items():
        if server in ("credsStore", "credHelpers", "HttpHeaders", "proxies", "experimental"):
            continue
        try:
            entries[registry_key(str(server))] = _credential(str(server), entry)
        except DockerConfigError as exc:
            raise DockerConfigError(f"{where}: {exc}") from None
    return CredentialStore(entries)


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (lowercase) and its parameters."""

    scheme: str
    params: Mapping[str, str]


_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` or ``Basic realm="…"``; None when absent."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match.group(1).lower(): (match.group(2) if match.group(2) is not None else match.group(3)).replace(
            '\\"', '"'
        )
        for match in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


class TokenCache:
    """Bearer tokens by (registry host, scope) until shortly before they expire; bounded, oldest evicted."""

    # Registries may omit expires_in; the distribution spec says to assume 60 s then.
    DEFAULT_LIFETIME = 60.0
    # Refresh a little early so a token never expires between lookup and use.
    SAFETY_MARGIN = 5.0

    def __init__(self, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    def get(self, host: str, scope: str) -> str | None:
        entry = self._entries.get((host, scope))
        if entry is None:
            return None
        token, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[(host, scope)]
            return None
        return token

    def put(self, host: str, scope: str, token: str, expires_in: float | None) -> None:
        lifetime = expires_in if expires_in and expires_in > 0 else self.DEFAULT_LIFETIME
        expires_at = self._clock() + max(lifetime - self.SAFETY_MARGIN, lifetime / 2)
        self._entries[(host, scope)] = (token, expires_at)
        self._entries.move_to_end((host, scope))
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def token_from_response(body: bytes) -> tuple[str, float | None]:
    """The token and lifetime from a token endpoint's JSON (``token`` or OAuth2 ``access_token``)."""
    document = parse_json_object(body, "token endpoint answer", ValueError)
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("token endpoint answer has no 'token' or 'access_token'")
    expires_in = document.get("expires_in")
    lifetime = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else None
    )
    return token, lifetime
