"""Evaluate one ImageValidatingPolicy on one request: pure, in two halves around the verification I/O.

1. :func:`prepare` runs ``matchConditions``, extracts the images (Pod containers plus the ``images``
   extractors) and keeps those ``matchImageReferences`` selects: they are what must be verified.
2. the caller verifies every (matched image, attestor) pair, concurrently and cached;
3. :func:`conclude` evaluates ``variables`` and ``validations`` with those outcomes, so
   ``verifyImageSignatures`` only looks results up.

Outcomes are Kyverno's: ``pass``, ``fail`` (a validation was false, or ``required`` and an image no
verification function verified), ``error`` (a run-time error, the cost bound, a verification that could not
finish), ``skip`` (no image matched). Nothing here raises for a policy or a request.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from exporter.ivp.celenv import (
    CURRENT_VERIFICATIONS,
    CelEvaluationError,
    activation,
    bounded_data,
    parsed_image,
)
from exporter.ivp.match import Applicable
from exporter.ivp.model import ImageMatcher, ImageValidatingPolicy
from exporter.policy.images import extract_images, normalize_image
from exporter.policy.wildcard import wildcard_match

Status = Literal["pass", "fail", "error", "skip"]
PASSED = "success"
NO_IMAGES = "no image of the resource matches matchImageReferences"


@dataclass(frozen=True)
class MatchedImage:
    """An image the policy checks: as written, Kyverno's normalised form, and the JSON pointer to it
    (None for images found by ``images`` extractors, which are not patched)."""

    image: str
    reference: str
    pointer: str | None


@dataclass(frozen=True)
class SignatureOutcome:
    """Whether an attestor verified an image's signatures (or its attestations of one type); ``digest``
    once resolved; ``predicates``: the predicates of the verified statements (attestations)."""

    status: Literal["pass", "fail", "error"]
    message: str
    digest: str | None = None
    predicates: tuple[Any, ...] = ()


# (image reference, attestor) for signatures; (image reference, attestor, attestation) for attestations.
VerificationKey = tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """The policy's result on the request."""

    status: Status
    message: str


