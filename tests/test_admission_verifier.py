"""Attestor semantics of the verifier, decided offline over discovered signatures made with real keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.admission.verifier import ImageVerifier, judge
from exporter.cosign.formats.legacy import SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifacts
from exporter.metrics import ServiceMetrics
from exporter.policy.loader import parse_policies
from exporter.policy.model import Attestor, ImageVerification, KeyEntry, KyvernoPolicy, Rekor
from exporter.policy.parse import parse_policy
from exporter.registry import RegistryClient, RegistryOptions
from exporter.registry.reference import parse_reference
from exporter.sigstore import parse_trusted_root
from tests.support.artifacts import artifact, found, image_signature_bundle, sig_layer
from tests.support.registry import (
    PrivateKey,
    RegistryServer,
    generate_signing_key,
    public_pem,
    registry_available,
)
from tests.support.sigstore_box import GITHUB_ISSUER, Identity, SigstoreBox

DIGEST = "sha256:" + "12" * 32
IMAGE = "docker.io/user/test:v1"
KEY_A, KEY_B, KEY_C = (generate_signing_key() for _ in range(3))


def signed_by(*keys: PrivateKey) -> FoundArtifacts:
    layers = tuple(sig_layer(key, DIGEST, "docker.io/user/test") for key in keys)
    return found(parse_reference(IMAGE).with_digest(DIGEST), DIGEST, *layers)


def entry(key: PrivateKey) -> KeyEntry:
    return KeyEntry(public_keys=public_pem(key), secret=None, signature_algorithm="sha256", rekor=None)


def verification(*attestors: Attestor) -> ImageVerification:
    return ImageVerification(
        image_references=("*",),
        skip_image_references=(),
        attestors=attestors,
        required=True,
        verify_digest=True,
        mutate_digest=True,
        failure_action=None,
    )


def test_unsigned_image_is_kyvernos_no_matching_signatures() -> None:
    outcome = judge(signed_by(), verification(Attestor(None, (entry(KEY_A),))), IMAGE)
    assert (outcome.status, outcome.message, outcome.digest) == (
        "fail",
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no matching signatures",
        DIGEST,
    )


def test_signature_by_another_key_names_the_mismatch() -> None:
    outcome = judge(signed_by(KEY_B), verification(Attestor(None, (entry(KEY_A),))), IMAGE)
    assert outcome.status == "fail"
    assert outcome.message.startswith(
        f"failed to verify image {IMAGE}: .attestors[0].entries[0].keys: no matching signatures: signature 1"
    )


def test_without_count_every_entry_must_verify() -> None:
    both = verification(Attestor(None, (entry(KEY_A), entry(KEY_B))))
    assert judge(signed_by(KEY_A, KEY_B), both, IMAGE).status == "pass"
    outcome = judge(signed_by(KEY_A), both, IMAGE)
    assert outcome.status == "fail"
    assert ".attestors[0].entries[1].keys: no matching signatures" in outcome.message
    assert ".entries[0]" not in outcome.message


def test_count_needs_only_that_many_entries() -> None:
    one_of_three = verification(Attestor(1, (entry(KEY_A), entry(KEY_B), entry(KEY_C))))
    assert judge(signed_by(KEY_C), one_of_three, IMAGE).message == "image verified"
    two_of_three = verification(Attestor(2, (entry(KEY_A), entry(KEY_B), entry(KEY_C))))
    outcome = judge(signed_by(KEY_C), two_of_three, IMAGE)
    assert outcome.status == "fail"
    assert "entries[0].keys" in outcome.message
    assert "entries[1].keys" in outcome.message


def test_every_attestor_set_must_pass_and_failures_name_their_set() -> None:
    two_sets = verification(Attestor(None, (entry(KEY_A),)), Attestor(None, (entry(KEY_B),)))
    outcome = judge(signed_by(KEY_A), two_sets, IMAGE)
    assert outcome.status == "fail"
    assert ": .attestors[1].entries[0].keys: no matching signatures" in outcome.message


def test_unusable_key_material_is_an_error_that_says_so() -> None:
    """A key that cannot be used (a bad Secret) says nothing about the image: ``error``, never ``fail``."""
    broken = KeyEntry(public_keys="not a pem", secret=None, signature_algorithm="sha256", rekor=None)
    outcome = judge(signed_by(KEY_A), verification(Attestor(None, (broken,))), IMAGE)
    assert outcome.status == "error"
    assert ".attestors[0].entries[0].keys: unusable key:" in outcome.message


def test_an_attestor_set_fails_only_when_errors_could_not_have_saved_it() -> None:
    broken = KeyEntry(public_keys="not a pem", secret=None, signature_algorithm="sha256", rekor=None)
    # one of {broken, B} must verify; only A signed: B is a definite miss, broken unknown -> error
    assert judge(signed_by(KEY_A), verification(Attestor(1, (broken, entry(KEY_B)))), IMAGE).status == "error"
    # two of {broken, B, C}: only A signed, so at most one could verify -> fail
    two_of_three = verification(Attestor(2, (broken, entry(KEY_B), entry(KEY_C))))
    assert judge(signed_by(KEY_A), two_of_three, IMAGE).status == "fail"
    # a definite failure in one set outweighs an error in another
    sets = verification(Attestor(None, (broken,)), Attestor(None, (entry(KEY_B),)))
    outcome = judge(signed_by(KEY_A), sets, IMAGE)
    assert outcome.status == "fail"
    assert ".attestors[1].entries[0].keys: no matching signatures" in outcome.message
    # one of {broken, A} with A signing passes whatever the broken entry is
    assert judge(signed_by(KEY_A), verification(Attestor(1, (broken, entry(KEY_A)))), IMAGE).status == "pass"


def test_a_key_signed_bundle_needs_a_log_entry_unless_the_policy_ignores_the_tlog() -> None:
    signed = found(parse_reference(IMAGE).with_digest(DIGEST), DIGEST, image_signature_bundle(KEY_A, DIGEST))
    required = judge(signed, verification(Attestor(None, (entry(KEY_A),))), IMAGE)
    assert required.status == "fail"
    assert ".attestors[0].entries[0].keys: no matching signatures: signature 1 (referrer" in required.message
    assert "no transparency-log (Rekor) entry" in required.message
    ignoring = KeyEntry(
        public_keys=public_pem(KEY_A),
        secret=None,
        signature_algorithm="sha256",
        rekor=Rekor(pubkey=None, ignore_tlog=True),
    )
    assert judge(signed, verification(Attestor(None, (ignoring,))), IMAGE).status == "pass"


def test_a_key_that_went_bad_in_its_secret_is_an_error_saying_it_looks_truncated() -> None:
    """Secret keys are read at admission, not at load: a damaged one is an ``error`` (never a ``fail``) whose
    message says what is wrong with the key."""
    lines = public_pem(KEY_A).strip().splitlines()
    lines[1] = lines[1][:-1]
    damaged = KeyEntry(public_keys="\n".join(lines), secret=None, signature_algorithm="sha256", rekor=None)
    outcome = judge(signed_by(KEY_A), verification(Attestor(None, (damaged,))), IMAGE)
    assert outcome.status == "error"
    assert "not a multiple of 4: the key looks truncated" in outcome.message


# --- keyless and certificate entries, through the policy parser ---------------------------------------

KEYLESS_SIGNER = Identity("release@example.com", GITHUB_ISSUER)


def _parsed(entry: dict[str, Any], **fields: Any) -> ImageVerification:
    document = {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "rules": [
                {
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {"imageReferences": ["*"], "attestors": [{"entries": [entry]}], **fields}
                    ],
                }
            ]
        },
    }
    return parse_policy(document).rules[0].verify_images[0]


def _keyless_found(sigstore_box: SigstoreBox, *, referrer: bool) -> FoundArtifacts:
    if referrer:
        signed = sigstore_box.image_bundle(DIGEST, KEYLESS_SIGNER)
        layer = artifact("referrers-api", signed.json, signed.media_type)
    else:
        legacy = sigstore_box.legacy_signature(DIGEST, "docker.io/user/test", KEYLESS_SIGNER)
        layer = artifact("sig-tag", legacy.layer.payload, SIMPLE_SIGNING_MEDIA_TYPE, legacy.annotations)
    return found(parse_reference(IMAGE).with_digest(DIGEST), DIGEST, layer)


def test_keyless_entry_verifies_under_the_trusted_root_it_is_given(sigstore_box: SigstoreBox) -> None:
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    keyless = _parsed({"keyless": {"subject": "*@example.com", "issuer": GITHUB_ISSUER}})
    for referrer in (False, True):
        signatures = _keyless_found(sigstore_box, referrer=referrer)
        assert judge(signatures, keyless, IMAGE, root).status == "pass"
        # the public-good root does not know the box's Fulcio: a definite fail, at Kyverno's path
        outcome = judge(signatures, keyless, IMAGE)
        assert outcome.status == "fail"
        assert (
            f"failed to verify image {IMAGE}: .attestors[0].entries[0].keyless: no matching signatures"
            in (outcome.message)
        )


def test_keyless_identity_mismatch_fails_naming_the_entry(sigstore_box: SigstoreBox) -> None:
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    other = _parsed({"keyless": {"subject": "someone@example.org", "issuer": GITHUB_ISSUER}})
    outcome = judge(_keyless_found(sigstore_box, referrer=True), other, IMAGE, root)
    assert outcome.status == "fail"
    assert ".attestors[0].entries[0].keyless: no matching signatures" in outcome.message


def test_certificates_entry_verifies_a_certificate_issued_under_its_chain(sigstore_box: SigstoreBox) -> None:
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    certificates = _parsed({"certificates": {"certChain": sigstore_box.chain_pem}})
    assert judge(_keyless_found(sigstore_box, referrer=False), certificates, IMAGE, root).status == "pass"
    rogue = SigstoreBox("verifier rogue", now=sigstore_box.now).chain_pem
    outcome = judge(
        _keyless_found(sigstore_box, referrer=False),
        _parsed({"certificates": {"certChain": rogue}}),
        IMAGE,
        root,
    )
    assert outcome.status == "fail"
    assert ".attestors[0].entries[0].certificates: no matching signatures" in outcome.message


def test_sigstore_bundle_type_counts_only_referrers(sigstore_box: SigstoreBox) -> None:
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    entry = {"keyless": {"subject": KEYLESS_SIGNER.san, "issuer": GITHUB_ISSUER}}
    for fields in ({"type": "SigstoreBundle"}, {"cosignOCI11": True}):
        only_referrers = _parsed(entry, **fields)
        assert (
            judge(_keyless_found(sigstore_box, referrer=True), only_referrers, IMAGE, root).status == "pass"
        )
        legacy = judge(_keyless_found(sigstore_box, referrer=False), only_referrers, IMAGE, root)
        assert legacy.status == "fail"
        assert "no matching signatures" in legacy.message
    both = _parsed(entry)
    assert judge(_keyless_found(sigstore_box, referrer=False), both, IMAGE, root).status == "pass"


REPOSITORY_POLICY = """
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: elsewhere}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ['*']
      repository: REPOSITORY
      attestors:
      - entries:
        - keyless: {subject: release@example.com, issuer: ISSUER}
