"""Floods of JSON values refused before decoding: never a document within the limits, always the floods
of hostile reviews (a top-level array of millions of values, 40 000 containers), whatever strings hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.admission.review import ReviewError, parse_review
from exporter.jsondoc import JsonLimits, bounds_problem, refuse_value_floods
from tests.support.admission import review_body, workload

SMALL = JsonLimits(max_depth=100, max_values=6, max_string=1000)
# Strings full of what a naive count would take for structure: commas, quotes, backslashes, escapes.
TRICKY_TEXT = st.text(alphabet=',"\\:[]{} a\u00e9\u2028', max_size=12)
DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TRICKY_TEXT, inner, max_size=5),
    max_leaves=30,
)


class RefusedError(Exception):
    pass


def refuse(message: str) -> Exception:
    return RefusedError(message)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(TRICKY_TEXT, DOCUMENTS, max_size=6), st.booleans())
def test_a_refusal_is_never_wrong(document: dict[str, Any], compact: bool) -> None:
    text = json.dumps(document, separators=(",", ":") if compact else None, ensure_ascii=compact)
    try:
        refuse_value_floods(text, SMALL, "doc", refuse)
    except RefusedError as refused:
        assert str(refused) == f"doc: more than {SMALL.max_values} values"
        assert bounds_problem(document, SMALL) == f"more than {SMALL.max_values} values"


def test_commas_inside_strings_do_not_count() -> None:
    annotation = '\\",' * 60_000 + ",\\\\"  # escaped quotes and backslashes among the commas
    document = {"kind": "AdmissionReview", "note": annotation}
    refuse_value_floods(json.dumps(document), JsonLimits(max_values=50_000), "body", refuse)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param('{"a": [' + "0," * 50_000 + "0]}", "body: more than 50000 values", id="numbers"),
        pytest.param(' \n{"a": [' + '"x",' * 50_000 + '"x"]}', "body: more than 50000 values", id="strings"),
        pytest.param("[" + "0," * 50_000 + "0]", "body is not a JSON object", id="top-level array"),
    ],
)
def test_floods_are_refused(text: str, problem: str) -> None:
    with pytest.raises(RefusedError, match=problem):
        refuse_value_floods(text, JsonLimits(max_values=50_000), "body", refuse)


def test_a_review_with_40000_containers_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pod = workload("Pod", "p", "prod", "a:b")
    pod["spec"]["containers"] = [{"name": f"c{i}", "image": "a:b"} for i in range(40_000)]
    body = review_body(pod)

    def no_decoding(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the body was decoded")

    monkeypatch.setattr(json, "loads", no_decoding)
    with pytest.raises(ReviewError, match="more than 50000 values"):
        parse_review(body)
