"""Public keys kept in Kubernetes Secrets (``keys.secret``, ``k8s://<namespace>/<name>``), as Kyverno.

The key is the ``cosign.pub`` entry of the Secret (what ``cosign generate-key-pair k8s://ns/name`` writes).
Reads go through the ``kubernetes`` client in a worker thread and are cached for a minute with
single-flight: a rollout would otherwise read the same Secret once per Pod, and a rotated key is picked up
within the minute.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any

from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from exporter.admission.cache import SingleFlightCache
from exporter.admission.verifier import SecretKeyError
from exporter.cluster import LazyApi
from exporter.policy.model import SecretRef

log = logging.getLogger(__name__)

KEY_ENTRY = "cosign.pub"
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404


class KubernetesSecretKeys:
    """``await keys(ref)`` -> the PEM text of ``cosign.pub`` in Secret ``ref`` (raises SecretKeyError)."""

    def __init__(
        self, api_client: Any, ttl: float = 60.0, max_entries: int = 256, request_timeout: float = 5.0
    ) -> None:
        self._api = LazyApi(lambda: kube_client.CoreV1Api(api_client))
        self._timeout = request_timeout
        self._cache: SingleFlightCache[str] = SingleFlightCache(ttl=ttl, max_entries=max_entries)

    async def __call__(self, ref: SecretRef) -> str:
        pem, _how = await self._cache.get_or_compute((ref.namespace, ref.name), lambda: self._read(ref))
        return pem

    async def _read(self, ref: SecretRef) -> str:
        where = f"Secret {ref.namespace}/{ref.name}"
        try:
            secret = await asyncio.to_thread(
                lambda: self._api.get().read_namespaced_secret(
                    ref.name, ref.namespace, _request_timeout=self._timeout
                )
            )
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                raise SecretKeyError(f"{where} not found") from exc
            if exc.status == HTTP_FORBIDDEN:
                message = f"trustwatch may not read {where}: grant it get on secrets there"
                raise SecretKeyError(message) from exc
            raise SecretKeyError(f"cannot read {where}: {exc.status} {exc.reason}") from exc
        except Exception as exc:  # network trouble surfaces as urllib3 errors of many kinds
            log.warning("cannot read a key Secret", extra={"secret": where, "error": repr(exc)})
            raise SecretKeyError(
                f"cannot read {where}: the API server did not answer (see trustwatch's log)"
            ) from exc
        encoded = (secret.data or {}).get(KEY_ENTRY)
        if not encoded:
            raise SecretKeyError(f"{where} has no {KEY_ENTRY} entry")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SecretKeyError(f"{where}: {KEY_ENTRY} is not base64-encoded PEM text") from exc
