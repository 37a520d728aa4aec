"""plan_review: which rules apply to a request, their image checks, actions, skips and errors."""

from __future__ import annotations

from collections.abc import Mapping

from exporter.policy import ResourceInfo, plan_review
from tests.test_policy_builders import (
    load,
    pod_spec,
    policy,
    rule,
    verification,
    walkthrough_policy,
    workload,
)


def _info(obj: Mapping[str, object], namespace_labels: dict[str, str] | None = None) -> ResourceInfo:
    return ResourceInfo.from_object(obj, namespace_labels=namespace_labels)


def test_walkthrough_deployment_in_prod_and_dev() -> None:
    walkthrough = walkthrough_policy()
    for namespace, action in (("prod", "Enforce"), ("dev", "Audit")):
        obj = workload("Deployment", pod_spec("user/test:unsigned"), namespace=namespace, name="unsigned")
        (plan,) = plan_review([walkthrough], _info(obj), obj)
        assert (plan.policy.name, plan.rule.name, plan.action) == (
            "check-image-signature",
            "autogen-verify-image",
            action,
        )
        (check,) = plan.checks
        assert check.reference == "docker.io/user/test:unsigned"
        assert check.image.pointer == "/spec/template/spec/containers/0/image"
        assert check.action == action and check.verification is plan.rule.verify_images[0]


def test_pod_and_cronjob_hit_their_own_rules() -> None:
    walkthrough = walkthrough_policy()
    pod = workload("Pod", pod_spec("a:1"))
    cronjob = workload("CronJob", pod_spec("a:1"))
    assert [p.rule.name for p in plan_review([walkthrough], _info(pod), pod)] == ["verify-image"]
    (plan,) = plan_review([walkthrough], _info(cronjob), cronjob)
    assert plan.rule.name == "autogen-cronjob-verify-image"
    assert plan.checks[0].image.pointer == "/spec/jobTemplate/spec/template/spec/containers/0/image"


def test_one_check_per_entry_and_image_covered() -> None:
    two_entries = rule(
        verifyImages=[
            verification(imageReferences=["ghcr.io/*"]),
            verification(imageReferences=["*"], skipImageReferences=["*:debug"]),
        ]
    )
    parsed = load(policy(two_entries))
    obj = workload("Pod", pod_spec("ghcr.io/a/b:1", "app:debug", init=("ghcr.io/a/init:1",)))
    (plan,) = plan_review([parsed], _info(obj), obj)
    assert [
        (c.image.container, parsed.rules[0].verify_images.index(c.verification)) for c in plan.checks
    ] == [
        ("i0", 0),
        ("i0", 1),
        ("c0", 0),
        ("c0", 1),
    ]


def test_matched_rule_without_covered_images_is_a_skip() -> None:
    parsed = load(policy(rule(verifyImages=[verification(imageReferences=["ghcr.io/*", "quay.io/*"])])))
    obj = workload("Pod", pod_spec("nginx"))
    (plan,) = plan_review([parsed], _info(obj), obj)
    assert plan.skipped and plan.checks == () and plan.error is None
    prefix = "skip run verification as image in resource not found in imageRefs"
    assert plan.skip_message == f"{prefix} 'ghcr.io/*,quay.io/*'"
    two = workload("Pod", pod_spec("nginx", "redis"))
    assert (
        plan_review([parsed], _info(two), two)[0].skip_message
        == f"{prefix} 'ghcr.io/*,quay.io/*,ghcr.io/*,quay.io/*'"
    )
    empty = workload("Pod", {"containers": []})
    assert plan_review([parsed], _info(empty), empty)[0].skip_message == f"{prefix} ''"
    skipped = load(policy(rule(verifyImages=[verification(skipImageReferences=["*nginx*"])])))
    (plan,) = plan_review([skipped], _info(obj), obj)
    assert plan.skipped


def test_invalid_image_is_a_rule_error_that_says_why() -> None:
    obj = workload("Pod", pod_spec("Bad Image"))
    (plan,) = plan_review([walkthrough_policy()], _info(obj), obj)
    assert not plan.skipped
    assert plan.error == "failed to extract images: invalid image Bad Image: it contains whitespace"
    upper = workload("Pod", pod_spec("ghcr.io/Org/App:1"))
    (plan,) = plan_review([walkthrough_policy()], _info(upper), upper)
    assert plan.error is not None and plan.error.startswith(
        "failed to extract images: invalid image ghcr.io/Org/App:1: "
    )
    assert plan.error.endswith("(repository names must be lowercase)")


