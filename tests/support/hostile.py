"""Hostile AdmissionReview traffic, by category, and a driver that fires it at a webhook: shared by the
end-to-end test (a few hundred requests per category) and bench/hostile.py (the full attack).

Every request is a complete HTTP request (body and headers); ``drive`` records each answer's status and
latency, and how many came after the deadline or never. ``/healthz`` is probed meanwhile from another
process (:mod:`tests.support.probe`).
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import random
import ssl
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.admission import workload

Request = tuple[bytes, dict[str, str]]
JSON = {"Content-Type": "application/json"}


def _review(obj: dict[str, Any], **request: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": obj.get("kind", "Pod")},
        "operation": "CREATE",
        "name": obj.get("metadata", {}).get("name", "p"),
        "namespace": obj.get("metadata", {}).get("namespace", "prod"),
        "object": obj,
    }
    body.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}


def _encode(document: Any) -> Request:
    return json.dumps(document).encode(), dict(JSON)


def _pod(image: str, namespace: str = "prod", containers: int = 1) -> dict[str, Any]:
    pod = workload("Pod", "p", namespace, image)
    pod["spec"] = {"containers": [{"name": f"c{i}", "image": image} for i in range(containers)]}
    return pod


def deep_nesting(rng: random.Random, image: str) -> Request:
    depth = rng.choice([1_000, 10_000, 100_000, 1_000_000])
    nested = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
    where = rng.choice(["body", "object", "labels"])
    if where == "body":
        return nested.encode(), dict(JSON)
    marker = "__NESTED__"
    pod = _pod(image)
    if where == "labels":
        pod["metadata"]["labels"] = {"x": marker}
    else:
        pod["spec"]["x"] = marker
    text = json.dumps(_review(pod)).replace(f'"{marker}"', nested)
    return text.encode(), dict(JSON)


def compressed(rng: random.Random, image: str) -> Request:
    body = json.dumps(_review(_pod(image))).encode()
    encoding = rng.choice(["gzip", "deflate", "br", "gzip-invalid", "bomb"])
    if encoding == "gzip":
        return gzip.compress(body), {**JSON, "Content-Encoding": "gzip"}
    if encoding == "deflate":
        return zlib.compress(body), {**JSON, "Content-Encoding": "deflate"}
    if encoding == "br":
        return body, {**JSON, "Content-Encoding": "br"}
    if encoding == "bomb":  # 1 MB of zeros inflates to 1 GB
        return gzip.compress(b"0" * (1 << 20)), {**JSON, "Content-Encoding": "gzip"}
    return b"\x1f\x8b\x08\x00garbage" + body[:100], {**JSON, "Content-Encoding": "gzip"}


_WRONG_TYPES: list[tuple[tuple[str, ...], Any]] = [
    (("request", "object", "metadata"), "not-an-object"),
    (("request", "object", "metadata"), [1, 2]),
    (("request", "name"), {"a": 1}),
    (("request", "namespace"), 5),
    (("request", "kind"), ["Pod"]),
    (("request", "kind", "kind"), 7),
    (("request", "uid"), None),
    (("request", "operation"), True),
    (("request", "object", "spec"), "spec"),
    (("request", "object", "spec", "containers"), {"a": 1}),
    (("request", "object", "metadata", "labels"), {"a": [1]}),
    (("request", "dryRun"), "false"),
    (("request",), "request"),
]


def wrong_types(rng: random.Random, image: str) -> Request:
    document = _review(_pod(image))
    path, value = rng.choice(_WRONG_TYPES)
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)
    return _encode(document)


def odd_encodings(rng: random.Random, image: str) -> Request:
    document = _review(_pod(image))
    choice = rng.choice(["v1beta1", "utf16", "array", "digits", "bom"])
    if choice == "v1beta1":
        document["apiVersion"] = "admission.k8s.io/v1beta1"
        return _encode(document)
    if choice == "utf16":
        return json.dumps(document).encode("utf-16"), dict(JSON)
    if choice == "array":  # a 3 MB top-level array
        return b"[" + b"0," * (1_500_000 - 1) + b"0]", dict(JSON)
    if choice == "digits":
        text = json.dumps(document).replace('"CREATE"', '"CREATE", "n": ' + "9" * 5000)
        return text.encode(), dict(JSON)
    return b"\xef\xbb\xbf" + json.dumps(document).encode(), dict(JSON)


def many_containers(rng: random.Random, image: str) -> Request:
    count = rng.choice([100, 200, 201, 40_000])
    return _encode(_review(_pod(image, containers=count)))


def many_registries(rng: random.Random, image: str) -> Request:
    pod = _pod(image)
    pod["spec"]["containers"] = [
        {"name": f"c{i}", "image": f"r{rng.randrange(10**9)}.invalid/app:v1"} for i in range(200)
    ]
    return _encode(_review(pod))


def label_values(rng: random.Random, image: str) -> Request:
    choice = rng.choice(["surrogate", "nul", "namespace", "kind"])
    document = _review(_pod(image, namespace=f"ns-{rng.randrange(10**9)}"))
    if choice == "surrogate":
        document["request"]["kind"]["kind"] = "Pod\ud800"
    elif choice == "nul":
        document["request"]["namespace"] = "pro\x00d"
    elif choice == "kind":
        document["request"]["kind"]["kind"] = f"Kind{rng.randrange(10**9)}"
    return _encode(document)


def oversized(rng: random.Random, image: str) -> Request:
    pod = _pod(image)
    pod["metadata"]["annotations"] = {"big": "x" * (3 * 1024 * 1024 + rng.randrange(1000))}
    return _encode(_review(pod))


def valid(rng: random.Random, image: str) -> Request:
    return _encode(_review(_pod(image, namespace=rng.choice(["prod", "dev"]))))


CATEGORIES: dict[str, Callable[[random.Random, str], Request]] = {
    "deep-nesting": deep_nesting,
    "compressed": compressed,
    "wrong-types": wrong_types,
    "odd-encodings": odd_encodings,
    "many-containers": many_containers,
    "many-registries": many_registries,
    "label-values": label_values,
    "oversized": oversized,
}


def requests(
    counts: dict[str, int], image: str, seed: int = 11, variants: int = 16
) -> list[tuple[str, Request]]:
    """``counts[category]`` requests of each category, interleaved (the same ones for the same seed).

    Each category's requests are drawn from ``variants`` bodies built up front, so building megabytes of
    JSON does not slow the client down while it measures the server.
    """
    rng = random.Random(seed)
    pools = {
        category: [
            (valid if category == "valid" else CATEGORIES[category])(rng, image) for _ in range(variants)
        ]
        for category in counts
    }
    plan = [
        (category, rng.choice(pools[category])) for category, count in counts.items() for _ in range(count)
    ]
    rng.shuffle(plan)
    return plan


@dataclass
class Outcome:
    """What ``drive`` saw: answers by category and status, latencies, deadline misses, /healthz."""

    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    late: Counter[str] = field(default_factory=Counter)

    def count(self, category: str, status: str) -> None:
        self.statuses.setdefault(category, Counter())[status] += 1

    def total(self, status: str) -> int:
        return sum(counter[status] for counter in self.statuses.values())


async def drive(
    webhook_url: str,
    context: ssl.SSLContext,
    traffic: list[tuple[str, Request]],
    *,
    deadline: float,
    concurrency: int = 20,
    give_up: float = 40.0,
) -> Outcome:
    """Send ``traffic`` to ``webhook_url`` + ``/mutate`` with ``concurrency`` in flight (probe
    ``/healthz`` meanwhile with :class:`tests.support.probe.Prober`). An answer after ``deadline`` seconds
    is late; a request without answer after ``give_up`` seconds is counted as ``no-answer``."""
    outcome = Outcome()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        queue = iter(traffic)

        async def worker() -> None:
            for category, (body, headers) in queue:
                started = time.perf_counter()
                try:
                    async with session.post(
                        webhook_url + "/mutate",
                        data=body,
                        headers=headers,
                        ssl=context,
                        timeout=aiohttp.ClientTimeout(total=give_up),
                    ) as answer:
                        await answer.read()
                        status = str(answer.status)
                except TimeoutError:
                    status = "no-answer"
                except aiohttp.ClientError:
                    status = "connection-error"
                elapsed = time.perf_counter() - started
                outcome.latencies.append(elapsed)
                outcome.count(category, status)
                if elapsed > deadline:
                    outcome.late[category] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcome
