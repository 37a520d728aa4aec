"""AdmissionReview ``admission.k8s.io/v1`` and ``v1beta1``: strict parsing and the matching response.

The API server sends a review and expects the same ``apiVersion``, ``kind`` and ``uid`` back. Anything
that does not look like a review is rejected with a :class:`ReviewError` whose message says what is wrong,
so the HTTP layer can answer 400 instead of guessing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.jsondoc import JsonLimits, enforce_limits, parse_json_object, refuse_value_floods
from exporter.policy.images import CONTAINER_FIELDS, POD_SPEC_PATHS

SUPPORTED_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ReviewError(ValueError):
    """The body is not a usable AdmissionReview; the message names the missing or invalid part."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``request`` the engine needs, already type-checked."""

    api_version: str
    uid: str
    kind: str
    group: str
    version: str
    operation: str
    name: str
    namespace: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool = False
    sub_resource: str = ""
    resource: str = ""

    @property
    def resource_api_version(self) -> str:
        """``apiVersion`` of the reviewed object as it appears in reports (``v1``, ``apps/v1``)."""
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True)
class AdmissionResponse:
    """What the webhook answers; ``patch`` is a JSONPatch list or None."""

    allowed: bool
    message: str = ""
    code: int | None = None
    warnings: Sequence[str] = ()
    patch: Sequence[Mapping[str, Any]] | None = None


# What a review may hold, far above any real object: the API server caps objects near 1.5 MiB.
REVIEW_LIMITS = JsonLimits(max_depth=100, max_values=50_000, max_string=256 * 1024)
MAX_CONTAINERS = 200  # containers + initContainers + ephemeralContainers of one object
MAX_IMAGE_LENGTH = 1024  # a reference is at most 255 (name) + 128 (tag) + a digest, in practice

# Kubernetes' own rules for the identifiers that end up as metric labels, report names and messages.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_VERSION = re.compile(r"[a-z0-9]{1,63}")
_SUB_RESOURCE = re.compile(r"[a-z]{0,63}")
# Object names: at most 253 characters, no path separators, no control characters.
_NAME = re.compile(r"[^/%\x00-\x1f\x7f]{0,253}")


def _field(mapping: Mapping[str, Any], key: str, kind: type, where: str, required: bool = True) -> Any:
    value = mapping.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{where}.{key} is missing")
        return kind()
    if not isinstance(value, kind):
        raise ReviewError(f"{where}.{key} must be {_TYPE_NAMES[kind]}, got {type(value).__name__}")
    return value


_TYPE_NAMES: dict[type, str] = {dict: "an object", list: "a list", str: "a str"}


def _matching(value: str, pattern: re.Pattern[str], where: str, rule: str) -> str:
    if pattern.fullmatch(value) is None or value in (".", ".."):
        raise ReviewError(f"{where} {_shown(value)} is not {rule}")
    return value


