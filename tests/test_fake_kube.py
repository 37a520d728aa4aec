"""The fake API server speaks the protocol the real kubernetes client expects (it is a test fixture many
suites rely on, so its own behaviour is pinned here)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kubernetes.client
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from tests.support.fake_kube import CLUSTER_RESOURCES, FakeKubeServer, GoneAs

POLR = "wgpolicyk8s.io/v1alpha2"


def polr(name: str, namespace: str = "default", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": POLR,
        "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": namespace},
        **extra,
    }


def document(value: object) -> dict[str, Any]:
    """A custom object as the client returns it (typed ``object``): asserted to be a JSON object."""
    assert isinstance(value, dict), f"expected a JSON object, got {type(value).__name__}"
    return value


def read_watch(client: kubernetes.client.ApiClient, count: int, **params: Any) -> list[dict[str, Any]]:
    """Read ``count`` raw watch events (blocking; run in a thread)."""
    api = kubernetes.client.CustomObjectsApi(client)
    response = api.list_cluster_custom_object(
        "wgpolicyk8s.io", "v1alpha2", "policyreports", watch=True, _preload_content=False, **params
    )
    assert isinstance(response, urllib3.HTTPResponse)  # what _preload_content=False returns
    events: list[dict[str, Any]] = []
    pending = b""
    try:
        for chunk in response.stream(amt=None):
            *lines, pending = (pending + chunk).split(b"\n")
            events.extend(json.loads(line) for line in lines if line.strip())
            if len(events) >= count:
                return events
    finally:
        response.close()
    return events


async def test_discovery_lists_groups_and_resources() -> None:
    async with FakeKubeServer(groups_present=["wgpolicyk8s.io"]) as server:
        api = kubernetes.client.CustomObjectsApi(server.api_client())
        resources = await asyncio.to_thread(api.get_api_resources, "wgpolicyk8s.io", "v1alpha2")
        assert {(r.name, r.kind, r.namespaced) for r in resources.resources} == {
            ("policyreports", "PolicyReport", True),
            ("clusterpolicyreports", "ClusterPolicyReport", False),
        }
        groups = await asyncio.to_thread(kubernetes.client.ApisApi(server.api_client()).get_api_versions)
        assert [g.name for g in groups.groups] == ["wgpolicyk8s.io"]
        with pytest.raises(ApiException) as missing:
            await asyncio.to_thread(api.get_api_resources, "openreports.io", "v1alpha1")
        assert missing.value.status == 404
        server.add_group("openreports.io")
        found = await asyncio.to_thread(api.get_api_resources, "openreports.io", "v1alpha1")
        assert {r.kind for r in found.resources} == {"Report", "ClusterReport"}


async def test_crud_with_conflicts_and_merge_patch() -> None:
    async with FakeKubeServer() as server:
        api = kubernetes.client.CustomObjectsApi(server.api_client())
        args = ("wgpolicyk8s.io", "v1alpha2", "dev", "policyreports")
        created = document(
            await asyncio.to_thread(api.create_namespaced_custom_object, *args, polr("a", "dev"))
        )
        assert created["metadata"]["resourceVersion"] == str(server.resource_version)
        with pytest.raises(ApiException) as exists:
            await asyncio.to_thread(api.create_namespaced_custom_object, *args, polr("a", "dev"))
        assert exists.value.status == 409
        assert exists.value.body is not None
        assert json.loads(exists.value.body)["reason"] == "AlreadyExists"

        stale = dict(created, summary={"pass": 1})
        updated = document(await asyncio.to_thread(api.replace_namespaced_custom_object, *args, "a", stale))
        assert updated["summary"] == {"pass": 1}
        with pytest.raises(ApiException) as conflict:  # same (now stale) resourceVersion again
            await asyncio.to_thread(api.replace_namespaced_custom_object, *args, "a", stale)
        assert conflict.value.status == 409

        patched = document(
            await asyncio.to_thread(
                api.patch_namespaced_custom_object, *args, "a", {"summary": {"fail": 2, "pass": None}}
            )
        )
        assert patched["summary"] == {"fail": 2}
        fetched = await asyncio.to_thread(api.get_namespaced_custom_object, *args, "a")
        assert fetched == patched
        await asyncio.to_thread(api.delete_namespaced_custom_object, *args, "a")
        assert server.get_object(POLR, "PolicyReport", "a", "dev") is None
        with pytest.raises(ApiException) as gone:
            await asyncio.to_thread(api.delete_namespaced_custom_object, *args, "a")
        assert gone.value.status == 404

        cluster = {"apiVersion": POLR, "kind": "ClusterPolicyReport", "metadata": {"name": "c"}}
        await asyncio.to_thread(
            api.create_cluster_custom_object, "wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports", cluster
        )
        assert server.get_object(POLR, "ClusterPolicyReport", "c") is not None


async def test_list_pages_share_one_resource_version() -> None:
    async with FakeKubeServer() as server:
        for index in range(5):
            server.put_object(polr(f"r{index}", f"ns{index % 2}"))
        api = kubernetes.client.CustomObjectsApi(server.api_client())
        first = document(
            await asyncio.to_thread(
                api.list_cluster_custom_object, "wgpolicyk8s.io", "v1alpha2", "policyreports", limit=2
            )
        )
        server.put_object(polr("late"))
        rest = document(
            await asyncio.to_thread(
                api.list_cluster_custom_object,
                "wgpolicyk8s.io",
                "v1alpha2",
                "policyreports",
                limit=10,
                _continue=first["metadata"]["continue"],
            )
        )
        assert len(first["items"]) == 2
        assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert "continue" not in rest["metadata"]
        one_ns = document(
            await asyncio.to_thread(
                api.list_namespaced_custom_object, "wgpolicyk8s.io", "v1alpha2", "ns1", "policyreports"
            )
        )
        assert [i["metadata"]["name"] for i in one_ns["items"]] == ["r1", "r3"]


async def test_watch_replays_from_resource_version_then_streams_live() -> None:
    async with FakeKubeServer() as server:
        server.put_object(polr("a"))
        since = server.resource_version
        server.put_object(polr("b"))
        server.delete_object(POLR, "PolicyReport", "a", "default")
        reader = asyncio.create_task(
            asyncio.to_thread(
                read_watch, server.api_client(), 4, resource_version=str(since), allow_watch_bookmarks=True
            )
        )
        await server.wait_for(lambda: server.active_watches == 1)
        server.put_object(polr("b", summary={"fail": 1}))
        server.send_bookmarks()
        events = await reader
        assert [(e["type"], e["object"]["metadata"].get("name")) for e in events] == [
            ("ADDED", "b"),
            ("DELETED", "a"),
            ("MODIFIED", "b"),
            ("BOOKMARK", None),
        ]
        assert events[3]["object"]["metadata"]["resourceVersion"] == str(server.resource_version)


@pytest.mark.parametrize("gone_as", ["event", "status"])
async def test_expired_resource_version_is_410_gone(gone_as: GoneAs) -> None:
    async with FakeKubeServer(gone_as=gone_as) as server:
        server.put_object(polr("a"))
        old = server.resource_version
        server.put_object(polr("b"))
        server.expire_history()
        if gone_as == "event":
            events = await asyncio.to_thread(read_watch, server.api_client(), 1, resource_version=str(old))
            assert events[0]["type"] == "ERROR"
            assert events[0]["object"]["code"] == 410
        else:
            with pytest.raises(ApiException) as gone:
                await asyncio.to_thread(read_watch, server.api_client(), 1, resource_version=str(old))
            assert gone.value.status == 410


async def test_injected_failures_and_cut_watches() -> None:
    async with FakeKubeServer() as server:
        api = kubernetes.client.CustomObjectsApi(server.api_client())
        server.fail_next(1, 500, path_contains="policyreports")
        with pytest.raises(ApiException) as failed:
            await asyncio.to_thread(
                api.list_cluster_custom_object, "wgpolicyk8s.io", "v1alpha2", "policyreports"
            )
        assert failed.value.status == 500
        listed = document(
            await asyncio.to_thread(
                api.list_cluster_custom_object, "wgpolicyk8s.io", "v1alpha2", "policyreports"
            )
        )
        assert listed["items"] == []

        reader = asyncio.create_task(
            asyncio.to_thread(
                read_watch, server.api_client(), 2, resource_version=str(server.resource_version)
            )
        )
        await server.wait_for(lambda: server.active_watches == 1)
        server.put_object(polr("a"))
        server.cut_watches()
        with pytest.raises(urllib3.exceptions.ProtocolError):
            await reader
        assert server.active_watches == 0


async def test_simultaneous_updates_from_one_version_let_exactly_one_win() -> None:
    async with FakeKubeServer() as server:
        created = server.put_object(polr("a", "dev"))
        api = kubernetes.client.CustomObjectsApi(server.api_client())
        args = ("wgpolicyk8s.io", "v1alpha2", "dev", "policyreports", "a")

        def replace(marker: int) -> int:
            try:
                # a body large enough to arrive in many segments, so the server awaits it part by part
                body = dict(created, summary={"pass": marker}, padding="x" * 1_500_000)
                api.replace_namespaced_custom_object(*args, body)
            except ApiException as error:
                return int(error.status)
            return 200

        outcomes = await asyncio.gather(*(asyncio.to_thread(replace, n) for n in range(6)))
        assert sorted(outcomes) == [200, 409, 409, 409, 409, 409]


def deployment(name: str, image: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def test_generate_name_uids_and_garbage_collection_of_dependents() -> None:
    async with FakeKubeServer(CLUSTER_RESOURCES, controllers=True) as server:
        core = kubernetes.client.CoreV1Api(server.api_client())
        pod = kubernetes.client.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=kubernetes.client.V1ObjectMeta(generate_name="job-"),
            spec=kubernetes.client.V1PodSpec(containers=[kubernetes.client.V1Container(name="c", image="x")]),
        )
        created = await asyncio.to_thread(core.create_namespaced_pod, "prod", pod)
        assert created.metadata is not None and created.metadata.name is not None
        created_name = created.metadata.name
        assert created_name.startswith("job-") and len(created_name) == len("job-") + 5
        assert created.metadata.uid

        stored = await server.create(deployment("web", "registry.local/web:1"))
        await server.settle()
        (replica_set,) = server.objects("apps/v1", "ReplicaSet")
        assert replica_set["metadata"]["name"].startswith("web-")
        assert replica_set["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
        pods = [
            p
            for p in server.objects("v1", "Pod")
            if p["metadata"]["name"].startswith(f"{replica_set['metadata']['name']}-")
        ]
        assert len(pods) == 2
        assert len({p["metadata"]["uid"] for p in pods}) == 2
        assert all(p["spec"]["containers"][0]["image"] == "registry.local/web:1" for p in pods)

        # A new template: a new ReplicaSet with new Pods; the old one is kept at zero replicas.
        changed = deployment("web", "registry.local/web:2")
        changed["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        server.put_object(changed)
        await server.settle()
        assert sorted(rs["spec"]["replicas"] for rs in server.objects("apps/v1", "ReplicaSet")) == [0, 2]
        images = {
            p["spec"]["containers"][0]["image"]
            for p in server.objects("v1", "Pod")
            if "ownerReferences" in p["metadata"]
        }
        assert images == {"registry.local/web:2"}

        # Deleting the Deployment through the API takes its ReplicaSets and their Pods with it.
        apps = kubernetes.client.AppsV1Api(server.api_client())
        await asyncio.to_thread(apps.delete_namespaced_deployment, "web", "prod")
        assert server.objects("apps/v1", "ReplicaSet") == []
        assert [p["metadata"]["name"] for p in server.objects("v1", "Pod")] == [created_name]


async def test_a_job_runs_one_pod_named_by_generate_name() -> None:
    async with FakeKubeServer(CLUSTER_RESOURCES, controllers=True) as server:
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "dev"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
        }
        await server.create(job)
        await server.settle()
        (pod,) = server.objects("v1", "Pod")
        assert (
            pod["metadata"]["name"].startswith("migrate-") and pod["metadata"]["generateName"] == "migrate-"
        )
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
