"""Kyverno ``ClusterPolicy``/``Policy`` ``verifyImages`` policies: model, loader, matching, autogen, actions.

Everything but :mod:`exporter.policy.reload` (and the file reading in :mod:`exporter.policy.loader`) is pure:
no I/O, no clock, so admission decisions can be tested exhaustively. See ``docs/policies.md``.
"""

from exporter.policy.action import effective_action
from exporter.policy.images import ContainerImage, extract_images, normalize_image
from exporter.policy.loader import PolicyLoadError, load_policy_paths, parse_policies
from exporter.policy.match import ResourceInfo, rule_matches
from exporter.policy.model import (
    Action,
    ActionOverride,
    Attestor,
    AttestorEntry,
    CertificateEntry,
    FailurePolicy,
    ImageVerification,
    KeyEntry,
    KyvernoPolicy,
    LabelSelector,
    MatchBlock,
    Rekor,
    ResourceFilter,
    Rule,
    SecretRef,
    SelectorRequirement,
)
from exporter.policy.plan import ImageCheck, RulePlan, plan_review

__all__ = [
    "Action",
    "ActionOverride",
    "Attestor",
    "AttestorEntry",
    "CertificateEntry",
    "ContainerImage",
    "FailurePolicy",
    "ImageCheck",
    "ImageVerification",
    "KeyEntry",
    "KyvernoPolicy",
    "LabelSelector",
    "MatchBlock",
    "PolicyLoadError",
    "Rekor",
    "ResourceFilter",
    "ResourceInfo",
    "Rule",
    "RulePlan",
    "SecretRef",
    "SelectorRequirement",
    "effective_action",
    "extract_images",
    "load_policy_paths",
    "normalize_image",
    "parse_policies",
    "plan_review",
    "rule_matches",
]
