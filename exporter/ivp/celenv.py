"""The CEL environment of ImageValidatingPolicies: compile once at load, evaluate with bounded cost.

Built on ``cel-expr-python`` (the bindings of Google's cel-cpp, the reference implementation family of
Kubernetes' cel-go): expressions are parsed *and type-checked* at load, so ``1 + 'a'`` is a load error with
its column, like Kubernetes reports it. The environment has the optional syntax (``?.``, ``orValue``), the
strings and bindings extensions, Kyverno's ``image(...)`` library and its image verification functions.

Cost: cel-cpp stops every evaluation after 9,999 comprehension iterations (``Iteration budget exceeded``),
and :func:`bounded_data` refuses objects whose lists are longer than :data:`MAX_LIST_ITEMS`, which bounds
what a comprehension can build per iteration. Evaluation holds the GIL (a worker thread would not free the
event loop), so these bounds are what keeps a hostile expression short. See ``docs/cel.md``.

Verification functions read the outcomes of the current evaluation from :data:`CURRENT_VERIFICATIONS`:
the engine verifies every (image, attestor) pair a policy can ask about *before* evaluating, so the CEL
functions only look results up and never wait on I/O.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

from exporter.registry.reference import InvalidReferenceError, parse_reference

MAX_LIST_ITEMS = 512
MAX_EXPRESSION_LENGTH = 5000

ExpressionKind = Literal["bool", "string", "string_list", "any"]

_T = cel.Type
_IMAGE = _T.Map(_T.STRING, _T.STRING)
# attestations.<name>: {"name": ..., "type": ...}; declared as a map so run-time dispatch finds the overloads.
_ATTESTATION = _T.Map(_T.STRING, _T.STRING)
_ERROR_POSITION = re.compile(r"<input>:(?P<line>\d+):(?P<column>\d+): (?P<message>[^\n]*)")


class CelCompileError(ValueError):
    """An expression that does not parse or type-check; ``column`` is 1-based (None when unknown)."""

    def __init__(self, problem: str, column: int | None = None, line: int | None = None) -> None:
        where = ""
        if column is not None:
            where = f"line {line}, column {column}: " if line and line > 1 else f"column {column}: "
        super().__init__(f"{where}{problem}")
        self.column = column
        self.line = line
        self.problem = problem


class CelEvaluationError(Exception):
    """An expression that failed at run time (missing key, wrong type, cost limit, verification error)."""


class Verifications(Protocol):
    """What the verification functions of one evaluation ask (see :mod:`exporter.ivp.evaluate`)."""

    def verified_signatures(self, image: str, attestors: Sequence[str]) -> int: ...

    def verified_attestations(self, image: str, attestation: str, attestors: Sequence[str]) -> int: ...

    def payload(self, image: str, attestation: str) -> Any: ...


CURRENT_VERIFICATIONS: contextvars.ContextVar[Verifications | None] = contextvars.ContextVar(
    "CURRENT_VERIFICATIONS", default=None
)


def _names(values: Sequence[Any], what: str) -> list[str]:
    names: list[str] = []
    for value in values:
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise CelEvaluationError(f"expected {what}.<name> values")
        names.append(value["name"])
    return names


def _current(function: str) -> Verifications:
    verifications = CURRENT_VERIFICATIONS.get()
    if verifications is None:
        raise CelEvaluationError(f"{function} is only available in variables and validations")
    return verifications


def _verify_image_signatures(image: str, attestors: Sequence[Any]) -> int:
    return _current("verifyImageSignatures").verified_signatures(image, _names(attestors, "attestors"))


def _verify_attestation_signatures(image: str, attestation: Any, attestors: Sequence[Any]) -> int:
    [name] = _names([attestation], "attestations")
    verifications = _current("verifyAttestationSignatures")
    return verifications.verified_attestations(image, name, _names(attestors, "attestors"))


def _extract_payload(image: str, attestation: Any) -> Any:
    [name] = _names([attestation], "attestations")
    return _current("extractPayload").payload(image, name)


# Policies parse the same few image strings on every request.
_parse_reference = lru_cache(maxsize=4096)(parse_reference)


def parsed_image(text: str) -> dict[str, str]:
    """Kyverno's parsed image as a CEL map: registry, repository, tag, digest, identifier and reference."""
    try:
        reference = _parse_reference(text)
    except InvalidReferenceError as exc:
        raise CelEvaluationError(str(exc)) from None
    tag = reference.tag or ("" if reference.digest else "latest")
    return {
        "registry": reference.registry,
        "repository": reference.repository,
        "tag": tag,
        "digest": reference.digest or "",
        "identifier": reference.digest or tag,
        "reference": text,
    }


