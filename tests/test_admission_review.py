"""AdmissionReview parsing and responses, and Kyverno-format messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from exporter.admission.messages import blocked_message, verification_failed, warning
from exporter.admission.review import AdmissionResponse, ReviewError, parse_review, render_response


def review(**request: Any) -> bytes:
    body: dict[str, Any] = {
        "uid": "u-1",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "operation": "CREATE",
        "name": "signed",
        "namespace": "prod",
        "object": {"metadata": {"name": "signed"}},
    }
    body.update(request)
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}
    ).encode()


def test_parses_a_v1_review() -> None:
    parsed = parse_review(review(dryRun=True))
    assert (parsed.uid, parsed.kind, parsed.resource_api_version, parsed.namespace) == (
        "u-1",
        "Deployment",
        "apps/v1",
        "prod",
    )
    assert parsed.dry_run is True


def test_v1beta1_answers_in_v1beta1() -> None:
    body = json.loads(review())
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    parsed = parse_review(json.dumps(body).encode())
    answer = render_response(parsed.api_version, parsed.uid, AdmissionResponse(allowed=True))
    assert answer == {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


def test_name_falls_back_to_generate_name() -> None:
    parsed = parse_review(review(name=None, object={"metadata": {"generateName": "web-7d9f-"}}))
    assert parsed.name == "web-7d9f-"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "body is not JSON"),
        (b"[]", "body is not a JSON object"),
        (json.dumps({"kind": "Pod"}).encode(), "kind must be AdmissionReview"),
        (json.dumps({"kind": "AdmissionReview", "apiVersion": "v2"}).encode(), "apiVersion must be one of"),
        (
            json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).encode(),
            "request is missing",
        ),
        (review(uid=""), "request.uid is empty"),
        (review(uid=5), "request.uid must be a str"),
        (review(operation="PATCH"), "request.operation must be one of"),
        (review(object=None), "request.object is missing for a CREATE"),
        (review(object=[1]), "request.object must be an object"),
        (review(kind={"kind": "Pod"}), "request.kind.version is missing"),
    ],
)
def test_rejects_what_is_not_a_review(body: bytes, problem: str) -> None:
    with pytest.raises(ReviewError, match=problem):
        parse_review(body)


def test_denial_carries_status_warnings_and_no_patch() -> None:
    answer = render_response(
        "admission.k8s.io/v1", "u", AdmissionResponse(allowed=False, message="no", code=403, warnings=["w"])
    )
    assert answer["response"] == {
        "uid": "u",
        "allowed": False,
        "status": {"message": "no", "code": 403, "status": "Failure"},
        "warnings": ["w"],
    }


def test_patch_is_base64_jsonpatch() -> None:
    patch = [{"op": "replace", "path": "/spec/containers/0/image", "value": "x@sha256:1"}]
    answer = render_response("admission.k8s.io/v1", "u", AdmissionResponse(allowed=True, patch=patch))
    assert answer["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == patch


WALKTHROUGH_DENIAL = """\
policy Deployment/prod/unsigned for resource violation:

check-image-signature:
  autogen-verify-image: |
    failed to verify image docker.io/user/test:unsigned: .attestors[0].entries[0].keys: no matching signatures
"""


def test_blocked_message_is_kyvernos() -> None:
    message = verification_failed(
        "docker.io/user/test:unsigned", ".attestors[0].entries[0].keys: no matching signatures"
    )
    text = blocked_message(
        "Deployment/prod/unsigned", {"check-image-signature": {"autogen-verify-image": message}}, True
    )
    assert text == "\n\n" + WALKTHROUGH_DENIAL


def test_blocked_message_plural_errors_and_quoted_keys() -> None:
    text = blocked_message("Pod/a/b", {"p1": {"r: x": "boom\nline two"}, "p2": {"r": "e"}}, False)
    assert "for resource errors:" in text
    assert '  "r: x": |\n    boom\n    line two\n' in text


def test_warning_format() -> None:
    assert warning("p", "r", "m") == "policy p.r: m"


@pytest.mark.parametrize("value", ["false", "true", 0, 1, [], {}])
def test_dry_run_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ReviewError, match=r"request\.dryRun must be true or false"):
        parse_review(review(dryRun=value))
