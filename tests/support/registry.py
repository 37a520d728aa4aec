"""A real OCI registry for tests (Debian's ``docker-registry``, distribution 2.8) and cosign-format signing.

Typical use::

    from tests.support.registry import RegistryServer, generate_signing_key, public_pem

    with RegistryServer(tmp_path) as registry:          # or: async with RegistryServer(tmp_path) as registry
        digest = registry.push_image("team/app", "v1")  # small OCI image; returns its manifest digest
        key = generate_signing_key()                    # ECDSA P-256 by default
        registry.sign("team/app", digest, key)          # cosign layout: team/app:sha256-<hex>.sig
        ref = f"{registry.host}/team/app:v1"            # registry.host == "127.0.0.1:PORT" (plain HTTP)

Options: ``users={"alice": "secret"}`` turns on htpasswd basic auth (needs ``htpasswd_available()``);
``token_auth=True`` puts the registry behind the bearer-token flow, with a token endpoint served from this
process (``registry.token_server`` records every token request; ``users`` then guard the token endpoint,
``refresh_tokens`` lists the OAuth2 refresh tokens it accepts, and ``anonymous_pull=False`` makes
anonymous tokens grant nothing).
The helper itself always pushes with full rights.

Everything listens on 127.0.0.1 only; the registry's storage lives under the directory you pass.
``HangingServer`` (accepts, never answers) and ``FaultyProxy`` (forwards to a registry, or answers some
requests itself: 5xx storms, corrupted blobs, oversized manifests) stand in for misbehaving registries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
STARTUP_TIMEOUT = 20.0

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def registry_available() -> bool:
    """True when the Debian docker-registry binary is installed (tests skip with a reason otherwise)."""
    return REGISTRY_BINARY.exists()


# Apply as ``pytestmark = needs_registry`` (or extend it) in modules that start a RegistryServer.
needs_registry = [
    pytest.mark.registry,
    pytest.mark.skipif(
        not registry_available(), reason="needs Debian's docker-registry (/usr/bin/docker-registry)"
    ),
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for binaries that need a port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- cosign-format signing ------------------------------------------------------------------------------


def generate_signing_key(kind: str = "ecdsa-p256") -> PrivateKey:
    """A fresh private key: ``ecdsa-p256``, ``ecdsa-p384``, ``rsa-2048``, ``rsa-3072`` or ``ed25519``."""
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.removeprefix("rsa-")))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def public_pem(key: PrivateKey) -> str:
    """The PEM ``PUBLIC KEY`` that a policy or ``--key`` file would hold for ``key``."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def simple_signing_payload(image_digest: str, docker_reference: str, optional: Any = None) -> bytes:
    """cosign's payload bytes, in the exact compact layout cosign writes."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": image_digest},
            "type": "cosign container image signature",
        },
        "optional": optional,
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def sign_bytes(key: PrivateKey, data: bytes, hash_name: str = "sha256") -> bytes:
    """Sign as cosign does: ECDSA (DER) or RSA PKCS#1 v1.5 over the hash, Ed25519 over the data."""
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hash_name]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    return key.sign(data)


@dataclass(frozen=True)
class SignatureLayerSpec:
    """One layer of a ``.sig`` manifest as pushed: payload blob, media type and annotations (any content)."""

    payload: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    media_type: str = SIMPLE_SIGNING


def cosign_signature_layer(
    key: PrivateKey,
    image_digest: str,
    docker_reference: str,
    *,
    hash_name: str = "sha256",
    extra_annotations: Mapping[str, str] | None = None,
) -> SignatureLayerSpec:
    """A correct cosign signature layer over a fresh payload for ``image_digest``."""
    payload = simple_signing_payload(image_digest, docker_reference)
    signature = base64.b64encode(sign_bytes(key, payload, hash_name)).decode("ascii")
    return SignatureLayerSpec(payload, {SIGNATURE_ANNOTATION: signature, **(extra_annotations or {})})