def _is_image(text: str) -> bool:
    try:
        _parse_reference(text)
    except InvalidReferenceError:
        return False
    return True


def _member(name: str, result: Any, impl: Callable[[Mapping[str, str]], Any]) -> Any:
    return cel.FunctionDecl(
        name, [cel.Overload(f"image_{name}", result, [_IMAGE], is_member=True, impl=impl)]
    )


def _functions() -> list[Any]:
    return [
        cel.FunctionDecl(
            "verifyImageSignatures",
            [
                cel.Overload(
                    "verify_image_signatures_string_list",
                    _T.INT,
                    [_T.STRING, _T.List(_T.DYN)],
                    impl=_verify_image_signatures,
                )
            ],
        ),
        cel.FunctionDecl(
            "verifyAttestationSignatures",
            [
                cel.Overload(
                    "verify_attestation_signatures_string_dyn_list",
                    _T.INT,
                    [_T.STRING, _ATTESTATION, _T.List(_T.DYN)],
                    impl=_verify_attestation_signatures,
                )
            ],
        ),
        cel.FunctionDecl(
            "extractPayload",
            [
                cel.Overload(
                    "extract_payload_string_attestation",
                    _T.DYN,
                    [_T.STRING, _ATTESTATION],
                    impl=_extract_payload,
                )
            ],
        ),
        cel.FunctionDecl("image", [cel.Overload("image_string", _IMAGE, [_T.STRING], impl=parsed_image)]),
        cel.FunctionDecl("isImage", [cel.Overload("is_image_string", _T.BOOL, [_T.STRING], impl=_is_image)]),
        _member("registry", _T.STRING, lambda image: image["registry"]),
        _member("repository", _T.STRING, lambda image: image["repository"]),
        _member("tag", _T.STRING, lambda image: image["tag"]),
        _member("digest", _T.STRING, lambda image: image["digest"]),
        _member("identifier", _T.STRING, lambda image: image["identifier"]),
        _member("containsDigest", _T.BOOL, lambda image: bool(image["digest"])),
    ]


_VARIABLES: Mapping[str, Any] = {
    "object": _T.DYN,
    "oldObject": _T.DYN,
    "request": _T.DYN,
    "namespaceObject": _T.DYN,
    "variables": _T.DYN,
    "images": _T.Map(_T.STRING, _T.List(_T.STRING)),
    "attestors": _T.Map(_T.STRING, _T.DYN),
    "attestations": _T.Map(_T.STRING, _ATTESTATION),
    # matchImageReferences expressions: the image as written (ref) and parsed (image.registry ...).
    "ref": _T.STRING,
    "image": _IMAGE,
}


def _new_env() -> Any:
    return cel.NewEnv(
        variables=dict(_VARIABLES),
        extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_bindings.ExtBindings()],
        functions=_functions(),
    )


_ENV: Any = None


def _env() -> Any:
    global _ENV  # noqa: PLW0603 - one environment per process, built on first use
    if _ENV is None:
        _ENV = _new_env()
    return _ENV


_EXPECTED: Mapping[ExpressionKind, tuple[Any, ...]] = {
    "bool": (_T.BOOL,),
    "string": (_T.STRING,),
    "string_list": (_T.List(_T.STRING), _T.List(_T.DYN)),
    "any": (),
}
_DESCRIBED: Mapping[ExpressionKind, str] = {
    "bool": "a bool",
    "string": "a string",
    "string_list": "a list of strings",
    "any": "a value",
}


