"""Benchmark of image verification against a real loopback registry (Debian's docker-registry).

Measures, in one run and against the same registry:

1. cold verification of N distinct signed images, one after another, through ``verify_image`` versus the
   bare HTTP round trips the same verification needs (HEAD manifest, GET ``.sig`` manifest, GET payload
   blob) made with a plain aiohttp session; the ratio is the client's overhead (target <= 1.3x);
2. 100 concurrent verifications of distinct images (wall time, per-verification latency percentiles),
   again next to the bare round trips done with the same concurrency;
3. the whole-process time of ``trustwatch verify`` next to a bare ``python -c pass``;
4. keyless, against a Sigstore of our own (tests/support/sigstore_box.py: Fulcio, CT log, Rekor): cold
   verification of images signed by cosign 3 (a bundle attached as a referrer, through the registry's
   ``sha256-<hex>`` tag fallback) and of legacy keyless ``.sig`` images, each against the bare round trips
   it needs; the CPU cost of one keyless decision (certificate chain, SCT, SET, inclusion proof, identity)
   with and without the verified certificate path cached; 100 concurrent keyless verifications.

Run from the repository root:  python3 bench/verify.py [--images 50] [--concurrency 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from exporter.cosign import (
    IdentityPolicy,
    KeyAttestor,
    KeylessAttestor,
    VerificationOptions,
    Verified,
    load_public_key,
    verify_found,
    verify_image,
)
from exporter.cosign.discovery import discover
from exporter.cosign.found import FoundArtifacts
from exporter.registry import ImageReference, RegistryClient, RegistryOptions, parse_reference
from exporter.sigstore import TrustedRoot, parse_trusted_root
from exporter.sigstore.verify import clear_verification_caches
from tests.support.oci_push import attach_referrer, tag_for
from tests.support.registry import (
    OCI_MANIFEST,
    RegistryServer,
    SignatureLayerSpec,
    generate_signing_key,
    public_pem,
    sha256_digest,
)
from tests.support.sigstore_box import GITHUB_ISSUER, Identity, SigstoreBox

ACCEPT = f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"
WORKFLOW = "https://github.com/bench/app/.github/workflows/release.yml@refs/tags/v1.0.0"
KEYLESS = Identity(WORKFLOW, GITHUB_ISSUER)

# An image to verify and what a bare client must GET for it after resolving the tag: (reference, paths).
Image = tuple[str, tuple[str, ...]]


def _images(registry: RegistryServer, count: int, prefix: str) -> list[Image]:
    """Push and sign ``count`` distinct images with the key: the ``.sig`` manifest and its payload blob."""
    images: list[Image] = []
    for index in range(count):
        repo = f"bench/{prefix}-{index}"
        digest = registry.push_image(repo, "v1")
        layer = registry.sign(repo, digest, _SIGNER)
        paths = (f"manifests/{tag_for(digest)}.sig", f"blobs/{sha256_digest(layer.payload)}")
        images.append((f"{registry.host}/{repo}:v1", paths))
    return images


def _keyless_sig_images(registry: RegistryServer, box: SigstoreBox, count: int, prefix: str) -> list[Image]:
    """Legacy keyless ``.sig`` images (certificate, chain and Rekor SET bundle in the annotations)."""
    images: list[Image] = []
    for index in range(count):
        repo = f"bench/{prefix}-{index}"
        digest = registry.push_image(repo, "v1")
        legacy = box.legacy_signature(digest, f"{registry.host}/{repo}", KEYLESS)
        registry.push_signature_layers(repo, digest, [legacy.layer])
        paths = (f"manifests/{tag_for(digest)}.sig", f"blobs/{sha256_digest(legacy.layer.payload)}")
        images.append((f"{registry.host}/{repo}:v1", paths))
    return images


def _bundle_images(registry: RegistryServer, box: SigstoreBox, count: int, prefix: str) -> list[Image]:
    """cosign 3 keyless: a v0.3 DSSE bundle (Rekor v1 entry with inclusion proof) as a referrer, listed in
    the ``sha256-<hex>`` index (the registry has no referrers API); a bare client GETs that index, the
    referrer manifest and the bundle blob."""
    images: list[Image] = []
    for index in range(count):
        repo = f"bench/{prefix}-{index}"
        digest = registry.push_image(repo, "v1")
        bundle = box.image_bundle(digest, KEYLESS)
        layer = SignatureLayerSpec(bundle.json, {}, bundle.media_type)
        referrer = attach_referrer(registry, repo, digest, bundle.media_type, [layer])
        paths = (
            f"manifests/{tag_for(digest)}",
            f"manifests/{referrer.digest}",
            f"blobs/{sha256_digest(bundle.json)}",
        )
        images.append((f"{registry.host}/{repo}:v1", paths))
    return images


_SIGNER = generate_signing_key()


async def _bare_round_trips(session: aiohttp.ClientSession, host: str, image: Image) -> None:
    """The requests verification needs, one after another, with nothing else: no auth, checks, parsing
    or crypto."""
    reference, paths = image
    repo = reference.split("/", 1)[1].rsplit(":", 1)[0]
    base = f"http://{host}/v2/{repo}"
    async with session.head(f"{base}/manifests/v1", headers={"Accept": ACCEPT}) as response:
        response.raise_for_status()
    for path in paths:
        async with session.get(f"{base}/{path}", headers={"Accept": ACCEPT}) as response:
            response.raise_for_status()
            await response.read()


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def sequential(
    registry: RegistryServer, images: list[Image], options: VerificationOptions
) -> dict[str, float]:
    """Per-image median latency of verify_image vs bare round trips, each on one pooled session."""
    registry_options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    ours: list[float] = []
    bare: list[float] = []
    async with RegistryClient(registry_options) as client, aiohttp.ClientSession() as session:
        # Warm both connection pools on an unrelated request so neither pays the first connect.
        await _bare_round_trips(session, registry.host, images[0])
        await verify_image(client, parse_reference(images[0][0]), options)
        for index, image in enumerate(images[1:], start=1):
            reference = parse_reference(image[0])

            async def verify(ref: ImageReference = reference) -> None:
                outcome = await verify_image(client, ref, options)
                assert isinstance(outcome, Verified), outcome.reason

            async def round_trips(img: Image = image) -> None:
                await _bare_round_trips(session, registry.host, img)

            # Alternate the order so neither side always runs second.
            first, second = (verify, round_trips) if index % 2 else (round_trips, verify)
            a, b = await _timed(first), await _timed(second)
            ours.append(a if first is verify else b)
            bare.append(b if first is verify else a)
    return {
        "ours_ms": statistics.median(ours) * 1e3,
        "bare_ms": statistics.median(bare) * 1e3,
        # Pairs ran back to back, so their ratio cancels most of the load other processes put on the machine.
        "ratio": statistics.median(a / b for a, b in zip(ours, bare, strict=True)),
    }


async def concurrent(
    registry: RegistryServer, images: list[Image], options: VerificationOptions, rounds: int
) -> dict[str, float]:
    """All images at once, ``rounds`` times in alternating order: median wall time, ours vs bare round trips,
    and latency percentiles of single verifications."""
    registry_options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    latencies: list[float] = []

    async def one(client: RegistryClient, image: Image) -> None:
        start = time.perf_counter()
        outcome = await verify_image(client, parse_reference(image[0]), options)
        latencies.append(time.perf_counter() - start)
        assert isinstance(outcome, Verified), outcome.reason

    async def ours() -> None:
        async with RegistryClient(registry_options) as client:
            await asyncio.gather(*(one(client, image) for image in images))

    async def bare() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            await asyncio.gather(*(_bare_round_trips(session, registry.host, image) for image in images))

    ours_walls: list[float] = []
    bare_walls: list[float] = []
    for index in range(rounds):
        if index % 2:
            bare_walls.append(await _timed(bare))
            ours_walls.append(await _timed(ours))
        else:
            ours_walls.append(await _timed(ours))
            bare_walls.append(await _timed(bare))
    latencies.sort()
    return {
        "ours_wall_ms": statistics.median(ours_walls) * 1e3,
        "bare_wall_ms": statistics.median(bare_walls) * 1e3,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1e3,
        "max_ms": latencies[-1] * 1e3,
    }


def keyless_cpu(
    registry: RegistryServer, image: Image, options: VerificationOptions, rounds: int
) -> dict[str, float]:
    """Median µs of one keyless decision (``verify_found``: parse, certificate chain to Fulcio, SCT, SET,
    inclusion proof against the checkpoint, identity) over already discovered artifacts, with every cache
    emptied before each call, and with the verified certificate path cached. A fresh copy of the
    discovery each call keeps the parse cache out of both."""

    async def fetch() -> FoundArtifacts:
        registry_options = RegistryOptions(insecure_registries=frozenset({registry.host}))
        reference = parse_reference(image[0])
        async with RegistryClient(registry_options) as client:
            found = await discover(client, reference.with_digest(await client.resolve_digest(reference)))
        assert isinstance(found, FoundArtifacts), found
        return found

    found = asyncio.run(fetch())

    def once(cold: bool) -> float:
        copy = dataclasses.replace(found)
        if cold:
            clear_verification_caches()
        start = time.perf_counter()
        outcome = verify_found(copy, options)
        elapsed = time.perf_counter() - start
        assert isinstance(outcome, Verified), outcome.reason
        return elapsed

    once(False)
    cold = [once(True) for _ in range(rounds)]
    warm = [once(False) for _ in range(rounds)]
    return {"cold_us": statistics.median(cold) * 1e6, "cached_us": statistics.median(warm) * 1e6}


def whole_process(registry: RegistryServer, image: str, key_file: Path, rounds: int) -> dict[str, float]:
    """Median wall time of `python -m exporter verify` vs `python -c pass`, same interpreter."""
    root = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        "-m",
        "exporter",
        "verify",
        "--insecure-registry",
        registry.host,
        "--key",
        str(key_file),
        image,
    ]

    def run(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
        return time.perf_counter() - start

    verify_times = [run(command) for _ in range(rounds)]
    bare_times = [run([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    # The floor of any Python verifier: the interpreter plus the HTTP and crypto libraries it must load.
    import_times = [run([sys.executable, "-c", "import aiohttp, cryptography.x509"]) for _ in range(rounds)]
    return {
        "verify_ms": statistics.median(verify_times) * 1e3,
        "python_ms": statistics.median(bare_times) * 1e3,
        "imports_ms": statistics.median(import_times) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=50, help="distinct images for the sequential run")
    parser.add_argument("--concurrency", type=int, default=100, help="distinct images verified at once")
    parser.add_argument(
        "--rounds", type=int, default=5, help="runs of the concurrent and whole-process parts"
    )
    parser.add_argument("--cpu-rounds", type=int, default=200, help="calls of the keyless CPU measurement")
    args = parser.parse_args()
    key = load_public_key(public_pem(_SIGNER), "bench")
    options = VerificationOptions(attestors=(KeyAttestor(name="bench", keys=(key,)),))
    box = SigstoreBox("bench")
    root: TrustedRoot = parse_trusted_root(json.dumps(box.trusted_root()).encode(), "bench trusted root")
    identity = IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER)
    keyless = VerificationOptions(
        attestors=(KeylessAttestor(name="bench", identities=(identity,)),), trusted_root=root
    )
    with tempfile.TemporaryDirectory() as directory, RegistryServer(Path(directory)) as registry:
        setup = time.perf_counter()
        sequential_images = _images(registry, args.images + 1, "seq")
        concurrent_images = _images(registry, args.concurrency, "conc")
        bundle_images = _bundle_images(registry, box, args.images + 1, "bundle")
        keyless_sig_images = _keyless_sig_images(registry, box, args.images + 1, "keyless-sig")
        keyless_concurrent = _bundle_images(registry, box, args.concurrency, "keyless-conc")
        setup = time.perf_counter() - setup
        key_file = Path(directory) / "bench.pub"
        key_file.write_text(public_pem(_SIGNER))
        seq = asyncio.run(sequential(registry, sequential_images, options))
        conc = asyncio.run(concurrent(registry, concurrent_images, options, args.rounds))
        bundle_seq = asyncio.run(sequential(registry, bundle_images, keyless))
        sig_seq = asyncio.run(sequential(registry, keyless_sig_images, keyless))
        keyless_conc = asyncio.run(concurrent(registry, keyless_concurrent, keyless, args.rounds))
        cpu_bundle = keyless_cpu(registry, bundle_images[0], keyless, args.cpu_rounds)
        cpu_sig = keyless_cpu(registry, keyless_sig_images[0], keyless, args.cpu_rounds)
        proc = whole_process(registry, sequential_images[0][0], key_file, args.rounds)
    version = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True, check=False)
    print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"registry: {version.stdout.strip()} on 127.0.0.1; setup (push+sign) {setup:.1f}s")
    print()
    print("| measurement | trustwatch | bare round trips | ratio |")
    print("|---|---|---|---|")
    print(
        f"| cold verification, median of {args.images} distinct images | {seq['ours_ms']:.2f} ms | "
        f"{seq['bare_ms']:.2f} ms | {seq['ratio']:.2f}x (median of per-image ratios) |"
    )
    print(
        f"| {args.concurrency} concurrent verifications, wall (median of {args.rounds}) | "
        f"{conc['ours_wall_ms']:.0f} ms | "
        f"{conc['bare_wall_ms']:.0f} ms | {conc['ours_wall_ms'] / conc['bare_wall_ms']:.2f}x |"
    )
    print(
        f"| {args.concurrency} concurrent, per-verification latency p50 / p95 / max | "
        f"{conc['p50_ms']:.0f} / {conc['p95_ms']:.0f} / {conc['max_ms']:.0f} ms | | |"
    )
    for label, result in (
        ("keyless bundle on a referrer (tag fallback)", bundle_seq),
        ("keyless legacy `.sig`", sig_seq),
    ):
        print(
            f"| cold verification, {label}, median of {args.images} distinct images | "
            f"{result['ours_ms']:.2f} ms | {result['bare_ms']:.2f} ms | {result['ratio']:.2f}x |"
        )
    print(
        f"| {args.concurrency} concurrent keyless verifications (bundles), wall (median of {args.rounds}) | "
        f"{keyless_conc['ours_wall_ms']:.0f} ms | {keyless_conc['bare_wall_ms']:.0f} ms | "
        f"{keyless_conc['ours_wall_ms'] / keyless_conc['bare_wall_ms']:.2f}x |"
    )
    print(
        f"| {args.concurrency} concurrent keyless, per-verification latency p50 / p95 / max | "
        f"{keyless_conc['p50_ms']:.0f} / {keyless_conc['p95_ms']:.0f} / {keyless_conc['max_ms']:.0f} ms | | |"
    )
    for label, cpu in (("bundle (DSSE, Rekor v1)", cpu_bundle), ("legacy `.sig`", cpu_sig)):
        print(
            f"| CPU of one keyless decision, {label}, median of {args.cpu_rounds}: cold / certificate path "
            f"cached | {cpu['cold_us']:.0f} µs / {cpu['cached_us']:.0f} µs | | |"
        )
    print(
        f"| whole process `trustwatch verify`, median of {args.rounds} | {proc['verify_ms']:.0f} ms | "
        f"{proc['python_ms']:.0f} ms (`python -c pass`) | {proc['verify_ms'] / proc['python_ms']:.1f}x |"
    )
    print(
        f"| same, against importing aiohttp + cryptography | {proc['verify_ms']:.0f} ms | "
        f"{proc['imports_ms']:.0f} ms | {proc['verify_ms'] / proc['imports_ms']:.2f}x |"
    )


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