# --- bearer-token endpoint ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    """Signs registry JWTs (ES256, ``x5c`` header) with a self-signed certificate the registry trusts."""

    def __init__(
        self, directory: Path, service: str = "trustwatch-test", issuer: str = "trustwatch-test-issuer"
    ):
        self.service = service
        self.issuer = issuer
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trustwatch test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.root_bundle = directory / "token-root.pem"
        self.root_bundle.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def token(self, subject: str, access: Sequence[Mapping[str, Any]], lifetime: int = 300) -> str:
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode("ascii")]}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now - 60,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": list(access),
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def parse_scope(scope: str) -> list[dict[str, Any]]:
    """``repository:team/app:pull,push`` (space-separated for several) -> JWT ``access`` entries."""
    access = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    return access


@dataclass(frozen=True)
class TokenRequest:
    """One request the token endpoint received; ``username`` is ``"!invalid"`` for rejected credentials."""

    service: str | None
    scope: str | None
    username: str | None
    grant: str = "basic"  # "basic" (GET, with or without credentials) or "refresh_token" (OAuth2 POST)


class TokenServer:
    """The token endpoint of the bearer flow, on 127.0.0.1 in a background thread.

    ``GET /token?service=…&scope=…``: with ``users`` set, a request must carry valid basic credentials
    (anonymous ones get 401). ``POST /token`` with ``grant_type=refresh_token`` accepts the refresh tokens
    in ``refresh_tokens`` (token -> subject), as registries that hand out docker identity tokens do.
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        users: Mapping[str, str] | None = None,
        refresh_tokens: Mapping[str, str] | None = None,
        lifetime: int = 300,
        anonymous_pull: bool = True,
    ):
        self.issuer = issuer
        self.anonymous_pull = anonymous_pull
        self.users = dict(users or {})
        self.refresh_tokens = dict(refresh_tokens or {})
        self.lifetime = lifetime
        self.requests: list[TokenRequest] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server._answer(self, query, server._basic_subject(self))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                refresh = form.get("refresh_token", [""])[0]
                subject = server.refresh_tokens.get(refresh, "!invalid")
                if form.get("grant_type", [""])[0] != "refresh_token":
                    subject = "!invalid"
                server._answer(self, form, subject, grant="refresh_token")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _basic_subject(self, request: BaseHTTPRequestHandler) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None if not self.users else "!invalid"
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return username if self.users.get(username) == password else "!invalid"

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        params: Mapping[str, list[str]],
        subject: str | None,
        grant: str = "basic",
    ) -> None:
        scope = params.get("scope", [""])[0]
        self.requests.append(TokenRequest(params.get("service", [None])[0], scope or None, subject, grant))
        if subject == "!invalid":
            request.send_response(401)
            request.end_headers()
            return
        # Like Docker Hub for a private repository: anonymous callers get a token that grants nothing.
        access = parse_scope(scope) if subject is not None or self.anonymous_pull else []
        token = self.issuer.token(subject or "anonymous", access, self.lifetime)
        body = json.dumps({"token": token, "expires_in": self.lifetime}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


# --- the registry ---------------------------------------------------------------------------------------


def _bcrypt(password: str) -> str | None:
    """A bcrypt hash from the system's libcrypt (stdlib ``crypt``, Python <= 3.12) or the ``bcrypt``
    package, whichever is present; None when neither is (htpasswd needs bcrypt, nothing else)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # noqa: PLC0415 - optional, deprecated stdlib module

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
            if hashed and hashed.startswith("$2"):
                return hashed
        except ImportError:
            pass
    try:
        import bcrypt  # type: ignore[import-not-found]  # noqa: PLC0415 - optional

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        return None


def htpasswd_available() -> bool:
    """True when basic-auth registries can be started here (a bcrypt implementation exists)."""
    return _bcrypt("probe") is not None


def _htpasswd_line(username: str, password: str) -> str:
    hashed = _bcrypt(password)
    if hashed is None:
        raise RuntimeError("no bcrypt implementation (stdlib crypt or the bcrypt package) for htpasswd auth")
    return f"{username}:{hashed}"


