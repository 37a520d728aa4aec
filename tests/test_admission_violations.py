"""PolicyViolation events through the (fake) API server: about the policy object when it exists, else about
the request's Namespace."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from exporter.admission.violations import Violation, ViolationRecorder
from exporter.admission.violations_kube import AGGREGATION_WINDOW, KubernetesViolationBackend
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


async def test_a_repeated_denial_counts_on_one_event_until_the_window_ends() -> None:
    """A controller retrying an unsigned Pod is one Event whose count grows, as client-go aggregates; a
    different denial, an Event deleted meanwhile (expired) and the end of the window each start a new one."""
    clock = [1000.0]
    async with FakeKubeServer(CLUSTER_RESOURCES) as server:
        backend = KubernetesViolationBackend(server.api_client(), clock=lambda: clock[0])
        recorder = ViolationRecorder(backend)

        async def submit(*violations: Violation) -> list[dict[str, Any]]:
            for item in violations:
                recorder.submit(item)
            await asyncio.wait_for(recorder.flush(), 30)
            return sorted(server.objects("v1", "Event"), key=lambda event: event["metadata"]["name"])

        retried = violation("only-in-files")
        later = dataclasses.replace(retried, timestamp=retried.timestamp + 120)
        (event,) = await submit(retried, retried, later)
        assert event["count"] == 3
        stamps = [datetime.fromisoformat(event[field]) for field in ("firstTimestamp", "lastTimestamp")]
        assert stamps[1] - stamps[0] == timedelta(seconds=120)

        other = dataclasses.replace(retried, rules={"autogen-verify-image": "no signatures found"})
        events = await submit(other)
        assert sorted(event["count"] for event in events) == [1, 3]

        server.delete_object("v1", "Event", event["metadata"]["name"], "prod")
        events = await submit(retried)  # the Event is gone: a new one, counting from 1
        assert sorted(event["count"] for event in events) == [1, 1]

        clock[0] += AGGREGATION_WINDOW + 1
        before = {event["metadata"]["name"] for event in events}
        events = await submit(other)  # the window of the first 'other' Event is over
        assert sorted(event["count"] for event in events) == [1, 1, 1]

        # Not allowed to patch (RBAC granting only create): a new Event, as before aggregation.
        (newest,) = [event for event in events if event["metadata"]["name"] not in before]
        server.fail_next(1, 403, newest["metadata"]["name"])
        events = await submit(other)
    assert sorted(event["count"] for event in events) == [1, 1, 1, 1]
    assert {event["message"] for event in events} == {retried.message(), other.message()}
