"""Finding the Kubernetes API: in-cluster service account, else kubeconfig, else none (local mode).

Only ``trustwatch serve`` and the report writer import this module, so the ``kubernetes`` package stays off
the start-up path of ``trustwatch verify``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class ClusterUnavailableError(RuntimeError):
    """``--kubernetes on`` was asked for but no API server configuration could be loaded."""


@dataclass(frozen=True)
class ClusterConnection:
    """How to reach the API server: a factory, because each thread-bound client wants its own ApiClient."""

    description: str
    api_client_factory: Callable[[], client.ApiClient]


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
    return ClusterConnection(description, lambda: client.ApiClient(configuration))
