"""Benchmark of the admission webhook over TLS, against a null aiohttp TLS handler measured in the same run.

1. Warm cache: the webhook (``POST /mutate``, walkthrough policy, Deployment with a signed image in
   ``prod``, verification cached) and a null handler returning a fixed AdmissionReview each run in a child
   process of their own with the same TLS setup; this process drives both with the same concurrency and
   request count. Reported: throughput (req/s), p50/p99 latency, and the webhook/null ratios. Targets:
   throughput >= 60 % of the null handler's, p99 <= 10 ms at 200 concurrent.
   Two more webhooks run the same way: ``cpol2``, a ClusterPolicy requiring two keys and an image
   registry, and ``ivpol``, the same check as an ImageValidatingPolicy (3 CEL validations, 2 attestors).
   Target: the ImageValidatingPolicy's warm p50 within 1.2x of the ClusterPolicy's.
2. Cold path: 100 concurrent reviews of one image nobody verified yet, against a fresh engine; reported
   are how many verifications actually ran (target: exactly one, single-flight) and the wall time.

The registry is Debian's docker-registry on loopback. Run from the repository root:
    python3 bench/admission.py [--requests 4000] [--concurrency 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import ssl
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.admission.engine import AdmissionConfig, AdmissionEngine
from exporter.admission.server import build_webhook_app
from exporter.admission.tls import ServingCertificate, TLSConfig
from exporter.admission.verifier import ImageVerifier
from exporter.listen import start_site
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from exporter.registry import RegistryClient, RegistryOptions
from tests.support.admission import review_body, walkthrough_policy_text, workload
from tests.support.registry import RegistryServer, generate_signing_key, public_pem

TWO_KEYS_CLUSTER_POLICY = """\
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: two-keys
spec:
  validationFailureAction: Enforce
  rules:
  - name: verify
    match:
      any:
      - resources:
          kinds: [Pod]
          namespaces: [prod]
    verifyImages:
    - imageReferences: ['REGISTRY/*']
      attestors:
      - entries:
        - keys:
            publicKeys: |-
KEY_A
      - entries:
        - keys:
            publicKeys: |-
KEY_B
"""
TWO_KEYS_IMAGE_POLICY = """\
apiVersion: policies.kyverno.io/v1
kind: ImageValidatingPolicy
metadata:
  name: two-keys
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [pods]
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: prod
  matchImageReferences:
  - glob: 'REGISTRY/*'
  attestors:
  - name: a
    cosign:
      key:
        data: |-
KEY_A
  - name: b
    cosign:
      key:
        data: |-
KEY_B
  validations:
  - expression: images.containers.all(i, verifyImageSignatures(i, [attestors.a]) > 0)
    message: not signed by key a
  - expression: images.containers.all(i, verifyImageSignatures(i, [attestors.b]) > 0)
    message: not signed by key b
  - expression: images.containers.all(i, image(i).registry() == 'REGISTRY')
    message: images must come from REGISTRY