class RegistryServer:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage under ``directory``, stopped on exit.

    ``host`` is ``127.0.0.1:PORT`` (plain HTTP: mark it insecure in RegistryOptions); ``url`` its base URL.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: Mapping[str, str] | None = None,
        token_auth: bool = False,
        refresh_tokens: Mapping[str, str] | None = None,
        anonymous_pull: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.anonymous_pull = anonymous_pull
        self.users = dict(users or {})
        self.token_auth = token_auth
        self.refresh_tokens = dict(refresh_tokens or {})
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.token_server: TokenServer | None = None
        self._issuer: TokenIssuer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = self.directory / "registry.log"

    # lifecycle

    def _config(self) -> str:
        storage = self.directory / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog: {disabled: true}",
            "storage:",
            f"  filesystem: {{rootdirectory: {storage}}}",
            "  delete: {enabled: true}",
            "http:",
            f"  addr: {self.host}",
            f"  secret: {uuid.uuid4().hex}",
        ]
        if self.token_auth:
            self._issuer = TokenIssuer(self.directory)
            self.token_server = TokenServer(
                self._issuer, self.users, self.refresh_tokens, anonymous_pull=self.anonymous_pull
            )
            self.token_server.start()
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {self._issuer.service}",
                f"    issuer: {self._issuer.issuer}",
                f"    rootcertbundle: {self._issuer.root_bundle}",
            ]
        elif self.users:
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text("".join(_htpasswd_line(u, p) + "\n" for u, p in self.users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: trustwatch-test", f"    path: {htpasswd}"]
        return "\n".join(lines) + "\n"

    def start(self) -> RegistryServer:
        config = self.directory / "registry.yml"
        config.write_text(self._config())
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(REGISTRY_BINARY), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"docker-registry exited early: {self._log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.02)  # polling the port with a deadline, not synchronising on time
        self.stop()
        raise RuntimeError(f"docker-registry did not listen on {self.host} within {STARTUP_TIMEOUT}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> RegistryServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # HTTP as the pushing client (always with full rights)

    def _authorization(self, repo: str) -> str | None:
        if self._issuer is not None:
            access = [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
            return "Bearer " + self._issuer.token("pusher", access)
        if self.users:
            username, password = next(iter(self.users.items()))
            return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        return None

    def _request(
        self,
        method: str,
        url: str,
        repo: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        authorization = self._authorization(repo)
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` as a blob of ``repo``; returns its digest."""
        digest = sha256_digest(data)
        status, headers, body = self._request("POST", f"{self.url}/v2/{repo}/blobs/uploads/", repo)
        if status != 202:
            raise RuntimeError(f"blob upload start failed: {status} {body!r}")
        location = urllib.parse.urljoin(self.url, headers["Location"])
        sep = "&" if "?" in location else "?"
        status, _, body = self._request(
            "PUT",
            f"{location}{sep}digest={digest}",
            repo,
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if status != 201:
            raise RuntimeError(f"blob upload failed: {status} {body!r}")
        return digest

    def push_manifest(
        self, repo: str, reference: str, manifest: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        """Put raw manifest bytes under a tag or digest; returns the manifest digest."""
        status, _, body = self._request(
            "PUT", f"{self.url}/v2/{repo}/manifests/{reference}", repo, manifest, {"Content-Type": media_type}
        )
        if status != 201:
            raise RuntimeError(f"manifest push failed: {status} {body!r}")
        return sha256_digest(manifest)

    def get_manifest(self, repo: str, reference: str, accept: str = OCI_MANIFEST) -> bytes | None:
        """The raw manifest bytes, or None when the registry has none under ``reference`` (an OCI index only
        when ``accept`` names its media type: the registry hides indexes from other requests)."""
        status, _, body = self._request(
            "GET", f"{self.url}/v2/{repo}/manifests/{reference}", repo, headers={"Accept": accept}
        )
        return body if status == 200 else None

    def _oci_manifest(self, config: bytes, layers: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> bytes:
        """An OCI manifest after pushing its config and layer blobs (media type, content, annotations)."""
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
            "layers": [],
        }
        for media_type, content, layer_annotations in layers:
            entry: dict[str, Any] = {
                "mediaType": media_type,
                "size": len(content),
                "digest": sha256_digest(content),
            }
            if layer_annotations:
                entry["annotations"] = dict(layer_annotations)
            document["layers"].append(entry)
        return json.dumps(document, separators=(",", ":")).encode()

    def push_image(self, repo: str, tag: str, content: bytes | None = None) -> str:
        """Push a small OCI image (one layer, unique unless ``content`` is given); returns its digest."""
        layer = content if content is not None else f"layer of {repo}:{tag} {uuid.uuid4()}".encode()
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        self.push_blob(repo, config)
        self.push_blob(repo, layer)
        return self.push_manifest(repo, tag, self._oci_manifest(config, [(OCI_LAYER, layer, {})]))

    def push_signature_layers(
        self,
        repo: str,
        image_digest: str,
        layers: Sequence[SignatureLayerSpec],
        *,
        append: bool = True,
        suffix: str = ".sig",
        prefix: str = "",
    ) -> str:
        """Write ``repo:sha256-<hex>.sig`` (or ``.att`` with ``suffix=".att"``) with these layers, after any
        already there, as cosign does; ``prefix`` goes before the tag (cosign ``--attachment-tag-prefix``).

        Layers may hold anything (bad payloads, missing annotations): this is how tests build bad input.
        Returns the manifest digest.
        """
        tag = prefix + image_digest.replace(":", "-", 1) + suffix
        entries: list[tuple[str, bytes, Mapping[str, str]]] = []
        existing = self.get_manifest(repo, tag) if append else None
        if existing is not None:
            for layer in json.loads(existing)["layers"]:
                entries.append(
                    (layer["mediaType"], self._blob(repo, layer["digest"]), layer.get("annotations", {}))
                )
        entries += [(spec.media_type, spec.payload, spec.annotations) for spec in layers]
        config = b'{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'
        self.push_blob(repo, config)
        for _, content, _ in entries:
            self.push_blob(repo, content)
        return self.push_manifest(repo, tag, self._oci_manifest(config, entries))

    def _blob(self, repo: str, digest: str) -> bytes:
        status, _, body = self._request("GET", f"{self.url}/v2/{repo}/blobs/{digest}", repo)
        if status != 200:
            raise RuntimeError(f"blob {digest} of {repo}: HTTP {status}")
        return body

    def sign(
        self,
        repo: str,
        image_digest: str,
        key: PrivateKey,
        *,
        hash_name: str = "sha256",
        signed_digest: str | None = None,
        docker_reference: str | None = None,
    ) -> SignatureLayerSpec:
        """Sign ``image_digest`` like ``cosign sign --key``; ``signed_digest`` forges a payload for another
        digest (a valid signature that proves nothing about this image). Returns the pushed layer."""
        layer = cosign_signature_layer(
            key,
            signed_digest or image_digest,
            docker_reference or f"{self.host}/{repo}",
            hash_name=hash_name,
        )
        self.push_signature_layers(repo, image_digest, [layer])
        return layer


# --- misbehaving servers --------------------------------------------------------------------------------


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a registry that hangs.

    ``async with HangingServer() as server:`` then point a client at ``server.host``.
    """

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        self.host = ""

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)

    async def __aenter__(self) -> HangingServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.host = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


Fault = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-encoding"})


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (e.g. a RegistryServer's url) that lets a test
    answer some requests itself: ``fault(request)`` returns a response to send instead, or None to forward.

    ``requests`` lists ``(method, path)`` of everything that arrived.
    """

    def __init__(self, upstream: str, fault: Fault | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = fault
        self.requests: list[tuple[str, str]] = []
        self.host = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.fault is not None:
            replaced = await self.fault(request)
            if replaced is not None:
                return replaced
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=upstream.status, headers=out_headers, body=body)

    async def __aenter__(self) -> FaultyProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.host = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