def _object(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReviewError(f"request.{key} must be an object, got {type(value).__name__}")
    _check_object(value, f"request.{key}")
    return value


def _check_string_map(mapping: Mapping[str, Any], key: str, where: str) -> None:
    value = _field(mapping, key, dict, where, required=False)
    for name, item in value.items():
        if not isinstance(item, str):
            raise ReviewError(f"{where}.{key}[{name!r}] must be a str, got {type(item).__name__}")


def _check_object(obj: Mapping[str, Any], where: str) -> None:
    """The fields of a reviewed object the engine reads, type-checked, and its containers bounded."""
    kind = _field(obj, "kind", str, where, required=False)
    _field(obj, "apiVersion", str, where, required=False)
    metadata = _field(obj, "metadata", dict, where, required=False)
    for key in ("name", "generateName", "namespace", "uid"):
        _field(metadata, key, str, f"{where}.metadata", required=False)
    for key in ("labels", "annotations"):
        _check_string_map(metadata, key, f"{where}.metadata")
    path = POD_SPEC_PATHS.get(kind)
    if path is None:
        return
    node: Mapping[str, Any] = obj
    spec_where = where
    for key in path:
        node = _field(node, key, dict, spec_where, required=False)
        spec_where = f"{spec_where}.{key}"
    containers = 0
    for field_name in CONTAINER_FIELDS:
        items = _field(node, field_name, list, spec_where, required=False)
        containers += len(items)
        if containers > MAX_CONTAINERS:
            raise ReviewError(f"{spec_where} has more than {MAX_CONTAINERS} containers")
        for index, container in enumerate(items):
            at = f"{spec_where}.{field_name}[{index}]"
            if not isinstance(container, dict):
                raise ReviewError(f"{at} must be an object, got {type(container).__name__}")
            _field(container, "name", str, at, required=False)
            image = _field(container, "image", str, at, required=False)
            if len(image) > MAX_IMAGE_LENGTH:
                raise ReviewError(f"{at}.image is longer than {MAX_IMAGE_LENGTH} characters")


def parse_review(body: bytes) -> AdmissionRequest:
    """Parse an AdmissionReview body into typed values, or raise ReviewError naming the field at fault.

    The body must be UTF-8 JSON (the API server sends nothing else) within :data:`REVIEW_LIMITS`.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReviewError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    # A flood of values is refused before it is decoded; then typed checks: they read only known fields
    # (bounded work) and reject most hostile bodies before the walk over every value (limits) runs.
    refuse_value_floods(text, REVIEW_LIMITS, "body", ReviewError)
    document = parse_json_object(text, "body", ReviewError)
    if document.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview, got {_shown(document.get('kind'))}")
    api_version = document.get("apiVersion")
    if api_version not in SUPPORTED_VERSIONS:
        raise ReviewError(
            f"apiVersion must be one of {', '.join(SUPPORTED_VERSIONS)}, got {_shown(api_version)}"
        )
    request = _field(document, "request", dict, "review")
    uid = _field(request, "uid", str, "request")
    if not uid:
        raise ReviewError("request.uid is empty")
    if len(uid) > 128:
        raise ReviewError("request.uid is longer than 128 characters")
    kind = _field(request, "kind", dict, "request")
    operation = _field(request, "operation", str, "request")
    if operation not in OPERATIONS:
        raise ReviewError(
            f"request.operation must be one of {', '.join(OPERATIONS)}, got {_shown(operation)}"
        )
    obj = _object(request, "object")
    old_object = _object(request, "oldObject")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise ReviewError(f"request.object is missing for a {operation}")
    group = _field(kind, "group", str, "request.kind", required=False)
    if group:
        _matching(group, _DNS_SUBDOMAIN, "request.kind.group", "an API group (a DNS subdomain)")
    namespace = _field(request, "namespace", str, "request", required=False)
    if namespace:
        _matching(namespace, _DNS_LABEL, "request.namespace", "a namespace name (a DNS label)")
    name = _field(request, "name", str, "request", required=False) or _metadata_name(obj)
    enforce_limits(document, text, REVIEW_LIMITS, "body", ReviewError)
    return AdmissionRequest(
        api_version=str(api_version),
        uid=uid,
        kind=_matching(_field(kind, "kind", str, "request.kind"), _KIND, "request.kind.kind", "a kind name"),
        group=group,
        version=_matching(
            _field(kind, "version", str, "request.kind"), _VERSION, "request.kind.version", "an API version"
        ),
        operation=operation,
        name=_matching(name, _NAME, "request.name", "an object name"),
        namespace=namespace,
        object=obj,
        old_object=old_object,
        dry_run=_dry_run(request),
        sub_resource=_matching(
            _field(request, "subResource", str, "request", required=False),
            _SUB_RESOURCE,
            "request.subResource",
            "a subresource name",
        ),
        resource=_resource_name(request) or default_resource(_field(kind, "kind", str, "request.kind")),
    )


def _shown(value: Any) -> str:
    """A value quoted for an error message, cut short: the message must not echo a megabyte back."""
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _dry_run(request: Mapping[str, Any]) -> bool:
    """``request.dryRun``: a boolean or absent. Anything else is refused rather than guessed at: read as
    truthy, ``"false"`` would make a real request a dry run that writes no report."""
    value = request.get("dryRun")
    if value is None:
        return False
    if not isinstance(value, bool):
        shown = repr(value)[:40]
        raise ReviewError(f"request.dryRun must be true or false, got {type(value).__name__} {shown}")
    return value


def default_resource(kind: str) -> str:
    """The API resource of a kind by Kubernetes' naming rule (``Pod`` -> ``pods``, ``Ingress`` ->
    ``ingresses``, ``NetworkPolicy`` -> ``networkpolicies``): for reviews built without ``request.resource``
    (``trustwatch apply``)."""
    lowered = kind.lower()
    if lowered.endswith(("s", "x", "z", "ch", "sh")):
        return f"{lowered}es"
    if lowered.endswith("y") and lowered[-2:-1] not in ("a", "e", "i", "o", "u"):
        return f"{lowered[:-1]}ies"
    return f"{lowered}s"


def _resource_name(request: Mapping[str, Any]) -> str:
    """``request.resource.resource`` (``pods``, ``deployments``): what ImageValidatingPolicy
    ``resourceRules`` match; empty when absent."""
    resource = request.get("resource")
    if not isinstance(resource, dict):
        return ""
    name = _field(resource, "resource", str, "request.resource", required=False) or ""
    return _matching(name, _SUB_RESOURCE, "request.resource.resource", "a resource name")


def _metadata_name(obj: Mapping[str, Any] | None) -> str:
    """CREATE requests with generateName carry no name yet; fall back to what the object says."""
    metadata = obj.get("metadata") if obj else None
    if not isinstance(metadata, dict):
        return ""
    return str(metadata.get("name") or metadata.get("generateName") or "")


def render_response(request_api_version: str, uid: str, response: AdmissionResponse) -> dict[str, Any]:
    """The AdmissionReview the API server expects back, in the version it sent."""
    body: dict[str, Any] = {"uid": uid, "allowed": response.allowed}
    if response.message or response.code is not None:
        status: dict[str, Any] = {"message": response.message}
        if response.code is not None:
            status["code"] = response.code
        if not response.allowed:
            status["status"] = "Failure"
        body["status"] = status
    if response.warnings:
        body["warnings"] = list(response.warnings)
    if response.patch:
        body["patchType"] = "JSONPatch"
        body["patch"] = base64.b64encode(json.dumps(list(response.patch)).encode()).decode()
    return {"apiVersion": request_api_version, "kind": "AdmissionReview", "response": body}
