"""PolicyViolation Events through the Kubernetes API (blocking; runs in the recorder's worker thread).

The Event is about the policy object when that exists in the cluster (a Kyverno ``ClusterPolicy`` or
``Policy`` of the same name, as when trustwatch runs beside Kyverno), else about the request's Namespace,
so ``kubectl get events -n <namespace>`` shows what was blocked there. Lookups of the policy object are
cached for a minute.

The same denial repeats: a ReplicaSet or Job controller retries creating its Pods for as long as the
image stays unsigned. Like client-go's event recorder, a denial identical to one recorded within
:data:`AGGREGATION_WINDOW` (same object, same message) raises that Event's ``count`` and
``lastTimestamp`` instead of creating another Event, so a retry loop is one Event, not thousands.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client as kube_client
from kubernetes.client.exceptions import ApiException

from exporter.admission.violations import Violation
from exporter.cluster import LazyApi
from exporter.sigstore.cache import BoundedCache

POLICY_LOOKUP_TTL = 60.0
COMPONENT = "trustwatch"
# How long repeats of one denial are counted on its Event (client-go aggregates similar Events for 10
# minutes), and how many distinct recent denials are remembered for that.
AGGREGATION_WINDOW = 600.0
MAX_AGGREGATED = 4096


# Where each policy kind is read from, for the Event's involvedObject.
POLICY_APIS: dict[str, tuple[str, str, str]] = {
    "ClusterPolicy": ("kyverno.io", "v1", "clusterpolicies"),
    "Policy": ("kyverno.io", "v1", "policies"),
    "ImageValidatingPolicy": ("policies.kyverno.io", "v1", "imagevalidatingpolicies"),
    "NamespacedImageValidatingPolicy": ("policies.kyverno.io", "v1", "namespacedimagevalidatingpolicies"),
}


@dataclass
class _Recorded:
    """An Event created for a denial: its name, when it was created (this process's clock), its count."""

    name: str
    first: float
    count: int = 1


class KubernetesViolationBackend:
    """Creates ``v1`` Events with reason ``PolicyViolation`` (type Warning, action ``Resource Blocked``)."""

    def __init__(
        self, api_client: Any, request_timeout: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._core = LazyApi(lambda: kube_client.CoreV1Api(api_client))
        self._custom = LazyApi(lambda: kube_client.CustomObjectsApi(api_client))
        self._timeout = request_timeout
        self._clock = clock
        self._policies: dict[tuple[str, str | None, str], tuple[float, dict[str, Any] | None]] = {}
        self._instance = os.environ.get("HOSTNAME") or socket.gethostname()
        self._recorded: BoundedCache[tuple[str, str, str, str, str], _Recorded] = BoundedCache(MAX_AGGREGATED)

    def record(self, violation: Violation) -> None:
        involved, namespace = self._involved_object(violation)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(violation.timestamp))
        message = violation.message()
        key = (namespace, involved["kind"], involved["name"], involved.get("uid", ""), message)
        recorded = self._recorded.get(key)
        if (
            recorded is not None
            and self._clock() - recorded.first < AGGREGATION_WINDOW
            and self._count_again(recorded, namespace, stamp)
        ):
            return
        event: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": "PolicyViolation",
            "type": "Warning",
            "action": "Resource Blocked",
            "message": message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        created = self._core.get().create_namespaced_event(namespace, event, _request_timeout=self._timeout)
        self._recorded.put(key, _Recorded(str(created.metadata.name), self._clock()))

    def _count_again(self, recorded: _Recorded, namespace: str, stamp: str) -> bool:
        """Count one more occurrence on the Event already recorded; False when it is gone (the API server
        keeps Events for an hour by default) or may not be patched (RBAC granting only ``create``, as
        before aggregation), so a new one must be created."""
        patch = {"count": recorded.count + 1, "lastTimestamp": stamp}
        try:
            self._core.get().patch_namespaced_event(
                recorded.name,
                namespace,
                patch,
                _request_timeout=self._timeout,
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise
        recorded.count += 1
        return True

    def _involved_object(self, violation: Violation) -> tuple[dict[str, Any], str]:
        """The policy object if it exists in the cluster, else the request's Namespace (or ``default``)."""
        policy = self._policy(violation.policy_kind, violation.policy_namespace, violation.policy)
        if policy is not None:
            metadata = policy.get("metadata") or {}
            involved = {
                "apiVersion": str(policy.get("apiVersion", "kyverno.io/v1")),
                "kind": str(policy.get("kind", "ClusterPolicy")),
                "name": violation.policy,
                "uid": str(metadata.get("uid", "")),
            }
            if violation.policy_namespace:
                involved["namespace"] = violation.policy_namespace
            # Events about cluster-scoped objects live in "default", as client-go's recorder puts them.
            return involved, violation.policy_namespace or "default"
        namespace = violation.resource_namespace or "default"
        return {"apiVersion": "v1", "kind": "Namespace", "name": namespace}, namespace

    def _policy(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        cached = self._policies.get(key)
        now = self._clock()
        if cached is not None and now - cached[0] < POLICY_LOOKUP_TTL:
            return cached[1]
        group, version, plural = POLICY_APIS.get(kind, POLICY_APIS["ClusterPolicy"])
        try:
            if namespace:
                found = self._custom.get().get_namespaced_custom_object(
                    group, version, namespace, plural, name, _request_timeout=self._timeout
                )
            else:
                found = self._custom.get().get_cluster_custom_object(
                    group, version, plural, name, _request_timeout=self._timeout
                )
        except ApiException:
            found = None  # absent, Kyverno not installed, or not allowed to read it: use the namespace
        policy = found if isinstance(found, dict) else None
        self._policies[key] = (now, policy)
        return policy
