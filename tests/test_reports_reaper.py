"""The reaper against the fake API server: results of resources that are gone are removed; results it cannot
judge (too young, a kind it cannot list) are kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from exporter.reports.reaper import LiveResources, ResultReaper, plural_of
from exporter.reports.writer_kube import KubernetesReportBackend
from tests.support.fake_kube import CLUSTER_RESOURCES, FakeKubeServer, report_document

POLR = "wgpolicyk8s.io/v1alpha2"


def result(kind: str, name: str, uid: str = "", age: float = 3600, api_version: str = "v1") -> dict[str, Any]:
    resource = {"apiVersion": api_version, "kind": kind, "namespace": "prod", "name": name}
    if uid:
        resource["uid"] = uid
    return {
        "policy": "check-image-signature",
        "rule": "verify-image",
        "result": "pass",
        "resources": [resource],
        "timestamp": {"seconds": int(time.time() - age), "nanos": 0},
    }


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Pod", "pods"),
        ("Ingress", "ingresses"),
        ("NetworkPolicy", "networkpolicies"),
        ("Gateway", "gateways"),
    ],
)
def test_plural_of_follows_the_api_servers_rule(kind: str, plural: str) -> None:
    assert plural_of(kind) == plural


async def test_gone_resources_lose_their_results_and_the_rest_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeKubeServer(CLUSTER_RESOURCES) as server:
        live = server.put_object(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live", "namespace": "prod"}}
        )
        results = [
            result("Pod", "live", live["metadata"]["uid"]),
            result("Pod", "deleted", "uid-of-a-deleted-pod"),
            result("Pod", "web-7d9f8-"),  # written under the bare generateName prefix: never existed
            result("Pod", "just-written", "uid-not-stored-yet", age=1),  # too young to judge
            result("Widget", "w", "uid-w", api_version="example.com/v1"),  # a kind the server does not serve
        ]
        server.put_object(
            report_document(
                "cpol-check-image-signature",
                "prod",
                results,
                labels={"app.kubernetes.io/managed-by": "trustwatch"},
            )
        )
        server.put_object(report_document("someone-elses", "prod", [result("Pod", "deleted", "uid-x")]))
        reaper = ResultReaper(
            KubernetesReportBackend(server.api_client()),
            LiveResources(server.api_client()),
            report_api=POLR,
            grace=5.0,
        )
        removed = await asyncio.to_thread(reaper.sweep)
        report = server.get_object(POLR, "PolicyReport", "cpol-check-image-signature", "prod")
        untouched = server.get_object(POLR, "PolicyReport", "someone-elses", "prod")
    assert removed == 2
    assert report is not None and untouched is not None
    assert sorted(r["resources"][0]["name"] for r in report["results"]) == ["just-written", "live", "w"]
    assert report["summary"]["pass"] == 3
    assert len(untouched["results"]) == 1  # only trustwatch's own reports are touched


async def test_many_namespaces_cost_one_list_per_kind() -> None:
    async with FakeKubeServer(CLUSTER_RESOURCES) as server:
        namespaces = [f"team-{number}" for number in range(12)]
        for namespace in namespaces:
            entry = result("Pod", "gone", f"uid-{namespace}")
            entry["resources"][0]["namespace"] = namespace
            server.put_object(
                report_document(
                    "cpol-p", namespace, [entry], labels={"app.kubernetes.io/managed-by": "trustwatch"}
                )
            )
        reaper = ResultReaper(
            KubernetesReportBackend(server.api_client()), LiveResources(server.api_client()), report_api=POLR
        )
        assert await asyncio.to_thread(reaper.sweep) == 12
        pod_lists = [r for r in server.requests if r.method == "GET" and r.path.endswith("/pods")]
    assert [r.path for r in pod_lists] == ["/api/v1/pods"]
