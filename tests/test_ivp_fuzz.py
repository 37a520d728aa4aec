"""Hostile ImageValidatingPolicies and requests: whatever the document or the object, loading ends in a
policy or a PolicyLoadError, and evaluation in an outcome; nothing else escapes."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.ivp.evaluate import conclude, prepare
from exporter.ivp.match import applicable
from exporter.policy.loader import PolicyLoadError, parse_policies
from tests.test_ivp_evaluate import outcomes, request_for
from tests.test_ivp_parse import ivp, load_one

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
SPEC_FIELDS = (
    "matchConstraints", "matchConditions", "variables", "failurePolicy", "validationActions",
    "matchImageReferences", "images", "attestors", "attestations", "validations", "validationConfigurations",
    "webhookConfiguration", "evaluation", "autogen",
)  # fmt: skip
EXPRESSIONS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "object.spec.containers.all(c, c.image != '')",
            "object.metadata.?labels.?team.orValue('') == 'a'",
            "images.containers.map(i, image(i).registry()).size() > 0",
            "'a'.split('').size() > int(object.metadata.name)",
            "object.spec.x[0] == object",
        ]
    ),
)


@FUZZ
@given(st.sampled_from(SPEC_FIELDS), JSON)
def test_any_value_of_any_field_loads_or_is_a_load_error(field: str, value: Any) -> None:
    document = ivp()
    document["spec"][field] = value
    try:
        parse_policies(yaml.safe_dump(document), "fuzz.yaml")
    except PolicyLoadError as error:
        assert error.policy == "ImageValidatingPolicy check"


@FUZZ
@given(EXPRESSIONS)
def test_any_expression_compiles_or_is_a_load_error_with_its_field(expression: str) -> None:
    document = ivp(validations=[{"expression": expression}])
    try:
        parse_policies(yaml.safe_dump(document), "fuzz.yaml")
    except PolicyLoadError as error:
        assert error.path == "spec.validations[0].expression"


@FUZZ
@given(JSON, JSON)
def test_any_object_evaluates_to_an_outcome(spec: Any, labels: Any) -> None:
    policy = load_one(
        ivp(
            validations=[
                {
                    "expression": "object.spec.containers.all(c, "
                    "verifyImageSignatures(c.image, [attestors.key]) > 0)"
                },
                {"expression": "object.metadata.?labels.?team.orValue('x') != ''"},
            ]
        )
    )
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "dev"}}
    obj["spec"] = copy.deepcopy(spec)
    if isinstance(labels, dict):
        obj["metadata"]["labels"] = labels
    applies = applicable(policy, request_for(obj), obj)
    if applies is None:
        return
    prepared = prepare(policy, applies, obj, None, request={}, namespace_object=None)
    if prepared is None:
        return
    result = conclude(prepared, outcomes(policy, {}))
    assert result.status in ("pass", "fail", "error", "skip")
