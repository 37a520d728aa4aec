"""Attacks on the promise that no policy is weaker than its author believes, each shown refused.

Every test states one way a user could try to run an image a policy forbids, or to make trustwatch admit
everything without an alert, and shows that it does not work: through the engine, through
``trustwatch apply`` and through a real ``trustwatch serve`` (with policy reloads).
"""

from __future__ import annotations

import json
import ssl
import string
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.policy import PolicyLoadError, normalize_image
from exporter.policy.model import ImageVerification
from tests.support.admission import review_body, walkthrough_policy_text, workload
from tests.support.background import BackgroundLoop
from tests.support.fake_kube import NAMESPACES, REPORT_RESOURCES, FakeKubeServer
from tests.support.registry import (
    FaultyProxy,
    RegistryServer,
    generate_signing_key,
    public_pem,
    registry_available,
    sha256_digest,
)
from tests.support.serve import ServeProcess, poll
from tests.test_policy_builders import load, policy, rule, verification

needs_registry = pytest.mark.skipif(not registry_available(), reason="needs /usr/bin/docker-registry")


@pytest.fixture(scope="module")
def registry_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, str]]:
    """A real registry with ``user/test:signed`` (signed) and ``user/test:unsigned``; the signer's PEM."""
    if not registry_available():
        pytest.skip("needs /usr/bin/docker-registry")
    key = generate_signing_key()
    registry = RegistryServer(tmp_path_factory.mktemp("security") / "registry").start()
    signed = registry.push_image("user/test", "signed", b"signed")
    registry.sign("user/test", signed, key)
    registry.push_image("user/test", "unsigned", b"unsigned")
    try:
        yield registry, public_pem(key)
    finally:
        registry.stop()


def enforce_policy_text(pem: str, reference: str) -> str:
    """The walkthrough policy, Enforce everywhere, verifying only images matching ``reference``."""
    return walkthrough_policy_text(
        pem,
        **{
            "validationFailureAction: Audit": "validationFailureAction: Enforce",
            "image: '*'": f"image: '{reference}'",
        },
    )


def apply(tmp_path: Path, policy_text: str, *images: str, extra: tuple[str, ...] = ()) -> int:
    """``trustwatch apply`` of one Pod per image in namespace ``dev``; the exit code."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    resources = tmp_path / "resources.yaml"
    pods = [workload("Pod", f"pod-{index}", "dev", image) for index, image in enumerate(images)]
    resources.write_text(yaml.safe_dump_all(pods))
    return main(["apply", "--policy", str(policy), "--resource", str(resources), *extra])


# --- 1. another spelling of the same image ----------------------------------------------------------------


@pytest.mark.registry
@needs_registry
@pytest.mark.parametrize("spelling", ["{host}:{port}", "{host}:0{port}", "LOCALHOST:{port}"])
def test_a_second_spelling_of_the_registry_does_not_escape_the_policy(
    registry_setup: tuple[RegistryServer, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    spelling: str,
) -> None:
    """Attack: the policy covers ``localhost:PORT/user/*``; the Pod names the same registry another way
    (a zero-padded port, an uppercase host) hoping the rule does not match. Refused: the image is matched in
    canonical form, verified (it is unsigned) and the Pod denied."""
    registry, pem = registry_setup
    host, port = registry.host.rsplit(":", 1)
    assert host == "127.0.0.1"
    policy = enforce_policy_text(pem, f"localhost:{port}/user/*")
    registry_host = spelling.format(host="localhost", port=port)
    capsys.readouterr()
    code = apply(
        tmp_path,
        policy,
        f"{registry_host}/user/test:unsigned",
        extra=("--insecure-registry", f"localhost:{port}"),
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"failed to verify image localhost:{port}/user/test:unsigned" in out
    assert "no matching signatures" in out


# Spellings of one Docker Hub reference that container runtimes pull from the same repository.
DOCKER_HUB_HOSTS = [
    "",
    "docker.io/",
    "index.docker.io/",
    "registry-1.docker.io/",
    "Docker.IO/",
    "INDEX.docker.io/",
    "docker.io:443/",
    "registry-1.docker.io:0443/",
]
PATTERNS = (
    "*",
    "docker.io/*",
    "docker.io/myorg/*",
    "docker.io/library/*",
    "docker.io/*/app:*",
    "docker.io/myorg/app:1",
    "ghcr.io/*",
    "ghcr.io/org/*",
    "[fc00::1]:5000/*",
    "*@sha256:*",
    "*:latest",
)
_COMPONENT = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
_DIGEST = "sha256:" + "0123456789abcdef" * 4