"""


@pytest.mark.registry
@pytest.mark.skipif(not registry_available(), reason="needs /usr/bin/docker-registry")
async def test_the_verifier_reads_signatures_from_the_rules_repository(
    tmp_path: Path, sigstore_box: SigstoreBox
) -> None:
    """Through a real registry: the keyless signature lives in another repository, as cosign writes it with
    COSIGN_REPOSITORY; the rule's ``repository`` finds it there, under serve's trusted root."""
    root = parse_trusted_root(json.dumps(sigstore_box.trusted_root()).encode(), "box")
    async with RegistryServer(tmp_path) as registry:
        digest = registry.push_image("team/app", "v1")
        legacy = sigstore_box.legacy_signature(digest, f"{registry.host}/team/app", KEYLESS_SIGNER)
        registry.push_signature_layers("team/signatures", digest, [legacy.layer])
        image = f"{registry.host}/team/app:v1"
        text = REPOSITORY_POLICY.replace("ISSUER", GITHUB_ISSUER)
        [elsewhere] = parse_policies(text.replace("REPOSITORY", f"{registry.host}/team/signatures"))
        [beside] = parse_policies(text.replace("REPOSITORY", f"{registry.host}/team/app"))
        options = RegistryOptions(insecure_registries=frozenset({registry.host}))
        async with RegistryClient(options) as client:
            verifier = ImageVerifier(client, ServiceMetrics(CollectorRegistry()), trusted_root=root)
            for policy, status in ((elsewhere, "pass"), (beside, "fail")):
                assert isinstance(policy, KyvernoPolicy)
                rule = policy.rules[0]
                outcome, _how = await verifier.verify(
                    policy.version, rule.name, 0, rule.verify_images[0], image
                )
                assert outcome.status == status, outcome.message
            await verifier.close()
