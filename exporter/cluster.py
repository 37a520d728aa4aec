"""Finding the Kubernetes API: in-cluster service account, else kubeconfig, else none (local mode).

Only ``trustwatch serve`` and the report writer import this module, so the ``kubernetes`` package stays off
the start-up path of ``trustwatch verify``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import urllib3.exceptions
from kubernetes import client, config

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class ClusterUnavailableError(RuntimeError):
    """``--kubernetes on`` was asked for but no API server configuration could be loaded."""


Api = TypeVar("Api")


class LazyApi(Generic[Api]):
    """A ``kubernetes`` API object built on first use, in the worker thread that first uses it.

    Building ``CoreV1Api`` imports a module that takes seconds; done on the event loop at start-up it kept
    the webhook from listening for that long whenever a cluster was configured."""

    def __init__(self, build: Callable[[], Api]) -> None:
        self._build = build
        self._api: Api | None = None
        self._lock = threading.Lock()

    def get(self) -> Api:
        with self._lock:
            if self._api is None:
                self._api = self._build()
            return self._api


_CONNECTION_ERRORS = (
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
    TimeoutError,
)


class ConnectionHealth:
    """Says once, clearly, that the API server cannot be reached, then stays quiet until it can again.

    Every component talking to the API server retries with backoff on its own; without this each would
    log each attempt (and urllib3 each of its retries), burying the one thing to know."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down

    def failed(self, error: BaseException) -> bool:
        """True when ``error`` means "unreachable" (logged once per outage); False for any other error,
        which the caller reports itself."""
        if not isinstance(error, _CONNECTION_ERRORS):
            return False
        with self._lock:
            first, self._down = not self._down, True
        reason = str(error.reason) if isinstance(error, urllib3.exceptions.MaxRetryError) else str(error)
        if first:
            log.error(
                "cannot reach the Kubernetes API server; retrying quietly with backoff "
                "(use --kubernetes off to run on local files only)",
                extra={"server": self.server, "error": reason},
            )
        else:
            log.debug(
                "Kubernetes API server still unreachable", extra={"server": self.server, "error": reason}
            )
        return True

    def succeeded(self) -> None:
        with self._lock:
            was_down, self._down = self._down, False
        if was_down:
            log.info("Kubernetes API server reachable again", extra={"server": self.server})


@dataclass(frozen=True)
class ClusterConnection:
    """How to reach the API server: a factory, because each thread-bound client wants its own ApiClient.

    ``in_cluster``: running in a Pod with a service account (as opposed to a kubeconfig on a laptop)."""

    description: str
    api_client_factory: Callable[[], client.ApiClient]
    in_cluster: bool = False
    health: ConnectionHealth = field(default_factory=lambda: ConnectionHealth(""))


def _kubeconfig_present(environ: dict[str, str]) -> bool:
    paths = environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    return any(Path(path).is_file() for path in paths.split(os.pathsep) if path)


def connect(mode: str, environ: dict[str, str] | None = None) -> ClusterConnection | None:
    """Resolve ``--kubernetes auto|on|off`` into a connection, or None for local-files mode."""
    env = dict(os.environ) if environ is None else environ
    if mode == "off":
        return None
    in_cluster = "KUBERNETES_SERVICE_HOST" in env and SERVICE_ACCOUNT_TOKEN.is_file()
    if in_cluster:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        description = f"in-cluster API server {configuration.host}"
    elif _kubeconfig_present(env):
        configuration = client.Configuration()
        try:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            if mode == "on":
                raise ClusterUnavailableError(f"kubeconfig could not be loaded: {exc}") from exc
            log.warning("kubeconfig present but unusable; running on local files", extra={"error": str(exc)})
            return None
        description = f"API server {configuration.host} from kubeconfig"
    elif mode == "on":
        raise ClusterUnavailableError(
            "--kubernetes on, but there is neither an in-cluster service account nor a kubeconfig "
            "(set KUBECONFIG, or use --kubernetes auto/off to run on local files)"
        )
    else:
        return None
    # No urllib3 retries: every caller has its own backoff, and urllib3 logs a warning per retry.
    configuration.retries = 0
    return ClusterConnection(
        description,
        lambda: client.ApiClient(configuration),
        in_cluster=in_cluster,
        health=ConnectionHealth(str(configuration.host)),
    )
