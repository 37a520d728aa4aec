"""The validated form of Kyverno ``ImageValidatingPolicy`` and ``NamespacedImageValidatingPolicy`` objects.

Immutable, like :mod:`exporter.policy.model`, so a loaded set is shared by concurrent requests. Every CEL
expression is already compiled (:class:`exporter.ivp.celenv.CompiledExpression`). The properties the
admission engine and the report writer read (``name``, ``display_name``, ``report_name``, ``severity`` ...)
mirror :class:`exporter.policy.model.KyvernoPolicy`, so results of both kinds flow through one path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from exporter.cosign.options import VerificationOptions
from exporter.ivp.celenv import CompiledExpression, identifiers
from exporter.policy.model import FailurePolicy, LabelSelector, PolicyIdentity

IvpKind = Literal["ImageValidatingPolicy", "NamespacedImageValidatingPolicy"]
ValidationAction = Literal["Deny", "Warn", "Audit"]
REPORT_SOURCE = "KyvernoImageValidatingPolicy"


@dataclass(frozen=True)
class ResourceRule:
    """One ``resourceRules`` entry of ``matchConstraints`` (Kubernetes ``NamedRuleWithOperations``)."""

    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    operations: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatchConstraints:
    """``matchConstraints``: which requests the policy sees (Kubernetes ``MatchResources``)."""

    resource_rules: tuple[ResourceRule, ...]
    exclude_resource_rules: tuple[ResourceRule, ...] = ()
    namespace_selector: LabelSelector | None = None
    object_selector: LabelSelector | None = None


@dataclass(frozen=True)
class NamedExpression:
    """A ``matchConditions``, ``variables`` or ``images`` entry: a name and its compiled expression."""

    name: str
    expression: CompiledExpression


@dataclass(frozen=True)
class ImageMatcher:
    """``matchImageReferences[]``: a glob over the normalised image, or a CEL expression over it."""

    glob: str | None = None
    expression: CompiledExpression | None = None


@dataclass(frozen=True, eq=False)
class CosignAttestor:
    """``attestors[]`` with ``cosign``: who may sign (a key, a certificate or a keyless identity) and the
    trust settings (``ctlog``, ``trustedRoot``, ``source.repository``), as the verification options the
    signature pipeline takes (:class:`exporter.cosign.VerificationOptions`, one attestor, threshold 1)."""

    name: str
    options: VerificationOptions
    kind: Literal["key", "keyless", "certificate"] = "key"


@dataclass(frozen=True)
class Attestation:
    """``attestations[]``: in-toto statements of ``predicate_type`` attached to the image (``intoto``: cosign
    ``.att`` layers and DSSE bundles; ``referrer``: the same, found through OCI referrers)."""

    name: str
    predicate_type: str
    kind: Literal["intoto", "referrer"] = "intoto"


@dataclass(frozen=True)
class Validation:
    """``validations[]``: the expression must be true; ``message``/``message_expression`` explain a false."""

    expression: CompiledExpression
    message: str | None = None
    message_expression: CompiledExpression | None = None


@dataclass(frozen=True, eq=False)
class ImageValidatingPolicy(PolicyIdentity):
    """A validated (Namespaced)ImageValidatingPolicy; identity, messages and report metadata as for
    ClusterPolicies (:class:`exporter.policy.model.PolicyIdentity`)."""

    kind: IvpKind
    name: str
    namespace: str | None
    annotations: Mapping[str, str]
    match_constraints: MatchConstraints
    match_conditions: tuple[NamedExpression, ...]
    variables: tuple[NamedExpression, ...]
    failure_policy: FailurePolicy
    validation_actions: frozenset[ValidationAction]
    match_image_references: tuple[ImageMatcher, ...]
    image_extractors: tuple[NamedExpression, ...]
    attestors: tuple[CosignAttestor, ...]
    attestations: tuple[Attestation, ...]
    validations: tuple[Validation, ...]
    autogen_controllers: frozenset[str]
    version: str
    admission: bool = True
    webhook_timeout_seconds: int | None = None
    mutate_digest: bool = True
    verify_digest: bool = True
    required: bool = True
    source: str = field(default="<string>", compare=False)

    @cached_property
    def identifiers(self) -> frozenset[str]:
        """Every identifier of the policy's expressions (variables read, functions called)."""
        expressions = [
            *(item.expression for item in (*self.match_conditions, *self.variables, *self.image_extractors)),
            *(matcher.expression for matcher in self.match_image_references if matcher.expression),
            *(validation.expression for validation in self.validations),
            *(
                validation.message_expression
                for validation in self.validations
                if validation.message_expression
            ),
        ]
        return identifiers([expression.source for expression in expressions])

    @property
    def verifies_signatures(self) -> bool:
        """Whether an expression may ask ``verifyImageSignatures``."""
        return "verifyImageSignatures" in self.identifiers

    @property
    def verifies_attestations(self) -> bool:
        """Whether an expression may ask ``verifyAttestationSignatures`` or ``extractPayload``."""
        return bool({"verifyAttestationSignatures", "extractPayload"} & self.identifiers)

    @property
    def report_name(self) -> str:
        """The PolicyReport holding this policy's results: ``ivpol-<name>`` / ``nivpol-<name>`` (the
        kinds' short names, as ``cpol-``/``pol-`` are for ClusterPolicy/Policy)."""
        prefix = "ivpol" if self.kind == "ImageValidatingPolicy" else "nivpol"
        return f"{prefix}-{self.name}"

    @property
    def report_source(self) -> str:
        """``results[].source``, as Kyverno writes it for CEL image policies."""
        return REPORT_SOURCE

    @property
    def denies(self) -> bool:
        """Whether a failure denies the request (``Deny`` in ``validationActions``)."""
        return "Deny" in self.validation_actions

    @property
    def warns(self) -> bool:
        """Whether a failure is returned to the client as an admission warning (``Warn``)."""
        return "Warn" in self.validation_actions
