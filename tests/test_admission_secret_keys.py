"""Keys kept in Secrets: read through the real kubernetes client, cached, and used by the verifier."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.admission.secret_keys import KubernetesSecretKeys
from exporter.admission.verifier import ImageVerifier, SecretKeyError
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from exporter.policy.model import KyvernoPolicy, SecretRef
from exporter.registry import RegistryClient, RegistryOptions
from tests.support.registry import RegistryServer, generate_signing_key, public_pem, registry_available

PEM = public_pem(generate_signing_key())


class SecretsApi:
    """Just enough of the API server for ``read_namespaced_secret``: 200, 403 and 404 like the real one."""

    def __init__(self) -> None:
        self.secrets = {
            ("keys", "cosign"): {"cosign.pub": base64.b64encode(PEM.encode()).decode()},
            ("keys", "empty"): {"other": "eA=="},
        }
        self.reads = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.reads += 1
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if namespace == "forbidden":
            return web.json_response({"kind": "Status", "code": 403, "reason": "Forbidden"}, status=403)
        data = self.secrets.get((namespace, name))
        if data is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}
        return web.json_response({**secret, "data": data})


@pytest.fixture
async def secrets() -> AsyncIterator[tuple[KubernetesSecretKeys, SecretsApi]]:
    api = SecretsApi()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{namespace}/secrets/{name}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    client = kubernetes.client.ApiClient(
        kubernetes.client.Configuration(host=f"http://127.0.0.1:{runner.addresses[0][1]}")
    )
    try:
        yield KubernetesSecretKeys(client), api
    finally:
        await runner.cleanup()


async def test_reads_cosign_pub_once_and_caches_it(secrets: tuple[KubernetesSecretKeys, SecretsApi]) -> None:
    keys, api = secrets
    assert await keys(SecretRef("cosign", "keys")) == PEM
    assert await keys(SecretRef("cosign", "keys")) == PEM
    assert api.reads == 1


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        (SecretRef("missing", "keys"), "Secret keys/missing not found"),
        (SecretRef("empty", "keys"), "Secret keys/empty has no cosign.pub entry"),
        (SecretRef("cosign", "forbidden"), "may not read Secret forbidden/cosign: grant it get on secrets"),
    ],
)
async def test_unreadable_keys_say_why(
    secrets: tuple[KubernetesSecretKeys, SecretsApi], ref: SecretRef, problem: str
) -> None:
    keys, _api = secrets
    with pytest.raises(SecretKeyError, match=problem):
        await keys(ref)


SECRET_POLICY = """
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: secret-keys}
spec:
  validationFailureAction: Enforce
  rules:
  - name: verify
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ['*']
      attestors:
      - entries:
        - keys:
            secret: {name: cosign, namespace: keys}
"""


@pytest.mark.registry
@pytest.mark.skipif(not registry_available(), reason="needs /usr/bin/docker-registry")
async def test_the_verifier_uses_keys_from_secrets(tmp_path: Path) -> None:
    key = generate_signing_key()
    [policy] = parse_policies(SECRET_POLICY)
    assert isinstance(policy, KyvernoPolicy)
    rule = policy.rules[0]
    verification = rule.verify_images[0]

    async def from_secret(ref: SecretRef) -> str:
        if ref.name != "cosign":
            raise SecretKeyError(f"Secret {ref.namespace}/{ref.name} not found")
        return public_pem(key)

    async with RegistryServer(tmp_path) as registry:
        digest = registry.push_image("team/app", "v1")
        registry.sign("team/app", digest, key)
        image = f"{registry.host}/team/app:v1"
        options = RegistryOptions(insecure_registries=frozenset({registry.host}))
        async with RegistryClient(options) as client:
            metrics = ServiceMetrics(CollectorRegistry())
            with_secrets = ImageVerifier(client, metrics, secret_keys=from_secret)
            outcome, _how = await with_secrets.verify(policy.version, rule.name, 0, verification, image)
            assert (outcome.status, outcome.message) == ("pass", "image verified")

            without = ImageVerifier(client, metrics)
            outcome, _how = await without.verify(policy.version, rule.name, 0, verification, image)
            assert outcome.status == "error"  # infrastructure, never a violation
            assert "Secret keys/cosign cannot be read without cluster access" in outcome.message

            async def broken(ref: SecretRef) -> str:
                raise SecretKeyError(f"Secret {ref.namespace}/{ref.name} not found")

            failing = ImageVerifier(client, metrics, secret_keys=broken)
            outcome, _how = await failing.verify(policy.version, rule.name, 0, verification, image)
            assert outcome.status == "error"
            assert outcome.message == (
                f"failed to verify image {image}: .attestors[0].entries[0].keys: Secret keys/cosign not found"
            )
            for verifier in (with_secrets, without, failing):
                await verifier.close()
