"""Probing ``/healthz`` and ``/metrics`` the way a kubelet and Prometheus do, from a process of their own.

A probe run inside the load generator measures the generator's own event loop as much as the server: when
the generator is busy encrypting megabytes of hostile bodies, its probes wait too. Here the probes run in a
separate interpreter (standard library only), each on a new connection, like a kubelet's, so the latency
recorded is the server's.
"""

from __future__ import annotations

import argparse
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

INTERVAL = 0.2
PROBE_TIMEOUT = 10.0


@dataclass
class ProbeResults:
    """Latency of every probe (seconds, failures included) and the failures, by URL."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)


def _probe_until_stdin_closes(urls: list[str], cafile: str | None) -> ProbeResults:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    outcome = ProbeResults({url: [] for url in urls})
    while not stop.is_set():
        for url in urls:
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=context) as answer:
                    answer.read()
            except (OSError, urllib.error.URLError):  # HTTPError (any status >= 400) included
                outcome.failures[url] += 1
            outcome.latencies[url].append(time.perf_counter() - started)
        stop.wait(INTERVAL)
    return outcome


class Prober:
    """``with Prober(urls, cafile) as prober: ...``; then ``prober.results`` holds what was measured.

    The probing process runs this file as a script (so it imports nothing of the test suite) until its
    standard input is closed, then prints its results as JSON.
    """

    def __init__(self, urls: list[str], cafile: Path | None = None) -> None:
        self._args = [sys.executable, __file__, *(["--cafile", str(cafile)] if cafile else []), *urls]
        self._process: subprocess.Popen[str] | None = None
        self.results = ProbeResults()

    def __enter__(self) -> Prober:
        self._process = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process is not None
        output, _ = self._process.communicate(timeout=PROBE_TIMEOUT * len(self._args) + 5)
        if self._process.returncode != 0:
            raise AssertionError(f"the probe process failed (exit {self._process.returncode})")
        document = json.loads(output)
        self.results = ProbeResults(document["latencies"], Counter(document["failures"]))


def main() -> None:
    parser = argparse.ArgumentParser(description="Probe URLs every 0.2 s until stdin closes.")
    parser.add_argument("--cafile")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    results = _probe_until_stdin_closes(args.urls, args.cafile)
    json.dump({"latencies": results.latencies, "failures": results.failures}, sys.stdout)


if __name__ == "__main__":
    main()