def test_policy_applies_only_in_its_namespace() -> None:
    namespaced = load(policy(kind="Policy", namespace="team-a"))
    inside = workload("Pod", pod_spec("a"), namespace="team-a")
    outside = workload("Pod", pod_spec("a"), namespace="team-b")
    assert len(plan_review([namespaced], _info(inside), inside)) == 1
    assert plan_review([namespaced], _info(outside), outside) == []
    cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    namespace_rule = load(policy(rule(kinds=("Namespace",)), kind="Policy", namespace="team-a"))
    assert plan_review([namespace_rule], _info(cluster_scoped), cluster_scoped) == []


def test_admission_false_policies_are_not_planned() -> None:
    obj = workload("Pod", pod_spec("a"))
    assert plan_review([load(policy(admission=False))], _info(obj), obj) == []


def test_unmatched_resources_and_order_across_policies() -> None:
    first, second = load(policy(name="first")), load(policy(name="second", validationFailureAction="Enforce"))
    obj = workload("Deployment", pod_spec("a"), namespace="prod")
    plans = plan_review([first, second], _info(obj), obj)
    assert [(p.policy.name, p.action) for p in plans] == [("first", "Audit"), ("second", "Enforce")]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "prod"}}
    assert plan_review([first, second], _info(service), service) == []


def test_namespace_labels_steer_overrides_in_the_plan() -> None:
    parsed = load(
        policy(
            validationFailureActionOverrides=[
                {"action": "Enforce", "namespaceSelector": {"matchLabels": {"env": "prod"}}}
            ]
        )
    )
    obj = workload("Pod", pod_spec("a"), namespace="payments")
    (plan,) = plan_review([parsed], _info(obj, {"env": "prod"}), obj)
    assert plan.action == "Enforce"


def _unknown_labels(obj: dict[str, object]) -> ResourceInfo:
    return ResourceInfo.from_object(obj, namespace_labels={}, namespace_labels_known=False)


def test_without_namespace_labels_a_selector_decision_is_an_error_with_the_strictest_action() -> None:
    override = {"action": "Enforce", "namespaceSelector": {"matchLabels": {"tier": "critical"}}}
    by_override = load(policy(validationFailureAction="Audit", validationFailureActionOverrides=[override]))
    selector_match = {
        "any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"a": "b"}}}}]
    }
    by_match = load(policy(rule(match=selector_match), name="m", validationFailureAction="Enforce"))
    pod = workload("Pod", pod_spec("a:1"), namespace="payments")
    plans = plan_review([by_override, by_match], _unknown_labels(pod), pod)
    assert [(plan.policy.name, plan.action, plan.checks) for plan in plans] == [
        ("p", "Enforce", ()),
        ("m", "Enforce", ()),
    ]
    assert all(
        plan.error and "labels of namespace payments are not loaded yet" in plan.error for plan in plans
    )
    # with the labels known, the same requests are decided normally
    known = plan_review([by_override, by_match], _info(pod, {"tier": "critical"}), pod)
    assert [(plan.policy.name, plan.action, plan.error) for plan in known] == [("p", "Enforce", None)]


def test_without_namespace_labels_rules_that_do_not_need_them_are_planned_as_usual() -> None:
    walkthrough = walkthrough_policy()  # overrides by namespace name only
    pod = workload("Pod", pod_spec("user/test:unsigned"), namespace="prod")
    (plan,) = plan_review([walkthrough], _unknown_labels(pod), pod)
    assert (plan.action, plan.error, len(plan.checks)) == ("Enforce", None, 1)
    # a rule with no image to verify is a skip whatever the labels say
    override = {"action": "Enforce", "namespaceSelector": {"matchLabels": {"tier": "critical"}}}
    narrow = rule(verifyImages=[verification(imageReferences=["ghcr.io/only/*"])])
    (skipped,) = plan_review(
        [load(policy(narrow, validationFailureActionOverrides=[override]))], _unknown_labels(pod), pod
    )
    assert skipped.skipped
    cluster_scoped = workload("Pod", pod_spec("a:1"), namespace="")
    assert (
        plan_review(
            [load(policy(validationFailureActionOverrides=[override]))],
            _unknown_labels(cluster_scoped),
            cluster_scoped,
        )[0].error
        is None
    )