@dataclass(frozen=True)
class Prepared:
    """A policy that applies to the request, with the images to verify; ``outcome`` is set when the result
    is already known (an error or a skip) and no verification is needed."""

    policy: ImageValidatingPolicy
    rule: str
    images: tuple[MatchedImage, ...]
    data: Mapping[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None


def _view(obj: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    """The object the expressions see: the object itself, or for autogen its Pod template as a Pod."""
    if obj is None or not path:
        return obj
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    template = node if isinstance(node, Mapping) else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata") or {},
            "spec": template.get("spec") or {}}  # fmt: skip


def _image_lists(obj: Mapping[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    lists: dict[str, list[tuple[str, str | None]]] = {
        "containers": [],
        "initContainers": [],
        "ephemeralContainers": [],
    }
    for found in extract_images(obj):
        lists[found.field].append((found.image, found.pointer))
    return lists


def _matches(matchers: Sequence[ImageMatcher], image: str, reference: str) -> bool:
    if not matchers:
        return True
    for matcher in matchers:
        if matcher.glob is not None and wildcard_match(matcher.glob, reference):
            return True
        if matcher.expression is not None:
            variables = activation({"ref": image, "image": parsed_image(image)})
            if matcher.expression.evaluate(variables):
                return True
    return False


def _error(policy: ImageValidatingPolicy, rule: str, message: str) -> Prepared:
    return Prepared(policy, rule, (), outcome=Outcome("error", message))


def prepare(
    policy: ImageValidatingPolicy,
    applies: Applicable,
    obj: Mapping[str, Any],
    old_obj: Mapping[str, Any] | None,
    *,
    request: Mapping[str, Any],
    namespace_object: Mapping[str, Any] | None,
) -> Prepared | None:
    """Step 1 (see the module docstring); None when a ``matchCondition`` is false."""
    rule = applies.rule
    if applies.labels_unknown:
        message = (
            f"the labels of namespace {request.get('namespace', '')} are not loaded yet, and whether this "
            "policy applies depends on them (namespaceSelector); failurePolicy decides"
        )
        return _error(policy, rule, message)
    reads = policy.identifiers
    data: dict[str, Any] = {
        "attestors": {attestor.name: {"name": attestor.name} for attestor in policy.attestors},
        "attestations": {
            attestation.name: {"name": attestation.name, "type": attestation.predicate_type}
            for attestation in policy.attestations
        },
    }
    # Only what the expressions read is handed to CEL (converting an object costs more than evaluating).
    try:
        if "object" in reads:
            data["object"] = _view(obj, applies.pod_template)
            bounded_data(data["object"])
        if "oldObject" in reads:
            data["oldObject"] = _view(old_obj, applies.pod_template)
            bounded_data(data["oldObject"], path="oldObject")
    except CelEvaluationError as exc:
        return _error(policy, rule, str(exc))
    if "request" in reads:
        data["request"] = dict(request)
    if "namespaceObject" in reads:
        data["namespaceObject"] = namespace_object
    for condition in policy.match_conditions:
        try:
            if not condition.expression.evaluate(activation(data)):
                return None
        except CelEvaluationError as exc:
            return _error(policy, rule, f"matchConditions.{condition.name}: {exc}")
    lists = _image_lists(obj)
    try:
        for extractor in policy.image_extractors:
            lists[extractor.name] = [
                (image, None) for image in extractor.expression.evaluate(activation(data))
            ]
    except CelEvaluationError as exc:
        return _error(policy, rule, f"images.{extractor.name}: {exc}")
    data["images"] = {name: [image for image, _ in entries] for name, entries in lists.items()}
    matched: dict[str, MatchedImage] = {}
    for entries in lists.values():
        for image, pointer in entries:
            try:
                reference = normalize_image(image)
                selected = _matches(policy.match_image_references, image, reference)
            except (ValueError, CelEvaluationError) as exc:
                return _error(policy, rule, f"image {image}: {exc}")
            if selected:
                matched.setdefault(pointer or f"extracted:{image}", MatchedImage(image, reference, pointer))
    if not matched:
        return Prepared(policy, rule, (), outcome=Outcome("skip", NO_IMAGES))
    return Prepared(policy, rule, tuple(matched.values()), data)


class _Lookups:
    """The verification outcomes of one evaluation, as the verification functions read them."""

    def __init__(self, prepared: Prepared, outcomes: Mapping[VerificationKey, SignatureOutcome]) -> None:
        self._by_image = {image.image: image.reference for image in prepared.images}
        self._references = set(self._by_image.values())
        self._outcomes = outcomes
        self._attestors = {attestor.name for attestor in prepared.policy.attestors}
        self._attestations = {attestation.name for attestation in prepared.policy.attestations}
        self.verified: set[str] = set()

    def _reference(self, image: str) -> str | None:
        """The normalised reference of a matched image; None for an image matchImageReferences skips."""
        reference = self._by_image.get(image)
        if reference is None:
            try:
                reference = normalize_image(image)
            except ValueError as exc:
                raise CelEvaluationError(str(exc)) from None
        return reference if reference in self._references else None

    def _count(self, keys: Sequence[VerificationKey]) -> int:
        count = 0
        for key in keys:
            outcome = self._outcomes.get(key)
            if outcome is None:
                raise CelEvaluationError(f"no verification of {key[0]} by attestor {key[1]!r} was run")
            if outcome.status == "error":
                raise CelEvaluationError(outcome.message)
            count += outcome.status == "pass"
        if count:
            self.verified.add(keys[0][0])
        return count

    def _check(self, attestors: Sequence[str], attestation: str | None = None) -> None:
        for name in attestors:
            if name not in self._attestors:
                raise CelEvaluationError(f"unknown attestor {name!r}")
        if attestation is not None and attestation not in self._attestations:
            raise CelEvaluationError(f"unknown attestation {attestation!r}")

    def verified_signatures(self, image: str, attestors: Sequence[str]) -> int:
        self._check(attestors)
        reference = self._reference(image)
        if reference is None:
            return len(attestors)  # images matchImageReferences skips count as verified, as in Kyverno
        return self._count([(reference, name) for name in attestors]) if attestors else 0

    def verified_attestations(self, image: str, attestation: str, attestors: Sequence[str]) -> int:
        self._check(attestors, attestation)
        reference = self._reference(image)
        if reference is None:
            return len(attestors)
        return self._count([(reference, name, attestation) for name in attestors]) if attestors else 0

    def payload(self, image: str, attestation: str) -> Any:
        """The predicate of a statement of ``attestation``'s type that an attestor of the policy verified."""
        self._check((), attestation)
        reference = self._reference(image)
        if reference is None:
            raise CelEvaluationError(f"image {image} is not matched by matchImageReferences")
        for attestor in sorted(self._attestors):
            outcome = self._outcomes.get((reference, attestor, attestation))
            if outcome is not None and outcome.status == "error":
                raise CelEvaluationError(outcome.message)
            if outcome is not None and outcome.status == "pass" and outcome.predicates:
                return outcome.predicates[0]
        raise CelEvaluationError(f"no verified {attestation} attestation for {reference}")


def _failure_message(prepared: Prepared, index: int, variables: Any) -> str:
    validation = prepared.policy.validations[index]
    if validation.message_expression is not None:
        try:
            text = validation.message_expression.evaluate(variables)
        except CelEvaluationError:
            text = ""
        if text.strip():
            return str(text).strip()
    return validation.message or f"failed expression: {validation.expression.source}"


# What an evaluation may read besides images, attestors and verification outcomes.
_REQUEST_DATA = frozenset({"object", "oldObject", "request", "namespaceObject"})


def conclusion_key(
    prepared: Prepared, outcomes: Mapping[VerificationKey, SignatureOutcome]
) -> Hashable | None:
    """A key under which :func:`conclude`'s result may be reused, or None when it may not.

    A policy whose expressions read neither the object nor the request is a pure function of its version,
    the request's image lists and the verification outcomes: the warm path then needs no CEL at all.
    """
    if prepared.outcome is not None or prepared.policy.identifiers & _REQUEST_DATA:
        return None
    images = tuple((name, tuple(values)) for name, values in prepared.data["images"].items())
    # Predicates are fixed by (policy version, digest, attestor, attestation): the digest stands for them.
    verdicts = tuple(sorted((key, o.status, o.message, o.digest) for key, o in outcomes.items()))
    return (prepared.policy.version, prepared.rule, images, verdicts)


def conclude(prepared: Prepared, outcomes: Mapping[VerificationKey, SignatureOutcome]) -> Outcome:
    """Step 3: the policy's outcome given every (reference, attestor) outcome of its matched images."""
    if prepared.outcome is not None:
        return prepared.outcome
    lookups = _Lookups(prepared, outcomes)
    token = CURRENT_VERIFICATIONS.set(lookups)
    try:
        return _validate(prepared, lookups)
    finally:
        CURRENT_VERIFICATIONS.reset(token)


def _validate(prepared: Prepared, lookups: _Lookups) -> Outcome:
    data = dict(prepared.data)
    values: dict[str, Any] = {}
    data["variables"] = values
    try:
        for variable in prepared.policy.variables:
            values[variable.name] = variable.expression.evaluate(activation(data))
    except CelEvaluationError as exc:
        return Outcome("error", f"variables.{variable.name}: {exc}")
    variables = activation(data)
    for index, validation in enumerate(prepared.policy.validations):
        try:
            passed = validation.expression.evaluate(variables)
        except CelEvaluationError as exc:
            return Outcome("error", f"validations[{index}]: {exc}")
        if not passed:
            return Outcome("fail", _failure_message(prepared, index, variables))
    if prepared.policy.required:
        unverified = [image.reference for image in prepared.images if image.reference not in lookups.verified]
        if unverified:
            listed = ", ".join(dict.fromkeys(unverified))
            return Outcome("fail", f"image {listed} not verified: no validation verified its signatures")
    return Outcome("pass", PASSED)
