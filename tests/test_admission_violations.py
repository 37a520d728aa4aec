"""PolicyViolation events through the (fake) API server: about the policy object when it exists, else about
the request's Namespace."""

from __future__ import annotations

import asyncio

from exporter.admission.violations import Violation, ViolationRecorder
from exporter.admission.violations_kube import KubernetesViolationBackend
from tests.support.fake_kube import CLUSTER_RESOURCES, FakeKubeServer


def violation(policy: str, policy_namespace: str | None = None) -> Violation:
    return Violation(
        policy=policy,
        policy_namespace=policy_namespace,
        resource_kind="Deployment",
        resource_namespace="prod",
        resource_name="unsigned",
        rules={"autogen-verify-image": "failed to verify image docker.io/user/test:unsigned: " + "x" * 2000},
        timestamp=1764153600.0,
    )


async def test_events_are_about_the_policy_object_when_it_exists_else_the_namespace() -> None:
    async with FakeKubeServer(CLUSTER_RESOURCES) as server:
        kyverno = server.put_object(
            {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "in-cluster"}}
        )
        recorder = ViolationRecorder(KubernetesViolationBackend(server.api_client()))
        recorder.submit(violation("in-cluster"))
        recorder.submit(violation("only-in-files"))
        await asyncio.wait_for(recorder.flush(), 30)
        events = {event["involvedObject"]["kind"]: event for event in server.objects("v1", "Event")}
    policy_event, namespace_event = events["ClusterPolicy"], events["Namespace"]
    assert policy_event["involvedObject"] == {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "name": "in-cluster",
        "uid": kyverno["metadata"]["uid"],
    }
    assert policy_event["metadata"]["namespace"] == "default"  # where events of cluster-scoped objects live
    assert namespace_event["involvedObject"] == {"apiVersion": "v1", "kind": "Namespace", "name": "prod"}
    assert namespace_event["metadata"]["namespace"] == "prod"
    for event in (policy_event, namespace_event):
        assert (event["reason"], event["type"], event["action"]) == (
            "PolicyViolation",
            "Warning",
            "Resource Blocked",
        )
        assert event["message"].startswith(
            "Deployment prod/unsigned: [autogen-verify-image] fail (blocked); "
        )
        assert len(event["message"]) == 1024  # the API server's limit
