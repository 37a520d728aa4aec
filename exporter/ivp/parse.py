"""Turn one decoded ``ImageValidatingPolicy``/``NamespacedImageValidatingPolicy`` into a validated model.

Same rules as :mod:`exporter.policy.parse`: every field is read through :class:`Fields`, so an unknown or
unsupported field is a load error naming its path, and every CEL expression is compiled here, so a syntax
or type error is a load error naming the field and the column. Nothing is skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from exporter.ivp.attestors import parse_attestation, parse_attestor
from exporter.ivp.celenv import CelCompileError, CompiledExpression, ExpressionKind, compile_expression
from exporter.ivp.model import (
    Attestation,
    CosignAttestor,
    ImageMatcher,
    ImageValidatingPolicy,
    IvpKind,
    MatchConstraints,
    NamedExpression,
    ResourceRule,
    Validation,
    ValidationAction,
)
from exporter.policy.autogen import CONTROLLER_GVKS, DEFAULT_CONTROLLERS
from exporter.policy.fields import FieldError, Fields
from exporter.policy.model import FailurePolicy
from exporter.policy.parse import (
    FAILURE_POLICIES,
    content_version,
    optional_selector,
    parse_header,
)

API_VERSIONS = frozenset(
    {"policies.kyverno.io/v1", "policies.kyverno.io/v1beta1", "policies.kyverno.io/v1alpha1"}
)
IVP_KINDS: dict[str, IvpKind] = {
    "ImageValidatingPolicy": "ImageValidatingPolicy",
    "NamespacedImageValidatingPolicy": "NamespacedImageValidatingPolicy",
}
VALIDATION_ACTIONS: dict[str, ValidationAction] = {"Deny": "Deny", "Warn": "Warn", "Audit": "Audit"}
RULE_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT", "*"})
SCOPES = frozenset({"Cluster", "Namespaced", "*"})
MAX_TIMEOUT_SECONDS = 30
# Controllers by kind name and by resource name (Kyverno's CEL policies list resources: deployments ...).
_CONTROLLER_NAMES: dict[str, str] = {
    **{kind: kind for kind in DEFAULT_CONTROLLERS},
    **{f"{kind.lower()}s": kind for kind in DEFAULT_CONTROLLERS},
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

SPEC_UNSUPPORTED = {
    "credentials": "registry credentials come from trustwatch's own registry settings (--registry-config); "
    "remove credentials",
    "auditAnnotations": "audit annotations are not supported; remove them",
}


def _compile(
    fields: Fields, key: str, expects: ExpressionKind, *, required: bool = True
) -> CompiledExpression | None:
    source = fields.string(key, required=required)
    if source is None:
        return None
    try:
        return compile_expression(source, expects)
    except CelCompileError as error:
        raise FieldError(fields.at(key), f"invalid CEL expression: {error}") from None


def _required_expression(fields: Fields, key: str, expects: ExpressionKind) -> CompiledExpression:
    compiled = _compile(fields, key, expects)
    assert compiled is not None
    return compiled


def _named(fields: Fields, expects: ExpressionKind, seen: set[str]) -> NamedExpression:
    name = fields.required_string("name")
    if _NAME.fullmatch(name) is None:
        raise FieldError(fields.at("name"), f"{name!r} is not a CEL identifier (letters, digits, _)")
    if name in seen:
        raise FieldError(fields.at("name"), f"duplicate name {name!r}")
    seen.add(name)
    expression = _required_expression(fields, "expression", expects)
    fields.finish({})
    return NamedExpression(name, expression)


def _named_list(spec: Fields, key: str, expects: ExpressionKind) -> tuple[NamedExpression, ...]:
    seen: set[str] = set()
    return tuple(_named(item, expects, seen) for item in spec.objects(key))


def _resource_rule(fields: Fields) -> ResourceRule:
    operations = fields.strings("operations")
    for index, operation in enumerate(operations):
        if operation not in RULE_OPERATIONS:
            raise FieldError(
                f"{fields.at('operations')}[{index}]",
                f"unsupported operation {operation!r}; allowed: {', '.join(sorted(RULE_OPERATIONS))}",
            )
    rule = ResourceRule(
        api_groups=_strings_allowing_empty(fields, "apiGroups"),
        api_versions=fields.strings("apiVersions"),
        operations=operations,
        resources=fields.strings("resources"),
        resource_names=fields.strings("resourceNames"),
    )
    scope = fields.string("scope", default="*")
    if scope not in SCOPES:
        raise FieldError(fields.at("scope"), f"unsupported scope {scope!r}; allowed: Cluster, Namespaced, *")
    fields.finish({})
    for key, values in (("apiGroups", rule.api_groups), ("apiVersions", rule.api_versions),
                        ("operations", rule.operations), ("resources", rule.resources)):  # fmt: skip
        if not values:
            raise FieldError(fields.at(key), "is required (use '*' for all)")
    return rule


def _strings_allowing_empty(fields: Fields, key: str) -> tuple[str, ...]:
    """``apiGroups`` lists the core group as ``""``, which :meth:`Fields.strings` rejects."""
    value = fields.raw(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FieldError(fields.at(key), "expected a list of strings")
    return tuple(value)


def _match_constraints(fields: Fields | None) -> MatchConstraints:
    if fields is None:
        raise FieldError("spec.matchConstraints", "is required: name the resources the policy checks")
    constraints = MatchConstraints(
        resource_rules=tuple(_resource_rule(item) for item in fields.objects("resourceRules")),
        exclude_resource_rules=tuple(_resource_rule(item) for item in fields.objects("excludeResourceRules")),
        namespace_selector=optional_selector(fields, "namespaceSelector"),
        object_selector=optional_selector(fields, "objectSelector"),
    )
    policy = fields.string("matchPolicy", default="Equivalent")
    if policy not in ("Equivalent", "Exact"):
        raise FieldError(fields.at("matchPolicy"), "unsupported value; allowed: Equivalent, Exact")
    fields.finish({})
    if not constraints.resource_rules:
        raise FieldError(fields.at("resourceRules"), "is required: name the resources the policy checks")
    return constraints


def _image_matcher(fields: Fields) -> ImageMatcher:
    matcher = ImageMatcher(
        glob=fields.string("glob"), expression=_compile(fields, "expression", "bool", required=False)
    )
    fields.finish({})
    if (matcher.glob is None) == (matcher.expression is None):
        raise FieldError(fields.path, "give exactly one of glob and expression")
    return matcher


def _attestor(fields: Fields, seen: set[str]) -> CosignAttestor:
    name = _unique_name(fields, seen, "attestor")
    return parse_attestor(fields, name)


def _attestation(fields: Fields, seen: set[str]) -> Attestation:
    name = _unique_name(fields, seen, "attestation")
    return parse_attestation(fields, name)


def _unique_name(fields: Fields, seen: set[str], what: str) -> str:
    name = fields.required_string("name")
    if _NAME.fullmatch(name) is None:
        raise FieldError(fields.at("name"), f"{name!r} is not a CEL identifier (letters, digits, _)")
    if name in seen:
        raise FieldError(fields.at("name"), f"duplicate {what} name {name!r}")
    seen.add(name)
    return name


def _validation(fields: Fields) -> Validation:
    validation = Validation(
        expression=_required_expression(fields, "expression", "bool"),
        message=fields.string("message"),
        message_expression=_compile(fields, "messageExpression", "string", required=False),
    )
    fields.finish({"reason": "a custom denial reason is not supported; remove reason (denials answer 403)"})
    return validation


def _actions(spec: Fields) -> frozenset[ValidationAction]:
    written = spec.strings("validationActions")
    actions: set[ValidationAction] = set()
    for index, action in enumerate(written):
        if action not in VALIDATION_ACTIONS:
            raise FieldError(
                f"spec.validationActions[{index}]",
                f"unsupported value {action!r}; allowed: Audit, Deny, Warn",
            )
        actions.add(VALIDATION_ACTIONS[action])
    if {"Deny", "Warn"} <= actions:
        raise FieldError("spec.validationActions", "Deny and Warn together are not allowed; choose one")
    return frozenset(actions or {"Deny"})


def _controllers(spec: Fields) -> frozenset[str]:
    autogen = spec.child("autogen")
    if autogen is None:
        return DEFAULT_CONTROLLERS
    pod_controllers = autogen.child("podControllers")
    autogen.finish({})
    if pod_controllers is None:
        return DEFAULT_CONTROLLERS
    raw = pod_controllers.raw("controllers")
    pod_controllers.finish({})
    if raw is None:
        return DEFAULT_CONTROLLERS
    controllers: set[str] = set()
    names = pod_controllers.strings("controllers")
    for index, name in enumerate(names):
        if name not in _CONTROLLER_NAMES:
            raise FieldError(
                f"{pod_controllers.at('controllers')}[{index}]",
                f"unknown controller {name!r}; use {', '.join(sorted(CONTROLLER_GVKS))} or their resources",
            )
        controllers.add(_CONTROLLER_NAMES[name])
    return frozenset(controllers)


def _webhook_timeout(spec: Fields) -> int | None:
    webhook = spec.child("webhookConfiguration")
    if webhook is None:
        return None
    timeout = webhook.integer("timeoutSeconds", minimum=1)
    webhook.finish({})
    if timeout is not None and timeout > MAX_TIMEOUT_SECONDS:
        raise FieldError(webhook.at("timeoutSeconds"), f"must be at most {MAX_TIMEOUT_SECONDS}")
    return timeout


def _admission_enabled(spec: Fields) -> bool:
    evaluation = spec.child("evaluation")
    if evaluation is None:
        return True
    mode = evaluation.string("mode", default="Kubernetes")
    if mode != "Kubernetes":
        raise FieldError(evaluation.at("mode"), f"only mode Kubernetes is supported, not {mode}")
    admission = evaluation.child("admission")
    enabled = admission.boolean("enabled", True) if admission is not None else True
    if admission is not None:
        admission.finish({})
    background = evaluation.child("background")
    if background is not None:  # background scans are Kyverno's: accepted, without effect
        background.boolean("enabled", True)
        background.finish({})
    evaluation.finish({})
    return enabled


def parse_image_validating_policy(
    document: Mapping[str, Any], source: str = "<string>"
) -> ImageValidatingPolicy:
    """Validate one decoded policy object. Raises :class:`FieldError`."""
    header = parse_header(document, IVP_KINDS, API_VERSIONS, "NamespacedImageValidatingPolicy")
    spec = header.spec
    configurations = spec.child("validationConfigurations")
    attestor_names: set[str] = set()
    attestation_names: set[str] = set()
    policy = ImageValidatingPolicy(
        kind=header.kind,
        name=header.name,
        namespace=header.namespace,
        annotations=header.annotations,
        match_constraints=_match_constraints(spec.child("matchConstraints")),
        match_conditions=_named_list(spec, "matchConditions", "bool"),
        variables=_named_list(spec, "variables", "any"),
        failure_policy=spec.choice("failurePolicy", FAILURE_POLICIES, default="Fail") or _FAIL,
        validation_actions=_actions(spec),
        match_image_references=tuple(_image_matcher(item) for item in spec.objects("matchImageReferences")),
        image_extractors=_named_list(spec, "images", "string_list"),
        attestors=tuple(_attestor(item, attestor_names) for item in spec.objects("attestors")),
        attestations=tuple(_attestation(item, attestation_names) for item in spec.objects("attestations")),
        validations=tuple(_validation(item) for item in spec.objects("validations")),
        autogen_controllers=_controllers(spec),
        version=content_version(document),
        admission=_admission_enabled(spec),
        webhook_timeout_seconds=_webhook_timeout(spec),
        mutate_digest=configurations.boolean("mutateDigest", True) if configurations else True,
        verify_digest=configurations.boolean("verifyDigest", True) if configurations else True,
        required=configurations.boolean("required", True) if configurations else True,
        source=source,
    )
    if configurations is not None:
        configurations.finish({})
    spec.finish(SPEC_UNSUPPORTED)
    if not policy.validations:
        raise FieldError("spec.validations", "is required: at least one CEL validation")
    return policy


_FAIL: FailurePolicy = "Fail"
