"""Fuzzing the parsers that read what others wrote: AdmissionReviews, policies, report files, wildcards.

Each input is a valid document with one part replaced by an arbitrary JSON value (or removed), or plain
random text. Whatever comes in, the parser either returns a value or raises its own typed error with a
message; nothing else escapes. A review that parses is then evaluated by the engine, which must answer it
(types are checked at the edge, so the engine never meets a value of the wrong type).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.admission.cache import Lookup
from exporter.admission.engine import AdmissionConfig, AdmissionEngine, Webhook
from exporter.admission.review import ReviewError, parse_review
from exporter.admission.verifier import ImageOutcome
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import PolicyLoadError, parse_policies
from exporter.policy.wildcard import wildcard_match
from exporter.reports.model import ReportParseError, parse_report
from exporter.reports.sources.local import LocalReportSource
from exporter.reports.store import ReportStore
from exporter.yamldoc import YamlLimitError, load_yaml_documents
from tests.support.admission import (
    ByImageVerifier,
    review_body,
    walkthrough_policy,
    walkthrough_policy_text,
    workload,
)
from tests.support.registry import generate_signing_key, public_pem
from tests.support.sigstore_box import shared_box

DATA = Path(__file__).parent / "data"
KEY = public_pem(generate_signing_key())
POLICY_TEXT = walkthrough_policy_text(KEY)
POLICY_DOCUMENT = yaml.safe_load(POLICY_TEXT)
# The same policy with keyless and certificate attestors and every option they take.
SIGNER_POLICY_DOCUMENT = copy.deepcopy(POLICY_DOCUMENT)


def _logs() -> dict[str, Any]:
    """Fresh rekor/ctlog settings (a shared dict would be dumped as a YAML alias, which policies refuse)."""
    return {"rekor": {"pubkey": KEY, "ignoreTlog": False}, "ctlog": {"pubkey": KEY, "ignoreSCT": False}}


SIGNER_POLICY_DOCUMENT["spec"]["rules"][0]["verifyImages"] = [
    {
        "imageReferences": ["*"],
        "type": "Cosign",
        "repository": "registry.example/signatures",
        "attestors": [
            {
                "count": 1,
                "entries": [
                    {
                        "keyless": {
                            "subject": "*@example.com",
                            "issuerRegExp": "^https://accounts\\.example\\.com$",
                            "additionalExtensions": {"githubWorkflowTrigger": "push"},
                            **_logs(),
                        }
                    },
                    {"certificates": {"certChain": shared_box().chain_pem, **_logs()}},
                ],
            }
        ],
    }
]
POLICIES = walkthrough_policy(KEY, **{"docker.io/user/test*": "*"})
REVIEWS = [
    json.loads(review_body(workload(kind, "w", "prod", "user/test:signed")))
    for kind in ("Pod", "Deployment", "CronJob")
]
REPORTS = [
    document
    for name in ("kubectl-list.yaml", "multi-document.yaml", "mixed-validity.yaml")
    for document in yaml.safe_load_all((DATA / "reports" / name).read_text())
    if isinstance(document, dict)
]

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``document`` (mapping keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(paths(value, (*prefix, index)))
    return found


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """One of ``documents`` with a few values replaced by arbitrary JSON values, or removed."""
    document = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(document)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return document


class PassingVerifier(ByImageVerifier):
    """Every image verifies: the fuzzing is about the request, not about signatures."""

    async def answer(self, image: str) -> tuple[ImageOutcome, Lookup]:
        return ImageOutcome("pass", "verified"), "miss"


ENGINE = AdmissionEngine(lambda: POLICIES, PassingVerifier(), ServiceMetrics(), config=AdmissionConfig())


def review_outcome(body: bytes) -> str:
    """``error: <message>`` for a rejected body, else the engine's decision on it."""
    try:
        request = parse_review(body)
    except ReviewError as error:
        assert str(error)
        return f"error: {error}"
    webhooks: tuple[Webhook, ...] = ("mutate", "validate")
    for webhook in webhooks:
        decision = asyncio.run(ENGINE.review(webhook, request))
        assert isinstance(decision.response.allowed, bool)
    return "answered"


@FUZZ
@given(mutated(REVIEWS))
def test_mutated_reviews_are_answered_or_rejected_with_a_reason(document: Any) -> None:
    review_outcome(json.dumps(document).encode())


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bodies_are_rejected_with_a_reason(body: bytes) -> None:
    review_outcome(body)


@FUZZ
@given(mutated([POLICY_DOCUMENT, SIGNER_POLICY_DOCUMENT]))
def test_mutated_policies_load_or_fail_with_a_policy_load_error(document: Any) -> None:
    try:
        text = yaml.safe_dump(document)
    except (yaml.YAMLError, ValueError):
        return
    try:
        parse_policies(text, "fuzz.yaml")
    except PolicyLoadError as error:
        assert str(error).startswith("fuzz.yaml")


@FUZZ
@given(st.text(max_size=300))
def test_random_policy_text_loads_or_fails_with_a_policy_load_error(text: str) -> None:
    try:
        parse_policies(text, "fuzz.yaml")
    except PolicyLoadError as error:
        assert str(error)


@FUZZ
@given(mutated(REPORTS))
def test_mutated_reports_parse_or_fail_with_a_report_parse_error(document: Any) -> None:
    try:
        parse_report(document)
    except ReportParseError as error:
        assert str(error)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_random_yaml_loads_or_fails_with_a_limit_error(data: str | bytes) -> None:
    try:
        load_yaml_documents(data)
    except YamlLimitError as error:
        assert str(error)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=mutated(REPORTS), suffix=st.sampled_from([".yaml", ".json"]))
def test_report_files_never_stop_a_scan(tmp_path: Path, document: Any, suffix: str) -> None:
    path = tmp_path / f"report{suffix}"
    path.write_text(json.dumps(document) if suffix == ".json" else yaml.safe_dump(document))
    source = LocalReportSource([tmp_path], ReportStore(), ServiceMetrics(), interval=1)
    outcome = source.scan_once()
    assert all(source.problems[str(skipped)] for skipped in outcome.skipped)


def regex_match(pattern: str, name: str) -> bool:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.fullmatch("".join(parts), name, re.DOTALL) is not None


@settings(max_examples=500, deadline=None)
@given(st.text("ab*?/", max_size=8), st.text("ab/", max_size=10))
def test_wildcards_match_exactly_what_the_regular_expression_does(pattern: str, name: str) -> None:
    assert wildcard_match(pattern, name) is regex_match(pattern, name)
