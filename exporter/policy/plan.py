"""What has to be verified for one admission request: the pure half of the admission engine.

For every policy rule that applies to the resource, the plan lists one :class:`ImageCheck` per
(``verifyImages`` entry, container image) pair the entry covers, and the rule's effective action. The engine
then runs the checks (cosign, cache) and turns them into results and a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.policy.action import effective_action, possible_actions
from exporter.policy.images import ContainerImage, extract_images, normalize_image
from exporter.policy.match import ResourceInfo, rule_could_match, rule_matches, uses_namespace_selector
from exporter.policy.model import Action, ImageVerification, KyvernoPolicy, Rule
from exporter.registry.reference import InvalidReferenceError


@dataclass(frozen=True)
class ImageCheck:
    """Verify ``image`` against ``verification`` of ``rule``; ``reference`` is Kyverno's normalised form
    of the image (``docker.io/user/test:unsigned``), the one messages print."""

    policy: KyvernoPolicy
    rule: Rule
    verification: ImageVerification
    image: ContainerImage
    action: Action
    reference: str


@dataclass(frozen=True)
class RulePlan:
    """A rule that matched the resource, with its checks and effective action.

    * ``error`` set: an image could not be parsed (Kyverno reports the rule as ``error`` with this
      message), or the decision needs the labels of the namespace and they are not loaded yet; the
      action is then the strictest the labels could lead to, so ``failurePolicy`` decides.
    * no checks (and no error): no image is covered by the rule's ``imageReferences`` (minus its
      ``skipImageReferences``); Kyverno reports the rule as ``skip`` with ``skip_message``, which neither
      fails nor blocks.
    * otherwise every check must pass for the rule to pass.
    """

    policy: KyvernoPolicy
    rule: Rule
    checks: tuple[ImageCheck, ...]
    action: Action
    error: str | None = None
    skip_message: str = ""

    @property
    def skipped(self) -> bool:
        """Whether the rule matched but no image needs verifying (result ``skip``)."""
        return not self.checks and self.error is None


def policy_in_scope(policy: KyvernoPolicy, resource: ResourceInfo) -> bool:
    """A ClusterPolicy sees every resource; a Policy only resources in its own namespace. Policies with
    ``admission: false`` are not applied at admission at all."""
    if not policy.admission:
        return False
    return policy.kind == "ClusterPolicy" or resource.namespace == policy.namespace


def _plan_rule(
    policy: KyvernoPolicy, rule: Rule, resource: ResourceInfo, images: Sequence[ContainerImage]
) -> RulePlan:
    action = effective_action(policy, rule, None, resource.namespace, resource.namespace_labels)
    checks: list[ImageCheck] = []
    for image in images:
        try:
            reference = normalize_image(image.image)
        except ValueError as exc:
            # Keep the reason: "invalid image" alone leaves the user guessing what to change.
            reason = exc.problem if isinstance(exc, InvalidReferenceError) else str(exc)
            message = f"failed to extract images: invalid image {image.image}: {reason}"
            return RulePlan(policy, rule, (), action, message)
        checks.extend(
            ImageCheck(policy, rule, verification, image, action, reference)
            for verification in rule.verify_images
            if verification.applies_to_reference(reference)
        )
    if checks:
        return RulePlan(policy, rule, tuple(checks), action)
    return RulePlan(policy, rule, (), action, skip_message=_skip_message(rule, len(images)))


def _skip_message(rule: Rule, image_count: int) -> str:
    """Kyverno's message for a matched rule with nothing to verify. Kyverno collects the references once
    per image of the resource, hence the repetition (and '' for a resource without images)."""
    references = [ref for v in rule.verify_images for ref in v.image_references] * image_count
    return f"skip run verification as image in resource not found in imageRefs '{','.join(references)}'"


def _plan_without_labels(
    policy: KyvernoPolicy, rule: Rule, resource: ResourceInfo, images: Sequence[ContainerImage]
) -> RulePlan | None:
    """The plan of ``rule`` while the namespace's labels are unknown (None: the rule does not apply).

    When the labels would decide whether the rule applies (a ``namespaceSelector`` in ``match`` or
    ``exclude``) or which action it takes (a ``validationFailureActionOverrides`` selector), and the rule
    has images to verify, the plan is an error with the strictest action the labels could lead to, so the
    policy's ``failurePolicy`` decides, never a silent Audit.
    """
    matched = rule_matches(rule, resource)
    plan = _plan_rule(policy, rule, resource, images)
    if plan.skipped:
        return plan if matched else None
    match_unknown = uses_namespace_selector(rule.match) or uses_namespace_selector(rule.exclude)
    actions = possible_actions(policy, rule, resource.namespace)
    if (match_unknown and rule_could_match(rule, resource)) or (matched and len(actions) > 1):
        strictest: Action = "Enforce" if "Enforce" in actions else "Audit"
        message = (
            f"the labels of namespace {resource.namespace} are not loaded yet, and whether or how this "
            "rule applies depends on them (namespaceSelector); failurePolicy decides"
        )
        return RulePlan(policy, rule, (), strictest, message)
    return plan if matched else None


def plan_review(
    policies: Sequence[KyvernoPolicy], resource: ResourceInfo, obj: Mapping[str, Any]
) -> list[RulePlan]:
    """The rules of ``policies`` that apply to ``resource`` (whose object is ``obj``), in policy and rule
    order (each policy's own rules first, then its autogen rules), each with its image checks.

    Checks are ordered by ``verifyImages`` entry within each image, images as :func:`extract_images`
    returns them. The same image in two containers yields two checks (different pointers): deduplicate
    verification by reference, not the checks.
    """
    images = extract_images(obj)
    if not resource.namespace_labels_known and resource.namespace:
        plans = (
            _plan_without_labels(policy, rule, resource, images)
            for policy in policies
            if policy_in_scope(policy, resource)
            for rule in policy.rules
        )
        return [plan for plan in plans if plan is not None]
    return [
        _plan_rule(policy, rule, resource, images)
        for policy in policies
        if policy_in_scope(policy, resource)
        for rule in policy.rules
        if rule_matches(rule, resource)
    ]
