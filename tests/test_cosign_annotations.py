"""Signature annotations (cosign ``sign -a``/``verify -a``, Kyverno ``annotations``): every required pair
must be in the verified simple-signing payload's ``optional`` section, else that signature does not count.
Through a real docker-registry with signatures of the test Sigstore, and through both policy parsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.cosign import (
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    VerificationOptions,
    Verified,
    load_public_key,
    verify_attestations,
    verify_image,
)
from exporter.cosign.checks import annotation_problem
from exporter.cosign.formats.simple_signing import parse_payload
from exporter.policy.model import CertificateEntry, KeyEntry
from exporter.registry import RegistryClient, RegistryOptions, parse_reference
from exporter.sigstore import load_trusted_root
from tests.support.oci_push import attach_referrer, push_att
from tests.support.registry import (
    RegistryServer,
    SignatureLayerSpec,
    needs_registry,
    public_pem,
    simple_signing_payload,
)
from tests.support.sigstore_box import GITHUB_ISSUER, SLSA_PROVENANCE_V02, Identity, SigstoreBox
from tests.test_ivp_parse import ivp, load_error, load_one
from tests.test_policy_builders import load, policy, rule, verification
from tests.test_policy_builders import load_error as policy_load_error

SIGNER = ec.generate_private_key(ec.SECP256R1())
SIGNER_PEM = public_pem(SIGNER)
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
IDENTITY = Identity(WORKFLOW, GITHUB_ISSUER)
DIGEST = "sha256:" + "ab" * 32


# --- the check itself (pure) ---


def test_payload_optional_strings_become_annotations() -> None:
    payload = parse_payload(simple_signing_payload(DIGEST, "r/x", {"env": "prod", "build": 7, "a": "1"}))
    assert payload.annotations == (("a", "1"), ("env", "prod"))  # 7 is no string: no key=value equals it
    assert parse_payload(simple_signing_payload(DIGEST, "r/x")).annotations == ()


def test_every_required_pair_must_be_present_and_equal() -> None:
    payload = parse_payload(simple_signing_payload(DIGEST, "r/x", {"env": "prod", "team": "a", "n": 7}))
    assert annotation_problem(payload, (("env", "prod"),)) is None
    assert annotation_problem(payload, (("env", "prod"), ("team", "a"))) is None
    wrong = annotation_problem(payload, (("env", "dev"), ("team", "a")))
    assert wrong is not None and wrong.startswith("missing or incorrect annotation env=dev ")
    assert "signed annotations: env=prod, team=a" in wrong
    missing = annotation_problem(payload, (("owner", "me"),))
    assert missing is not None and "owner=me" in missing
    assert annotation_problem(payload, (("n", "7"),)) is not None
    bundle = annotation_problem("sha256:" + "00" * 32, (("env", "prod"),))
    assert bundle is not None and "bundle signature carries no annotations" in bundle


# --- through the registry ---


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("annotations-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def box_root(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


def _registry_test(test: Any) -> Any:
    """Registry-backed tests: skipped, as in the other registry suites, when docker-registry is absent."""
    for mark in needs_registry:
        test = mark(test)
    return test


def _key(**annotations: str) -> VerificationOptions:
    attestor = KeyAttestor(name="release-key", keys=(load_public_key(SIGNER_PEM, "release-key"),))
    return VerificationOptions(attestors=(attestor,), annotations=tuple(sorted(annotations.items())))


def _keyless(root: Path, **annotations: str) -> VerificationOptions:
    identity = IdentityPolicy(subject=WORKFLOW, issuer=GITHUB_ISSUER)
    return VerificationOptions(
        attestors=(KeylessAttestor(name="release", identities=(identity,)),),
        trusted_root=load_trusted_root(root),
        annotations=tuple(sorted(annotations.items())),
    )


async def _outcomes(registry: RegistryServer, image: str, *options: VerificationOptions) -> list[Any]:
    async with RegistryClient(RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        reference = parse_reference(f"{registry.host}/{image}")
        return [await verify_image(client, reference, option) for option in options]


@_registry_test
async def test_key_and_keyless_signatures_count_only_with_the_annotations(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    digest = registry.push_image("ann/app", "v1")
    where = f"{registry.host}/ann/app"
    keyed = sigstore_box.legacy_signature(digest, where, SIGNER, optional={"env": "prod", "team": "a"})
    keyless = sigstore_box.legacy_signature(digest, where, IDENTITY, optional={"env": "staging"})
    registry.push_signature_layers("ann/app", digest, [keyed.layer, keyless.layer])
    ok, two, wrong, absent = await _outcomes(
        registry, "ann/app:v1", _key(env="prod"), _key(env="prod", team="a"), _key(env="dev"), _key(x="y")
    )
    assert isinstance(ok, Verified) and isinstance(two, Verified), (ok, two)
    assert [s.format for s in ok.signatures] == ["simple-signing"]
    for outcome, pair in ((wrong, "env=dev"), (absent, "x=y")):
        assert isinstance(outcome, Invalid), outcome
        assert f"signed by release-key but missing or incorrect annotation {pair}" in outcome.reason
    keyless_ok, keyless_wrong, keyless_plain = await _outcomes(
        registry,
        "ann/app:v1",
        _keyless(box_root, env="staging"),
        _keyless(box_root, env="prod"),
        _keyless(box_root),
    )
    assert isinstance(keyless_ok, Verified), keyless_ok.reason
    assert isinstance(keyless_plain, Verified), keyless_plain.reason
    assert isinstance(keyless_wrong, Invalid)
    expected = "missing or incorrect annotation env=prod (signed annotations: env=staging)"
    assert expected in keyless_wrong.reason


@_registry_test
async def test_a_bundle_signature_has_no_annotations_to_match(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    digest = registry.push_image("ann/bundle", "v1")
    signed = sigstore_box.image_bundle(digest, IDENTITY)
    layers = [SignatureLayerSpec(signed.json, {}, signed.media_type)]
    attach_referrer(registry, "ann/bundle", digest, signed.media_type, layers)
    plain, required = await _outcomes(
        registry, "ann/bundle:v1", _keyless(box_root), _keyless(box_root, a="b")
    )
    assert isinstance(plain, Verified), plain.reason
    assert isinstance(required, Invalid)
    assert "a Sigstore bundle signature carries no annotations" in required.reason


@_registry_test
async def test_attestations_are_not_checked_against_annotations(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    digest = registry.push_image("ann/attested", "v1")
    attestation = sigstore_box.legacy_attestation(
        digest, f"{registry.host}/ann/attested", IDENTITY, predicate={"builder": {"id": "ci"}}
    )
    push_att(registry, "ann/attested", digest, [attestation.layer])
    async with RegistryClient(RegistryOptions(insecure_registries=frozenset({registry.host}))) as client:
        reference = parse_reference(f"{registry.host}/ann/attested:v1")
        outcome = await verify_attestations(client, reference, _keyless(box_root, a="b"), SLSA_PROVENANCE_V02)
    assert isinstance(outcome, Verified), outcome.reason


# --- policies ---


def test_cluster_policy_annotations_reach_every_entry_and_an_entry_adds_its_own() -> None:
    keyless = {"keyless": {"subject": "me@example.com", "issuer": "https://accounts.google.com"}}
    entries = [
        {"keys": {"publicKeys": SIGNER_PEM}, "annotations": {"team": "a", "env": "override"}},
        keyless,
    ]
    document = policy(
        rule(verifyImages=[verification(annotations={"env": "prod"}, attestors=[{"entries": entries}])])
    )
    key_entry, keyless_entry = load(document).rules[0].verify_images[0].attestors[0].entries
    assert isinstance(key_entry, KeyEntry) and isinstance(keyless_entry, CertificateEntry)
    assert key_entry.annotations == (("env", "override"), ("team", "a"))
    assert keyless_entry.options.annotations == (("env", "prod"),)


def test_cluster_policy_legacy_key_takes_the_annotations() -> None:
    legacy = {"image": "*", "key": SIGNER_PEM, "annotations": {"env": "prod"}}
    [entry] = load(policy(rule(verifyImages=[legacy]))).rules[0].verify_images[0].attestors[0].entries
    assert isinstance(entry, KeyEntry) and entry.annotations == (("env", "prod"),)


def test_cluster_policy_attestation_attestors_refuse_annotations() -> None:
    attestors = [{"entries": [{"keys": {"publicKeys": SIGNER_PEM}, "annotations": {"a": "b"}}]}]
    check = {"type": "https://slsa.dev/provenance/v0.2", "attestors": attestors}
    error = policy_load_error(policy(rule(verifyImages=[verification(attestations=[check])])))
    assert error.path == "spec.rules[0].verifyImages[0].attestations[0].attestors[0].entries[0].annotations"
    assert "image signatures only" in error.problem


def test_image_validating_policy_annotations_are_the_attestors_options() -> None:
    document = ivp()
    document["spec"]["attestors"][0]["cosign"]["annotations"] = {"env": "prod"}
    assert load_one(document).attestors[0].options.annotations == (("env", "prod"),)
    document["spec"]["attestors"][0]["cosign"]["annotations"] = ["env=prod"]
    error = load_error(document)
    assert error.path == "spec.attestors[0].cosign.annotations", str(error)
