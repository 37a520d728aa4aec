"""What a ClusterPolicy ``attestations[]`` entry concludes from the statements an attestor verified, in
Kyverno's words (no I/O): every verified statement of the type must meet the conditions.

The messages follow Kyverno's image verifier: ``attestations not found for predicate type <type>``,
``attestation checks failed for <image> and predicate <type>: <failed conditions' messages>``, and
``failed to check attestations: …`` when a condition cannot be evaluated over a predicate (a variable that
names nothing, a predicate that is no JSON object).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exporter.cosign import VerifiedStatement
from exporter.policy.conditions import evaluate
from exporter.policy.expressions import ExpressionError
from exporter.policy.model import AttestationCheck

NO_MATCHING_ATTESTATIONS = "no matching attestations"


def attestations_not_found(predicate_type: str) -> str:
    """Why an attestation check fails when the image has no statement of the type at all."""
    return f"attestations not found for predicate type {predicate_type}"


def attestation_problem(
    check: AttestationCheck, statements: Sequence[VerifiedStatement], image: str
) -> str | None:
    """None when every statement's predicate meets ``check.conditions``; else why not."""
    if not statements:
        return attestations_not_found(check.predicate_type)
    if not check.conditions:
        return None
    for statement in statements:
        predicate = statement.predicate
        if not isinstance(predicate, Mapping):
            kind = "a list" if isinstance(predicate, list) else type(predicate).__name__
            return (
                "failed to check attestations: failed to extract predicate from statement: the predicate "
                f"is {kind}, not a JSON object"
            )
        try:
            verdict = evaluate(check.conditions, predicate)
        except ExpressionError as exc:
            return (
                "failed to check attestations: failed to substitute variables in attestation conditions: "
                f"{exc}"
            )
        if not verdict.passed:
            return (
                f"attestation checks failed for {image} and predicate {check.predicate_type}: "
                f"{verdict.message}"
            )
    return None
