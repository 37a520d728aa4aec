"""AdmissionReview ``admission.k8s.io/v1`` and ``v1beta1``: strict parsing and the matching response.

The API server sends a review and expects the same ``apiVersion``, ``kind`` and ``uid`` back. Anything
that does not look like a review is rejected with a :class:`ReviewError` whose message says what is wrong,
so the HTTP layer can answer 400 instead of guessing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.jsondoc import parse_json_object

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


def _field(mapping: Mapping[str, Any], key: str, kind: type, where: str, required: bool = True) -> Any:
    value = mapping.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{where}.{key} is missing")
        return kind()
    if not isinstance(value, kind):
        raise ReviewError(f"{where}.{key} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _object(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReviewError(f"request.{key} must be an object, got {type(value).__name__}")
    return value


def parse_review(body: bytes) -> AdmissionRequest:
    """Parse an AdmissionReview body, or raise ReviewError saying what is wrong with it."""
    document = parse_json_object(body, "body", ReviewError)
    if document.get("kind") != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview, got {document.get('kind')!r}")
    api_version = document.get("apiVersion")
    if api_version not in SUPPORTED_VERSIONS:
        raise ReviewError(f"apiVersion must be one of {', '.join(SUPPORTED_VERSIONS)}, got {api_version!r}")
    request = _field(document, "request", dict, "review")
    uid = _field(request, "uid", str, "request")
    if not uid:
        raise ReviewError("request.uid is empty")
    kind = _field(request, "kind", dict, "request")
    operation = _field(request, "operation", str, "request")
    if operation not in OPERATIONS:
        raise ReviewError(f"request.operation must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    obj = _object(request, "object")
    old_object = _object(request, "oldObject")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise ReviewError(f"request.object is missing for a {operation}")
    return AdmissionRequest(
        api_version=str(api_version),
        uid=uid,
        kind=_field(kind, "kind", str, "request.kind"),
        group=_field(kind, "group", str, "request.kind", required=False),
        version=_field(kind, "version", str, "request.kind"),
        operation=operation,
        name=_field(request, "name", str, "request", required=False) or _metadata_name(obj),
        namespace=_field(request, "namespace", str, "request", required=False),
        object=obj,
        old_object=old_object,
        dry_run=_dry_run(request),
        sub_resource=_field(request, "subResource", str, "request", required=False),
    )


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
