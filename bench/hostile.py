"""Hostile traffic against a real ``trustwatch serve`` over TLS, beside a run with valid traffic only.

Two fresh ``serve`` processes (local policy, no cluster; images in a registry address where nothing
listens, so every verification fails fast as an error), driven the same way (concurrency 20):

1. valid: N valid Pod reviews;
2. attack: N requests mixing every hostile category of tests/support/hostile.py (deep nesting, compressed
   bodies, wrong types, odd encodings, many containers, many registries, label values, oversized bodies)
   with a tenth of valid reviews, while 200 slowloris connections trickle headers and 1 000 idle TLS
   connections are opened.

Reported per run: answers by category and status, answers after the deadline (--timeout) or never,
/healthz and /metrics latency (probed every 0.2 s), RSS of the server before, right after, and after a
quiet minute. Targets: 0 x 500, 0 late, /healthz within 1 s, attack RSS after quiet within +20 % of the
valid run's. Run from the repository root (takes ~15 minutes at 10 000 requests):
    python3 bench/hostile.py [--requests 10000] [--quiet 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.admission import walkthrough_policy_text
from tests.support.hostile import CATEGORIES, Outcome, drive, requests
from tests.support.probe import Prober, ProbeResults
from tests.support.registry import generate_signing_key, public_pem
from tests.support.serve import ServeProcess, iter_samples

TIMEOUT = 10.0
IMAGE = "127.0.0.1:9/user/test:v1"
# Relative weights of the categories in the attack (oversized bodies are few: each is 3 MiB).
WEIGHTS = {category: 10 for category in CATEGORIES} | {"oversized": 2, "valid": 8}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def idle_connections(host: str, port: int, context: ssl.SSLContext, count: int) -> int:
    """Open ``count`` TLS connections that send nothing; returns how many the server accepted."""
    opened = []
    for _ in range(count):
        try:
            opened.append(await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost"))
        except (OSError, ssl.SSLError):
            continue
    for _reader, writer in opened:
        writer.close()
    return len(opened)


async def slowloris(host: str, port: int, context: ssl.SSLContext, count: int) -> None:
    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname="localhost"
            )
            writer.write(b"POST /mutate HTTP/1.1\r\nHost: x\r\n")
            while not reader.at_eof():
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                await asyncio.sleep(1)
        except (OSError, ssl.SSLError):
            return

    await asyncio.gather(*(one() for _ in range(count)))


@dataclass
class Run:
    """What one run measured."""

    outcome: Outcome
    probes: ProbeResults
    rss: list[float]  # MB: before, right after, after the quiet period
    wall: float
    loop_lag: dict[float, float]  # cumulative trustwatch_event_loop_lag_seconds buckets: le -> count


def loop_lag_buckets(serve: ServeProcess) -> dict[float, float]:
    return {
        float(labels["le"]): value
        for labels, value in iter_samples(serve.metric_families(), "trustwatch_event_loop_lag_seconds")
        if "le" in labels
    }


def run(workdir: Path, counts: dict[str, int], quiet: float, attack: bool) -> Run:
    policy = workdir / "policy.yaml"
    policy.write_text(
        walkthrough_policy_text(public_pem(generate_signing_key()), **{"docker.io/user/test*": "*"})
    )
    with ServeProcess(
        workdir, "--policies", str(policy), "--insecure-registry", "127.0.0.1:9", "--timeout", str(TIMEOUT)
    ) as serve:
        assert serve.process is not None
        context = ssl.create_default_context(cafile=str(serve.ca_file))
        port = int(serve.webhook_url.rsplit(":", 1)[1])
        webhook = f"https://localhost:{port}"
        probes = [serve.metrics_url + "/healthz", serve.metrics_url + "/metrics", webhook + "/healthz"]
        traffic = requests(counts, IMAGE)
        rss = [rss_mb(serve.process.pid)]
        started = time.perf_counter()

        async def go() -> Outcome:
            jobs: list[Coroutine[Any, Any, Any]] = [
                drive(webhook, context, traffic, deadline=TIMEOUT, concurrency=20)
            ]
            if attack:
                jobs.append(slowloris("127.0.0.1", port, context, 200))
                jobs.append(idle_connections("127.0.0.1", port, context, 1000))
            results = await asyncio.gather(*jobs)
            outcome: Outcome = results[0]
            return outcome

        with Prober(probes, serve.ca_file) as prober:
            outcome = asyncio.run(go())
        wall = time.perf_counter() - started
        rss.append(rss_mb(serve.process.pid))
        lag = loop_lag_buckets(serve)
        time.sleep(quiet)
        rss.append(rss_mb(serve.process.pid))
    return Run(outcome, prober.results, rss, wall, lag)


def report(name: str, measured: Run) -> None:
    outcome, probes, rss, wall = measured.outcome, measured.probes, measured.rss, measured.wall
    total = sum(sum(counter.values()) for counter in outcome.statuses.values())
    print(f"\n### {name}: {total} requests in {wall:.0f} s ({total / wall:.0f}/s)\n")
    print("| category | answers by status |\n|---|---|")
    for category, counter in sorted(outcome.statuses.items()):
        print(f"| {category} | {', '.join(f'{status}: {n}' for status, n in sorted(counter.items()))} |")
    latencies = sorted(outcome.latencies)
    print(
        f"\n500s: {outcome.total('500')}; no answer: {outcome.total('no-answer')}; "
        f"past the {TIMEOUT:g}s deadline: {sum(outcome.late.values())} {dict(outcome.late) or ''}; "
        f"answer latency p50 {latencies[len(latencies) // 2]:.3f} s, p99 "
        f"{latencies[int(len(latencies) * 0.99)]:.3f} s, max {latencies[-1]:.3f} s"
    )
    for url, values in probes.latencies.items():
        path = url.split("//", 1)[1].split("/", 1)[1]
        port = "webhook port" if url.startswith("https") else "status port"
        latencies = sorted(values)
        print(
            f"{port} /{path}: {len(latencies)} probes, failed {probes.failures[url]}, p50 "
            f"{latencies[len(latencies) // 2]:.3f} s, p99 {latencies[int(len(latencies) * 0.99)]:.3f} s, "
            f"> 1 s: {sum(p > 1 for p in latencies)}, max {latencies[-1]:.3f} s"
        )
    beats = measured.loop_lag[float("inf")]
    late = {le: beats - count for le, count in measured.loop_lag.items() if le in (0.1, 0.25, 1.0)}
    print(
        f"main event loop (server side): {beats:.0f} beats; later than 0.1 s: {late[0.1]:.0f}, "
        f"0.25 s: {late[0.25]:.0f}, 1 s: {late[1.0]:.0f}"
    )
    print(f"RSS: before {rss[0]:.0f} MB, after {rss[1]:.0f} MB, after the quiet period {rss[2]:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--quiet", type=float, default=60.0, help="seconds of quiet before the last RSS")
    args = parser.parse_args()
    weight = sum(WEIGHTS.values())
    attack_counts = {category: args.requests * share // weight for category, share in WEIGHTS.items()}
    attack_counts["valid"] += args.requests - sum(attack_counts.values())
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"# bench/hostile.py on {machine}: --requests {args.requests} --quiet {args.quiet:g}")
    with tempfile.TemporaryDirectory() as valid_dir, tempfile.TemporaryDirectory() as attack_dir:
        valid = run(Path(valid_dir), {"valid": args.requests}, args.quiet, attack=False)
        report("valid traffic only", valid)
        hostile = run(Path(attack_dir), attack_counts, args.quiet, attack=True)
        report("attack", hostile)
    ratio = hostile.rss[2] / valid.rss[2]
    print(f"\nRSS after the quiet period, attack / valid: {ratio:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