@dataclass(frozen=True, eq=False)
class CompiledExpression:
    """One compiled, type-checked expression and its source; ``expects`` is what it must evaluate to."""

    source: str
    expects: ExpressionKind
    program: Any

    def evaluate(self, activation: Any) -> Any:
        """The result as a plain Python value. Raises :class:`CelEvaluationError` for every run-time failure
        (cel-cpp returns some errors as values and raises others, such as the iteration budget)."""
        try:
            value = self.program.eval(activation)
        except Exception as exc:
            raise CelEvaluationError(_clean(str(exc))) from None
        if value.type() == _T.ERROR:
            raise CelEvaluationError(_clean(str(value.value())))
        result = value.plain_value()
        _check_result(result, self.expects)
        return result


def _clean(message: str) -> str:
    """cel-cpp's status text without its code prefix/suffix (``UNKNOWN: ... [INTERNAL]``)."""
    message = re.sub(r"^[A-Z_]+: ", "", message.strip())
    return re.sub(r" \[[A-Z_]+\]$", "", message)


def _check_result(result: Any, expects: ExpressionKind) -> None:
    ok = {
        "bool": isinstance(result, bool),
        "string": isinstance(result, str),
        "string_list": isinstance(result, list) and all(isinstance(item, str) for item in result),
        "any": True,
    }[expects]
    if not ok:
        raise CelEvaluationError(f"expected {_DESCRIBED[expects]}, got {type(result).__name__}")


def compile_expression(source: str, expects: ExpressionKind) -> CompiledExpression:
    """Parse and type-check ``source``. Raises :class:`CelCompileError` with the column of the problem."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise CelCompileError(f"longer than {MAX_EXPRESSION_LENGTH} characters; split it into variables")
    try:
        program = _env().compile(source)
    except Exception as exc:
        found = _ERROR_POSITION.search(str(exc))
        if found is None:
            raise CelCompileError(_clean(str(exc))) from None
        raise CelCompileError(found["message"], int(found["column"]), int(found["line"])) from None
    returned = program.return_type()
    allowed = _EXPECTED[expects]
    if allowed and returned != _T.DYN and not any(t == returned for t in allowed):
        raise CelCompileError(f"must evaluate to {_DESCRIBED[expects]}, but its type is {returned.name()}")
    return CompiledExpression(source, expects, program)


def activation(data: Mapping[str, Any]) -> Any:
    """An activation (the variables of one evaluation) shared by the expressions that read them."""
    return _env().Activation(data=dict(data))


def bounded_data(value: Any, *, path: str = "object") -> None:
    """Raise :class:`CelEvaluationError` when a list in ``value`` exceeds :data:`MAX_LIST_ITEMS`.

    cel-cpp builds ``map``/``filter`` results by copying, so a comprehension over a list of n items costs
    n² copies: bounding the lists bounds the cost together with the iteration budget. Runs on every
    evaluated request, so the walk builds no paths; the path is found only for the error message.
    """
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            if len(node) > MAX_LIST_ITEMS:
                where = _path_to(value, node, path) or path
                raise CelEvaluationError(
                    f"{where} has {len(node)} items, more than the {MAX_LIST_ITEMS} CEL evaluation accepts"
                )
            stack.extend(node)


def _path_to(value: Any, target: Any, path: str) -> str | None:
    """The path of ``target`` (by identity) inside ``value``, for messages."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if node is target:
            return where
        if isinstance(node, Mapping):
            stack.extend((item, f"{where}.{key}") for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))
    return None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(sources: Sequence[str]) -> frozenset[str]:
    """Every identifier in the expressions: an over-approximation of the variables they read and the
    functions they call, so a request's data need not convert (and bound) objects nothing reads, and
    nothing is verified that no function asks about."""
    return frozenset(match.group() for source in sources for match in _IDENTIFIER.finditer(source))
