"""ClusterPolicy ``verifyImages[].attestations[]``: loading (types, attestors, compiled conditions) and the
verdict over attestations signed with real keys, decided offline (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.admission.verifier import judge
from exporter.cosign.found import FoundArtifact, FoundArtifacts
from exporter.policy.model import ImageVerification
from exporter.registry.reference import parse_reference
from tests.support.artifacts import att_layer, found, sig_layer, statement
from tests.support.registry import PrivateKey, generate_signing_key, public_pem
from tests.test_policy_builders import load, load_error, policy, rule, verification

DIGEST = "sha256:" + "34" * 32
IMAGE = "ghcr.io/acme/app:v1"
PINNED = f"ghcr.io/acme/app@{DIGEST}"
SLSA = "https://slsa.dev/provenance/v0.2"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
SIGNER, OTHER = generate_signing_key(), generate_signing_key()
BUILDER = {"builder": {"id": "https://github.com/acme/builder@v1"}, "buildType": "tekton"}


def attestors(key: PrivateKey = SIGNER) -> list[dict[str, Any]]:
    return [{"entries": [{"keys": {"publicKeys": public_pem(key)}}]}]


def checking(*attestations: dict[str, Any], signatures: bool = True) -> ImageVerification:
    fields: dict[str, Any] = {"attestations": list(attestations)}
    entry = verification(**fields, attestors=attestors()) if signatures else verification(**fields)
    if not signatures:
        entry.pop("attestors")
    (parsed,) = load(policy(rule(verifyImages=[entry]))).rules[0].verify_images
    return parsed


def builder_is(pattern: str, **extra: Any) -> dict[str, Any]:
    condition = {"key": "{{ builder.id }}", "operator": "Equals", "value": pattern, **extra}
    return {"type": SLSA, "attestors": attestors(), "conditions": [{"all": [condition]}]}


def image(*layers: FoundArtifact, signed: bool = True) -> FoundArtifacts:
    signature = (sig_layer(SIGNER, DIGEST, "ghcr.io/acme/app"),) if signed else ()
    return found(parse_reference(IMAGE).with_digest(DIGEST), DIGEST, *signature, *layers)


def attested(predicate: Any, predicate_type: str = SLSA, key: PrivateKey = SIGNER) -> FoundArtifact:
    return att_layer(key, statement(DIGEST, predicate_type, predicate))


def test_a_condition_on_the_builder_admits_the_trusted_builder_and_refuses_another() -> None:
    check = checking(builder_is("https://github.com/acme/*"))
    assert judge(image(attested(BUILDER)), check, IMAGE).status == "pass"
    other = {"builder": {"id": "https://evil.example/builder"}}
    outcome = judge(image(attested(other)), check, IMAGE)
    assert outcome.status == "fail"
    assert outcome.message == (
        f"failed to verify image {IMAGE}: .attestations[0].attestors[0].entries[0].keys: attestation checks "
        f"failed for {PINNED} and predicate {SLSA}: {{{{ builder.id }}}} Equals https://github.com/acme/*"
    )


def test_the_conditions_own_message_is_what_a_failure_says() -> None:
    check = checking(builder_is("https://github.com/acme/*", message="only acme's builder may build"))
    outcome = judge(image(attested({"builder": {"id": "x"}})), check, IMAGE)
    assert outcome.message.endswith(f"and predicate {SLSA}: only acme's builder may build")


def test_every_verified_statement_of_the_type_must_meet_the_conditions() -> None:
    check = checking(builder_is("https://github.com/acme/*"))
    second = attested({"builder": {"id": "https://evil.example/builder"}})
    assert judge(image(attested(BUILDER), second), check, IMAGE).status == "fail"


def test_a_missing_attestation_fails_as_kyverno_says() -> None:
    outcome = judge(image(attested(BUILDER, VULN)), checking(builder_is("*")), IMAGE)
    assert outcome.status == "fail"
    assert outcome.message.endswith(
        f".attestations[0].attestors[0].entries[0].keys: attestations not found for predicate type {SLSA}"
    )


def test_an_attestation_signed_by_another_key_does_not_count() -> None:
    outcome = judge(image(attested(BUILDER, key=OTHER)), checking(builder_is("*")), IMAGE)
    assert outcome.status == "fail"
    assert ".attestations[0].attestors[0].entries[0].keys: no matching attestations:" in outcome.message


def test_attestations_are_checked_only_once_the_signatures_verify() -> None:
    outcome = judge(image(attested(BUILDER), signed=False), checking(builder_is("*")), IMAGE)
    assert outcome.status == "fail"
    assert ".attestors[0].entries[0].keys: no matching signatures" in outcome.message
    assert ".attestations" not in outcome.message


def test_attestations_alone_need_no_image_signature() -> None:
    check = checking(builder_is("https://github.com/acme/*"), signatures=False)
    assert judge(image(attested(BUILDER), signed=False), check, IMAGE).status == "pass"


def test_a_key_naming_nothing_in_the_predicate_is_a_clear_failure() -> None:
    check = checking(builder_is("*") | {"conditions": [{"all": [{"key": "{{ builder.idx }}", "operator":
                                                                  "Equals", "value": "x"}]}]})  # fmt: skip
    outcome = judge(image(attested(BUILDER)), check, IMAGE)
    assert outcome.status == "fail"
    assert outcome.message.endswith(
        "failed to check attestations: failed to substitute variables in attestation conditions: "
        'Unknown key "idx" in path'
    )


def test_a_predicate_that_is_no_json_object_is_a_clear_failure() -> None:
    outcome = judge(image(attested(["not", "an", "object"])), checking(builder_is("*")), IMAGE)
    assert outcome.status == "fail"
    assert "failed to extract predicate from statement: the predicate is a list, not a JSON object" in (
        outcome.message
    )


def test_without_conditions_a_verified_attestation_of_the_type_suffices() -> None:
    check = checking({"type": "slsaprovenance", "attestors": attestors()})
    assert judge(image(attested({"anything": 1})), check, IMAGE).status == "pass"


def test_count_of_an_attestations_attestor_set() -> None:
    two = [{"count": 1, "entries": attestors(OTHER)[0]["entries"] + attestors()[0]["entries"]}]
    check = checking({"type": SLSA, "attestors": two})
    assert judge(image(attested(BUILDER)), check, IMAGE).status == "pass"
    both = checking({"type": SLSA, "attestors": [{"entries": two[0]["entries"]}]})
    outcome = judge(image(attested(BUILDER)), both, IMAGE)
    assert (outcome.status, ".attestations[0].attestors[0].entries[0].keys" in outcome.message) == (
        "fail",
        True,
    )


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("vuln", VULN),
        ("custom", "https://cosign.sigstore.dev/attestation/v1"),
        ("https://example.com/mine/v1", "https://example.com/mine/v1"),
    ],
)
def test_types_and_cosign_short_names(name: str, uri: str) -> None:
    assert checking({"type": name, "attestors": attestors()}).attestations[0].predicate_type == uri
    deprecated = checking({"predicateType": name, "attestors": attestors()})
    assert deprecated.attestations[0].predicate_type == uri


def _error(attestation: dict[str, Any]) -> tuple[str | None, str]:
    entry = verification(attestations=[attestation])
    error = load_error(policy(rule(verifyImages=[entry])))
    return error.path, str(error)


PATH = "spec.rules[0].verifyImages[0].attestations[0]"


@pytest.mark.parametrize(
    ("attestation", "path", "words"),
    [
        ({"attestors": attestors()}, f"{PATH}.type", "is required"),
        ({"type": SLSA}, f"{PATH}.attestors", "nobody verified proves nothing"),
        (
            {"type": SLSA, "predicateType": VULN, "attestors": attestors()},
            f"{PATH}.predicateType",
            "differs from type",
        ),
        (
            builder_is("*") | {"conditions": [{"all": [{"key": "{{ builder. }}", "operator": "Equals"}]}]},
            f"{PATH}.conditions[0].all[0].key",
            "invalid JMESPath expression",
        ),
        (
            builder_is("*")
            | {"conditions": [{"any": [{"key": "a", "operator": "Equals", "value": "{{ f(x) }}"}]}]},
            f"{PATH}.conditions[0].any[0].value",
            "unknown function f()",
        ),
        (
            builder_is("*") | {"conditions": [{"all": [{"key": "a", "operator": "Matches", "value": "b"}]}]},
            f"{PATH}.conditions[0].all[0].operator",
            "unsupported value 'Matches'",
        ),
        (
            builder_is("*") | {"conditions": [{"all": [{"operator": "Equals", "value": "b"}]}]},
            f"{PATH}.conditions[0].all[0].key",
            "is required",
        ),
        (builder_is("*") | {"conditions": [{}]}, f"{PATH}.conditions[0]", "needs any or all"),
        (builder_is("*") | {"color": "red"}, f"{PATH}.color", "unknown field"),
    ],
)
def test_load_errors_name_the_field(attestation: dict[str, Any], path: str, words: str) -> None:
    error_path, message = _error(attestation)
    assert error_path == path
    assert words in message


def test_an_attestor_that_cannot_be_used_is_an_error_not_a_failure() -> None:
    unreadable = [{"entries": [{"keys": {"secret": {"name": "cosign", "namespace": "keys"}}}]}]
    check = checking({"type": SLSA, "attestors": unreadable})
    outcome = judge(image(attested(BUILDER)), check, IMAGE)
    assert outcome.status == "error"
    assert ".attestations[0].attestors[0].entries[0].keys: unusable key: the key in Secret keys/cosign" in (
        outcome.message
    )
