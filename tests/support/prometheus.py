"""A real Prometheus (Debian's ``/usr/bin/prometheus``) for tests: scrapes given targets, answers PromQL.

Typical use (the end-to-end dashboard test)::

    from tests.support.prometheus import PrometheusServer, prometheus_available
    from tests.support.promql import dashboard_queries

    with PrometheusServer(tmp_path, targets=[serve.metrics_url]) as prom:  # URL or HOST:PORT
        prom.wait_for_targets_up()                       # polls /api/v1/targets until every target is up
        prom.wait_for_data("trustwatch_build_info")      # polls until the query returns a non-empty result
        for query in dashboard_queries(board):
            expr = query.evaluable({"__rate_interval": "10s", "__range": "1m"})
            assert prom.query(expr), f"no data: {query}"

API:

* ``PrometheusServer(tmp_dir, targets, scrape_interval="1s", job="trustwatch", honor_labels=True,
  rule_files=())``: a context manager; rules are evaluated every ``scrape_interval``. The config, TSDB and
  log live under ``tmp_dir``. The web UI/API listens on 127.0.0.1 at a port picked free just before start
  (retried if another process took it). ``honor_labels`` mirrors the Helm chart's ServiceMonitor, so report
  metrics keep their own ``namespace`` label.
* ``.url``: ``http://127.0.0.1:PORT``.
* ``.query(expr) -> list[dict]``: instant query at "now"; ``[{"metric": {labels}, "value": [ts, "str"]}]``
  (a scalar result comes back as one item with empty labels). Raises ``PrometheusQueryError`` carrying
  Prometheus's own error text for invalid PromQL.
* ``.alerts() -> list[dict]``: active alerts (``labels``, ``annotations``, ``state`` pending|firing).
* ``.wait_for_targets_up(timeout=30)``: every configured target has been scraped successfully.
* ``.wait_for_data(expr, timeout=30) -> list[dict]``: polls ``query`` until the result is non-empty (for
  ``rate()``/``increase()`` this means two scrapes have happened).
* ``prometheus_available()``: the binary exists; ``requires_prometheus`` is the matching skip marker.

Timing: nothing sleeps for a fixed time; every wait polls a condition against a deadline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

from tests.support.registry import free_port
from tests.support.serve import poll

PROMETHEUS_BINARY = "/usr/bin/prometheus"
START_ATTEMPTS = 3


def prometheus_available() -> bool:
    return shutil.which(PROMETHEUS_BINARY) is not None


requires_prometheus = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not prometheus_available(), reason="needs Debian's prometheus (/usr/bin/prometheus)"),
]


class PrometheusQueryError(RuntimeError):
    """Prometheus rejected a query; the message is Prometheus's own explanation."""


def _host_port(target: str) -> str:
    """Accept "http://127.0.0.1:8080" as well as "127.0.0.1:8080"."""
    parsed = urllib.parse.urlsplit(target if "//" in target else f"//{target}")
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"target {target!r} is not HOST:PORT or http://HOST:PORT")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{host}:{parsed.port}"


class PrometheusServer:
    """``prometheus`` on loopback with a temp TSDB, scraping ``targets`` every ``scrape_interval``."""

    def __init__(
        self,
        tmp_dir: Path,
        targets: Sequence[str],
        *,
        scrape_interval: str = "1s",
        job: str = "trustwatch",
        honor_labels: bool = True,
        rule_files: Sequence[Path] = (),
    ) -> None:
        self.directory = Path(tmp_dir) / "prometheus"
        self.target_addresses = [_host_port(target) for target in targets]
        self.scrape_interval = scrape_interval
        self.job = job
        self.honor_labels = honor_labels
        self.rule_files = [str(Path(path).resolve()) for path in rule_files]
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _write_config(self) -> Path:
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": self.rule_files,
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "honor_labels": self.honor_labels,
                    "static_configs": [{"targets": self.target_addresses}],
                }
            ],
        }
        path = self.directory / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        if not prometheus_available():
            pytest.skip("needs Debian's prometheus (/usr/bin/prometheus)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        for _attempt in range(START_ATTEMPTS):
            port = free_port()
            log = (self.directory / "prometheus.log").open("wb")
            self._process = subprocess.Popen(
                [
                    PROMETHEUS_BINARY,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            self.url = f"http://127.0.0.1:{port}"
            if poll(self._ready_or_exited, timeout=30) == "ready":
                return
            self._process = None  # lost the port race (or failed): try another port
        raise RuntimeError(f"prometheus did not start; log:\n{self.log()}")

    def _ready_or_exited(self) -> str | None:
        assert self._process is not None
        if self._process.poll() is not None:
            return "exited"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return "ready" if response.status == 200 else None
        except (urllib.error.URLError, ConnectionError):
            return None

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def log(self) -> str:
        path = self.directory / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- API ---------------------------------------------------------------------------------------------
    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the reason in the JSON body
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{body.get('errorType')}: {body.get('error')} (query {params})")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at the current time."""
        data = self._api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return active

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._api("targets", {"state": "active"})["activeTargets"]
        return active

    def wait_for_targets_up(self, timeout: float = 30.0) -> None:
        def all_up() -> bool:
            active = self.targets()
            return len(active) == len(self.target_addresses) and all(
                target["health"] == "up" for target in active
            )

        try:
            poll(all_up, timeout=timeout)
        except AssertionError as exc:
            states = [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in self.targets()]
            raise AssertionError(f"targets not all up within {timeout}s: {states}") from exc

    def wait_for_data(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = poll(lambda: self.query(expr), timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{expr!r} returned no data within {timeout}s") from exc
        return result