"""
KINDS = ("null", "webhook", "cpol2", "ivpol")


def _two_key_policies(registry_host: str, key_a: Any, key_b: Any) -> tuple[str, str]:
    """The two-key check as a ClusterPolicy and as an ImageValidatingPolicy."""

    def fill(template: str, indent: int) -> str:
        pems = {"KEY_A": public_pem(key_a), "KEY_B": public_pem(key_b)}
        for marker, pem in pems.items():
            template = template.replace(marker, textwrap.indent(pem.strip(), " " * indent))
        return template.replace("REGISTRY", registry_host)

    return fill(TWO_KEYS_CLUSTER_POLICY, 14), fill(TWO_KEYS_IMAGE_POLICY, 10)


NULL_RESPONSE = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "response": {"uid": "fixed", "allowed": True},
}


async def _webhook(
    policy_text: str, registry_host: str, metrics: ServiceMetrics
) -> tuple[AdmissionEngine, ImageVerifier, RegistryClient]:
    client = await RegistryClient(
        RegistryOptions(insecure_registries=frozenset({registry_host}))
    ).__aenter__()
    verifier = ImageVerifier(client, metrics)
    policies = parse_policies(policy_text)
    engine = AdmissionEngine(lambda: policies, verifier, metrics, config=AdmissionConfig(timeout=10))
    return engine, verifier, client


def _serve_child(kind: str, tls_dir: str, policy_text: str, registry_host: str, ports: Any) -> None:
    """Child process: serve the webhook or the null handler over TLS until killed."""

    async def main() -> None:
        metrics = ServiceMetrics(CollectorRegistry())
        certificate = ServingCertificate.open(TLSConfig(generate_dir=Path(tls_dir) / kind), metrics)
        if kind != "null":
            engine, _verifier, _client = await _webhook(policy_text, registry_host, metrics)
            app = build_webhook_app(engine, metrics, ready=lambda: True)
        else:
            body = json.dumps(NULL_RESPONSE).encode()

            async def null(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=body, content_type="application/json")

            app = web.Application()
            app.router.add_post("/mutate", null)
        _runner, port = await start_site(app, "127.0.0.1", 0, ssl_context=certificate.context)
        ports.put((port, str(certificate.ca_file)))
        await asyncio.Event().wait()

    asyncio.run(main())


async def _load(
    url: str, ca_file: str, body: bytes, requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """Send ``requests`` POSTs with ``concurrency`` in flight; (requests/s, latencies in seconds)."""
    context = ssl.create_default_context(cafile=ca_file)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    latencies: list[float] = []
    queue = iter(range(requests))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    answer = await response.read()
                    assert response.status == 200, answer[:200]
                latencies.append(time.perf_counter() - started)

        # Warm up connections (TLS handshakes) and the verification cache before timing.
        warm = iter(range(concurrency))
        await asyncio.gather(*(worker_once(session, url, body) for _ in warm))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies


async def worker_once(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """A warm-up review; every server must admit (the benchmark measures the admitting warm path)."""
    async with session.post(url, data=body) as response:
        answer = json.loads(await response.read())
        assert answer["response"]["allowed"], answer


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _cold_path(policy_text: str, registry: RegistryServer, key: Any, tls_dir: Path) -> dict[str, float]:
    """100 concurrent reviews of one image never verified before, on a fresh engine in this process."""
    digest = registry.push_image("bench/cold", "v1", os.urandom(16))
    registry.sign("bench/cold", digest, key)
    metrics = ServiceMetrics(CollectorRegistry())
    certificate = ServingCertificate.open(TLSConfig(generate_dir=tls_dir / "cold"), metrics)
    engine, verifier, client = await _webhook(policy_text, registry.host, metrics)
    app = build_webhook_app(engine, metrics, ready=lambda: True)
    runner, port = await start_site(app, "127.0.0.1", 0, ssl_context=certificate.context)
    body = review_body(workload("Deployment", "cold", "prod", f"{registry.host}/bench/cold:v1"))
    context = ssl.create_default_context(cafile=str(certificate.ca_file))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100, ssl=context)) as session:

            async def one() -> bool:
                async with session.post(f"https://127.0.0.1:{port}/mutate", data=body) as response:
                    return bool((await response.json())["response"]["allowed"])

            started = time.perf_counter()
            allowed = await asyncio.gather(*(one() for _ in range(100)))
            elapsed = time.perf_counter() - started
    finally:
        await runner.cleanup()
        await verifier.close()
        await client.__aexit__(None, None, None)
    sample = metrics.registry.get_sample_value
    return {
        "verifications": sample("trustwatch_image_verification_duration_seconds_count", {"result": "pass"})
        or 0,
        "misses": sample("trustwatch_verification_cache_lookups_total", {"result": "miss"}) or 0,
        "shared": sample("trustwatch_verification_cache_lookups_total", {"result": "shared"}) or 0,
        "hits": sample("trustwatch_verification_cache_lookups_total", {"result": "hit"}) or 0,
        "allowed": float(sum(allowed)),
        "wall_ms": elapsed * 1000,
    }


async def _in_process(
    texts: dict[str, str], registry_host: str, body: bytes, reviews: int
) -> dict[str, float]:
    """Median µs per warm ``engine.review`` (no TLS, no HTTP) of each webhook kind, interleaved rounds."""
    from exporter.admission.review import parse_review  # noqa: PLC0415

    request = parse_review(body)
    engines = {}
    closers = []
    for kind in ("webhook", "cpol2", "ivpol"):
        metrics = ServiceMetrics(CollectorRegistry())
        engine, verifier, client = await _webhook(texts[kind], registry_host, metrics)
        decision = await engine.review("mutate", request)
        assert decision.response.allowed, decision.response.message
        engines[kind] = engine
        closers.append((verifier, client))
    samples: dict[str, list[float]] = {kind: [] for kind in engines}
    for _round in range(5):
        for kind, engine in engines.items():
            started = time.perf_counter()
            for _ in range(reviews):
                await engine.review("mutate", request)
            samples[kind].append((time.perf_counter() - started) / reviews * 1e6)
    for verifier, client in closers:
        await verifier.close()
        await client.__aexit__(None, None, None)
    return {kind: statistics.median(values) for kind, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument(
        "--concurrency", default="1,200", help="comma-separated concurrency levels (default 1,200)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key, second_key = generate_signing_key(), generate_signing_key()
    policy_text = walkthrough_policy_text(public_pem(key))
    with tempfile.TemporaryDirectory() as tmp, RegistryServer(Path(tmp) / "registry") as registry:
        digest = registry.push_image("user/test", "signed", b"bench image")
        registry.sign("user/test", digest, key)
        registry.sign("user/test", digest, second_key)
        cpol2, ivpol = _two_key_policies(registry.host, key, second_key)
        texts = {"null": "", "webhook": policy_text, "cpol2": cpol2, "ivpol": ivpol}
        body = review_body(workload("Deployment", "signed", "prod", f"{registry.host}/user/test:signed"))
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        children = {}
        for kind in KINDS:
            child = context.Process(target=_serve_child, args=(kind, tmp, texts[kind], registry.host, ports))
            child.start()
            children[kind] = (child, *ports.get(timeout=60))
        levels = [int(level) for level in args.concurrency.split(",")]
        rows: dict[tuple[int, str], list[tuple[float, list[float]]]] = {}
        try:
            for level in levels:
                for _ in range(args.rounds):
                    for kind in KINDS:  # interleaved: drift on a shared machine hits every server
                        _child, port, ca_file = children[kind]
                        url = f"https://127.0.0.1:{port}/mutate"
                        result = asyncio.run(_load(url, ca_file, body, args.requests, level))
                        rows.setdefault((level, kind), []).append(result)
        finally:
            for child, _port, _ca in children.values():
                child.kill()
                child.join()
        cold = asyncio.run(_cold_path(policy_text, registry, key, Path(tmp)))
        in_process = asyncio.run(_in_process(texts, registry.host, body, max(200, args.requests // 4)))
    report: dict[tuple[int, str], dict[str, float]] = {}
    for (level, kind), results in rows.items():
        latencies = [latency for _, round_latencies in results for latency in round_latencies]
        report[level, kind] = {
            "throughput": statistics.median(rate for rate, _ in results),
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
        }
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"warm cache: {args.requests} requests x {args.rounds} rounds per concurrency level")
    for level in levels:
        for kind in KINDS:
            values = report[level, kind]
            print(
                f"  c={level:<4} {kind:8} {values['throughput']:8.0f} req/s   "
                f"p50 {values['p50_ms']:7.2f} ms   p99 {values['p99_ms']:7.2f} ms"
            )
        ratio = report[level, "webhook"]["throughput"] / report[level, "null"]["throughput"]
        print(
            f"  c={level:<4} webhook/null throughput {ratio:.0%}; "
            f"webhook p99 {report[level, 'webhook']['p99_ms']:.2f} ms"
        )
        ivp, cpol = report[level, "ivpol"], report[level, "cpol2"]
        print(
            f"  c={level:<4} ImageValidatingPolicy/ClusterPolicy (two keys): p50 "
            f"{ivp['p50_ms'] / cpol['p50_ms']:.2f}x, throughput {ivp['throughput'] / cpol['throughput']:.0%}"
        )
    print("  targets: throughput >= 60% of null, p99 <= 10 ms at c=200; ivpol p50 <= 1.2x cpol2")
    print(
        "in process, warm engine.review (median of 5 rounds): "
        + ", ".join(f"{kind} {value:.0f} us" for kind, value in in_process.items())
        + f"; ivpol/cpol2 {in_process['ivpol'] / in_process['cpol2']:.2f}x"
    )
    print(
        f"cold path: 100 concurrent reviews of one new image -> {cold['verifications']:.0f} verification(s) "
        f"(cache: {cold['misses']:.0f} miss, {cold['shared']:.0f} shared, {cold['hits']:.0f} hit), "
        f"{cold['allowed']:.0f} admitted, {cold['wall_ms']:.0f} ms wall"
    )


if __name__ == "__main__":
    main()