@st.composite
def spellings(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one image reference: registry aliases, host case, ports, ``library/``, IPv6
    forms, default tag, tag next to a digest."""
    registry = draw(st.sampled_from(["docker", "ghcr", "ipv6"]))
    path = "/".join(draw(st.lists(_COMPONENT, min_size=1, max_size=3)))
    tag = draw(st.sampled_from(["", ":latest", ":1", ":V2"]))
    digest = draw(st.sampled_from(["", f"@{_DIGEST}"]))

    def spell() -> str:
        if registry == "docker":
            host = draw(st.sampled_from(DOCKER_HUB_HOSTS))
            name = path
            if "/" not in path and draw(st.booleans()):
                name = f"library/{path}"
        elif registry == "ghcr":
            host = draw(st.sampled_from(["ghcr.io/", "GHCR.IO/", "ghcr.io:443/", "Ghcr.Io:00443/"]))
            name = path
        else:
            host = draw(st.sampled_from(["[fc00::1]:5000/", "[FC00::1]:5000/", "[fc00:0:0::1]:5000/"]))
            name = path
        written_tag = tag
        if tag == ":latest" and not digest and draw(st.booleans()):
            written_tag = ""
        if digest and not tag and draw(st.booleans()):
            written_tag = ":ignored"
        return f"{host}{name}{written_tag}{digest}"

    return spell(), spell()


@settings(max_examples=300, deadline=None)
@given(spellings(), st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3), st.sampled_from(PATTERNS))
def test_two_spellings_of_one_reference_match_the_same_rules(
    pair: tuple[str, str], references: list[str], skip: str
) -> None:
    """Property: whatever the spelling, an image is covered by exactly the same verifyImages entries (and
    skipped by the same skipImageReferences), and has one canonical form, the one verified and pinned."""
    first, second = pair
    assert normalize_image(first) == normalize_image(second)
    for skips in ((), (skip,)):
        entry = ImageVerification(tuple(references), skips, (), True, True, True, None)
        assert entry.applies_to(first) == entry.applies_to(second), (first, second, references, skips)


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        ("index.docker.io/myorg/*", "docker.io/myorg/*"),
        ("registry-1.docker.io/myorg/app:*", "docker.io/myorg/app:*"),
        ("GHCR.io/org/*", "ghcr.io/org/*"),
        ("ghcr.io:443/org/*", "ghcr.io/org/*"),
    ],
)
def test_a_pattern_that_could_never_match_is_refused_at_load(pattern: str, canonical: str) -> None:
    """Mistake turned bypass: a policy written for ``index.docker.io/myorg/*`` would match no image (images
    are matched in canonical form), so every image would be skipped. Refused at load, naming the fix."""
    document = policy(rule(verifyImages=[verification(imageReferences=[pattern])]))
    with pytest.raises(PolicyLoadError) as caught:
        load(document)
    assert caught.value.path == "spec.rules[0].verifyImages[0].imageReferences[0]"
    assert f"write {canonical!r}" in caught.value.problem
    skipping = policy(rule(verifyImages=[verification(skipImageReferences=[pattern])]))
    with pytest.raises(PolicyLoadError, match="never matches"):
        load(skipping)
    assert load(policy(rule(verifyImages=[verification(imageReferences=[canonical])])))


# --- through a real `trustwatch serve` ---------------------------------------------------------------------


def post_review(serve: ServeProcess, body: bytes, path: str = "/mutate") -> tuple[int, dict[str, Any]]:
    """POST to the webhook; the status and the JSON answer, error statuses included."""
    context = ssl.create_default_context(cafile=str(serve.ca_file))
    port = serve.webhook_url.rsplit(":", 1)[1]
    request = urllib.request.Request(
        f"https://localhost:{port}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pod_review(image: str, **request: Any) -> bytes:
    """An AdmissionReview of a Pod running ``image`` in ``dev``, with ``request`` fields replaced."""
    body = json.loads(review_body(workload("Pod", "attacker", "dev", image)))
    body["request"].update(request)
    return json.dumps(body).encode()


@pytest.mark.registry
@needs_registry
def test_serve_refuses_the_bypasses_and_survives_an_emptied_policy_file(
    registry_setup: tuple[RegistryServer, str], tmp_path: Path
) -> None:
    registry, pem = registry_setup
    port = registry.host.rsplit(":", 1)[1]
    policies = tmp_path / "policies"
    policies.mkdir()
    policy_file = policies / "enforce.yaml"
    policy_file.write_text(enforce_policy_text(pem, f"localhost:{port}/user/*"))
    unsigned = f"LOCALHOST:0{port}/user/test:unsigned"
    with ServeProcess(
        tmp_path, "--policies", str(policies), "--insecure-registry", f"localhost:{port}"
    ) as serve:
        # 1. another spelling of the registry is the same registry
        status, answer = post_review(serve, pod_review(unsigned))
        assert status == 200
        assert answer["response"]["allowed"] is False
        assert f"localhost:{port}/user/test:unsigned" in answer["response"]["status"]["message"]

        # 5. dryRun must be a boolean: "false" must not make a real request a dry run that writes no report
        not_booleans: list[object] = ["false", "true", 0, 1, [], {}]
        for value in not_booleans:
            status, answer = post_review(serve, pod_review(unsigned, dryRun=value))
            assert status == 400, value
            assert "request.dryRun must be true or false" in answer["message"]
        status, answer = post_review(serve, pod_review(unsigned, dryRun=True))
        assert (status, answer["response"]["allowed"]) == (200, False)

        # 4. required: an image another mutating webhook swapped in after /mutate is verified again
        unsigned_digest = sha256_digest(registry.get_manifest("user/test", "unsigned") or b"")
        swapped = pod_review(f"localhost:{port}/user/test@{unsigned_digest}")
        status, answer = post_review(serve, swapped, "/validate")
        assert (status, answer["response"]["allowed"]) == (200, False)
        assert "no matching signatures" in answer["response"]["status"]["message"]

        # 2. emptying the policy file does not disarm the webhook: the reload is refused and alerted
        policy_file.write_text("---\n")
        serve.wait_for_log(lambda entry: str(entry.get("message")).startswith("policy reload rejected"))
        status, answer = post_review(serve, pod_review(unsigned))
        assert answer["response"]["allowed"] is False
        assert serve.sample_value("trustwatch_policy_load_errors") == 1
        assert serve.sample_value("trustwatch_policy_last_load_success") == 0
        assert serve.sample_value("trustwatch_policies_loaded", kind="ClusterPolicy") == 1


# --- 3. deciding before the namespace labels are loaded ---------------------------------------------------


def selector_policy_text(pem: str, name: str, namespace: str, failure_policy: str) -> str:
    """Audit, but Enforce in namespaces labelled ``tier: critical``; only Pods in ``namespace``."""
    key = "\n".join(f"              {line}" for line in pem.strip().splitlines())
    return f"""apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: {failure_policy}
  validationFailureAction: Audit
  validationFailureActionOverrides:
  - action: Enforce
    namespaceSelector:
      matchLabels: {{tier: critical}}
  rules:
  - name: verify
    match:
      any:
      - resources: {{kinds: [Pod], namespaces: [{namespace}]}}
    verifyImages:
    - imageReferences: ['*']
      mutateDigest: false
      verifyDigest: false
      attestors:
      - entries:
        - keys:
            publicKeys: |-
{key}
"""


@pytest.mark.registry
@needs_registry
def test_no_quiet_audit_while_namespace_labels_are_not_loaded(
    registry_setup: tuple[RegistryServer, str], tmp_path: Path
) -> None:
    """Attack: create the Pod while trustwatch has not loaded the Namespace labels yet (just started, or the
    API server is failing its list), so the ``tier: critical`` override to Enforce cannot apply and the
    unsigned image would be admitted as Audit. Refused: trustwatch is not ready (out of the Service's
    endpoints), and a decision that needs the labels follows failurePolicy: Fail denies, Ignore admits
    and is counted as fail-open, never a quiet Audit."""
    registry, pem = registry_setup
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "fail.yaml").write_text(selector_policy_text(pem, "strict", "payments", "Fail"))
    (policies / "ignore.yaml").write_text(selector_policy_text(pem, "lenient", "shop", "Ignore"))
    with BackgroundLoop() as background:
        api = background.enter(FakeKubeServer((*REPORT_RESOURCES, NAMESPACES)))
        for name in ("payments", "shop"):
            labelled = {"name": name, "labels": {"tier": "critical"}}
            background.call(api.put_object, {"apiVersion": "v1", "kind": "Namespace", "metadata": labelled})
        background.call(api.fail_next, 100_000, 503, "/api/v1/namespaces")
        with ServeProcess(
            tmp_path,
            "--kubernetes", "on",
            "--policies", str(policies),
            "--insecure-registry", registry.host,
            env={"KUBECONFIG": str(api.write_kubeconfig(tmp_path / "kubeconfig"))},
        ) as serve:  # fmt: skip
            # Once started (until then /readyz says so), not ready for want of the Namespace labels.
            status, body = poll(
                lambda: "namespace-labels" in (answer := serve.get("/readyz"))[1] and answer
            )
            assert status == 503
            assert json.loads(body)["checks"]["namespace-labels"].startswith("not ready")
            assert webhook_get(serve, "/readyz")[0] == 503

            unsigned = f"{registry.host}/user/test:unsigned"
            strict = review_in(serve, "payments", unsigned)
            assert strict["allowed"] is False
            assert "labels of namespace payments are not loaded yet" in strict["status"]["message"]
            lenient = review_in(serve, "shop", unsigned)
            assert lenient["allowed"] is True
            assert "labels of namespace shop are not loaded yet" in " ".join(lenient["warnings"])
            fail_open = {"policy": "lenient", "rule": "verify", "namespace": "shop"}
            assert serve.sample_value("trustwatch_admission_fail_open", **fail_open) == 1

            background.call(api.clear_failures)
            poll(lambda: serve.get("/readyz")[0] == 200)
            assert webhook_get(serve, "/readyz")[0] == 200
            # with the labels, the override applies: the unsigned image is a violation under Enforce
            for namespace in ("payments", "shop"):
                answer = review_in(serve, namespace, unsigned)
                assert answer["allowed"] is False
                assert "no matching signatures" in answer["status"]["message"]


def review_in(serve: ServeProcess, namespace: str, image: str) -> dict[str, Any]:
    status, answer = post_review(serve, review_body(workload("Pod", "attacker", namespace, image)))
    assert status == 200
    response: dict[str, Any] = answer["response"]
    return response


def webhook_get(serve: ServeProcess, path: str) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(serve.ca_file))
    port = serve.webhook_url.rsplit(":", 1)[1]
    try:
        url = f"https://localhost:{port}{path}"
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# --- 6 and 7. infrastructure trouble: an error decided by failurePolicy, told without internals ------------

REGISTRY_SECRET = "db password hunter2 at /var/lib/registry/internal"


async def leaky_failure(request: web.Request) -> web.StreamResponse | None:
    """A registry whose manifest endpoint fails with an internal error page."""
    if "/manifests/" in request.path:
        return web.Response(status=418, text=f"internal failure: {REGISTRY_SECRET}")
    return None


@pytest.mark.registry
@needs_registry
@pytest.mark.parametrize("failure_policy", ["Fail", "Ignore"])
def test_infrastructure_trouble_is_an_error_decided_by_failure_policy_and_told_without_internals(
    registry_setup: tuple[RegistryServer, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failure_policy: str,
) -> None:
    """Attack on trust in the results: a failing registry (or an unusable key from a Secret) reported as a
    violation would let an outage pass for unsigned images, and its error page would leak internals into
    every denial. Refused: both are ``error`` results, failurePolicy alone decides (Fail denies, Ignore
    admits with a warning), and messages name the failure, not the registry's answer."""
    registry, pem = registry_setup
    with BackgroundLoop() as background:
        proxy = background.enter(FaultyProxy(registry.url, leaky_failure))
        policy = enforce_policy_text(pem, "*").replace(
            "failurePolicy: Fail", f"failurePolicy: {failure_policy}"
        )
        capsys.readouterr()
        code = apply(
            tmp_path, policy, f"{proxy.host}/user/test:signed", extra=("--insecure-registry", proxy.host)
        )
        out = capsys.readouterr().out
    assert REGISTRY_SECRET not in out and "hunter2" not in out
    assert "the registry answered HTTP 418 (details in trustwatch's log)" in out
    assert "error: 1" in out and "fail: 0" in out
    if failure_policy == "Fail":
        assert code == 1 and "for resource error:" in out
    else:
        assert code == 0 and "warning: policy check-image-signature.verify-image" in out

    secret_policy = enforce_policy_text("k8s://keys/cosign", "*")
    secret_policy = secret_policy.replace("failurePolicy: Fail", f"failurePolicy: {failure_policy}")
    code = apply(
        tmp_path,
        secret_policy,
        f"{registry.host}/user/test:signed",
        extra=("--insecure-registry", registry.host),
    )
    out = capsys.readouterr().out
    assert "unusable key: the key in Secret keys/cosign cannot be read without cluster access" in out
    assert "error: 1" in out and "fail: 0" in out
    assert code == (1 if failure_policy == "Fail" else 0)
