"""Run the real ``trustwatch serve`` as a child process and talk to it over loopback.

Typical use::

    with ServeProcess(tmp_path, "--policies", str(policy_file)) as serve:
        serve.metrics_url      # "http://127.0.0.1:PORT" (port 0 resolved from its JSON logs)
        serve.webhook_url      # "https://127.0.0.1:PORT", certificate for "localhost" signed by serve.ca_file
        serve.review(body)     # POST an AdmissionReview to /mutate, returns the parsed response
        serve.metric_families()
    # leaving the block sends SIGTERM; serve.returncode is then the exit code

Both servers bind port 0; the URLs come from the "listening" log lines, so no port is ever guessed.
``HOME`` points into the temp dir, so no kubeconfig on the machine leaks in.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT = 30.0


class ServeProcess:
    """``trustwatch serve --log-format json`` on loopback, with the given extra arguments."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.args = [
            sys.executable, "-m", "exporter", "serve",
            "--metrics-address", "127.0.0.1:0",
            "--webhook-address", "127.0.0.1:0",
            "--state-dir", str(self.state_dir),
            "--log-format", "json",
            *args,
        ]  # fmt: skip
        self.env = {**os.environ, "HOME": str(workdir), "KUBECONFIG": str(workdir / "no-kubeconfig")}
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.env.update(env or {})
        self.logs: list[dict[str, Any]] = []
        self._log_changed = threading.Condition()
        self.process: subprocess.Popen[str] | None = None
        self.returncode: int | None = None

    # --- lifecycle --------------------------------------------------------------------------------------
    def __enter__(self) -> ServeProcess:
        self.process = subprocess.Popen(
            self.args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=self.env
        )
        threading.Thread(target=self._read_logs, daemon=True).start()
        self.wait_for_log(lambda entry: entry.get("message") == "status server listening")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
        return self.returncode

    def _read_logs(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = {"message": line.rstrip("\n"), "level": "raw"}
            with self._log_changed:
                self.logs.append(entry)
                self._log_changed.notify_all()
        with self._log_changed:
            self.logs.append({"message": "<process output closed>", "level": "eof"})
            self._log_changed.notify_all()

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = START_TIMEOUT
    ) -> dict[str, Any]:
        """The first log entry matching ``predicate``; fails with the log so far if the process dies first."""
        deadline = time.monotonic() + timeout
        with self._log_changed:
            while True:
                for entry in self.logs:
                    if predicate(entry):
                        return entry
                if any(entry.get("level") == "eof" for entry in self.logs):
                    raise AssertionError(f"trustwatch serve exited; its log: {self.logs}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching log entry within {timeout}s; log: {self.logs}")
                self._log_changed.wait(remaining)

    # --- endpoints --------------------------------------------------------------------------------------
    @property
    def metrics_url(self) -> str:
        return str(self.wait_for_log(lambda e: e.get("message") == "status server listening")["url"])

    @property
    def webhook_url(self) -> str:
        return str(self.wait_for_log(lambda e: e.get("message") == "admission webhook listening")["url"])

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "tls" / "ca.crt"

    def get(self, path: str) -> tuple[int, str]:
        """GET on the status server; returns status and body (errors included)."""
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric_families(self) -> dict[str, Metric]:
        status, body = self.get("/metrics")
        assert status == 200, body
        return {family.name: family for family in text_string_to_metric_families(body)}

    def sample_value(self, family: str, **labels: str) -> float | None:
        """The value of the one sample of ``family`` whose labels include ``labels``, or None."""
        found = self.metric_families().get(family)
        matches = [s.value for s in (found.samples if found else []) if labels.items() <= s.labels.items()]
        assert len(matches) <= 1, f"{family}{labels} is ambiguous: {matches}"
        return matches[0] if matches else None

    def review(self, body: bytes, path: str = "/mutate") -> dict[str, Any]:
        """POST an AdmissionReview over TLS, verifying the certificate against the generated CA."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        port = self.webhook_url.rsplit(":", 1)[1]
        request = urllib.request.Request(
            f"https://localhost:{port}{path}", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer


def poll(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Wait until ``condition()`` is truthy (returning it) or fail; for state that settles asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def iter_samples(families: dict[str, Metric], family: str) -> Iterator[tuple[dict[str, str], float]]:
    """Every (labels, value) of ``family``."""
    for sample in families[family].samples if family in families else []:
        yield sample.labels, sample.value
