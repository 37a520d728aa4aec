"""End to end through a real docker-registry: images signed in cosign's layouts (legacy ``.sig``/``.att``
tags, Sigstore bundles as referrers through the API or the ``sha256-<hex>`` tag fallback), verified by tag
and digest; and every interop vector pushed in its real layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cosign import (
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    TrustedKey,
    Unsigned,
    VerificationError,
    VerificationOptions,
    Verified,
    load_public_key,
    verify_attestations,
    verify_found,
    verify_image,
)
from exporter.cosign.discovery import discover
from exporter.cosign.found import FoundArtifacts
from exporter.registry import RegistryClient, RegistryOptions, parse_reference
from exporter.sigstore import load_trusted_root
from tests.support.cosign_vectors import (
    BUNDLE_CASE,
    BUNDLE_DIGEST,
    CASES,
    bundle_content,
    expectation,
    payload,
    sig_annotations,
    signed_digest,
)
from tests.support.oci_push import (
    COSIGN_SIGNATURE_ARTIFACT,
    SIGSTORE_BUNDLE_V03,
    attach_referrer,
    push_att,
    push_referrer,
)
from tests.support.reference_verifier import reference_verify
from tests.support.referrers_front import ReferrersFront
from tests.support.registry import (
    OCI_MANIFEST,
    SIGNATURE_ANNOTATION,
    RegistryServer,
    SignatureLayerSpec,
    cosign_signature_layer,
    free_port,
    generate_signing_key,
    needs_registry,
    public_pem,
    simple_signing_payload,
)
from tests.support.sigstore_box import (
    GITHUB_ISSUER,
    SLSA_PROVENANCE_V02,
    GitHubWorkflow,
    Identity,
    SignedBundle,
    SigstoreBox,
)

pytestmark = needs_registry

SIGNER = generate_signing_key()
SIGNER_KEY = load_public_key(public_pem(SIGNER), "release-key")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("cosign-registry")) as server:
        yield server


def _keys(*keys: TrustedKey, threshold: int = 1) -> VerificationOptions:
    return VerificationOptions(
        attestors=tuple(KeyAttestor(name=key.name, keys=(key,)) for key in keys), threshold=threshold
    )


async def _verify(
    registry: RegistryServer | ReferrersFront, image: str, options: VerificationOptions, **kwargs: Any
) -> Any:
    registry_options = RegistryOptions(insecure_registries=frozenset({registry.host}), **kwargs)
    async with RegistryClient(registry_options) as client:
        return await verify_image(client, parse_reference(f"{registry.host}/{image}"), options)


async def test_signed_image_verifies_by_tag_and_by_digest(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/signed", "v1")
    registry.sign("e2e/signed", digest, SIGNER)
    options = _keys(SIGNER_KEY)
    by_tag = await _verify(registry, "e2e/signed:v1", options)
    assert isinstance(by_tag, Verified)
    assert (by_tag.digest, by_tag.matched_keys) == (digest, ("release-key",))
    requests: list[tuple[str, str]] = []
    by_digest = await _verify(
        registry, f"e2e/signed@{digest}", options, on_request=lambda h, s: requests.append((h, s))
    )
    assert isinstance(by_digest, Verified)
    assert by_digest.digest == digest
    # A digest reference needs no tag resolution: .sig, the referrers API (absent) and its fallback tag are
    # asked once each, then the one payload blob; .att, which holds only attestations, is not read.
    assert len(requests) == 4


async def test_unsigned_and_wrongly_signed_images(registry: RegistryServer) -> None:
    unsigned_digest = registry.push_image("e2e/unsigned", "v1")
    assert await _verify(registry, "e2e/unsigned:v1", _keys(SIGNER_KEY)) == Unsigned(
        parse_reference(f"{registry.host}/e2e/unsigned:v1"), unsigned_digest
    )
    digest = registry.push_image("e2e/other-signer", "v1")
    registry.sign("e2e/other-signer", digest, generate_signing_key())
    outcome = await _verify(registry, "e2e/other-signer:v1", _keys(SIGNER_KEY))
    assert isinstance(outcome, Invalid)
    assert "does not verify with any trusted key (release-key)" in outcome.reasons[0]


async def test_signature_for_another_digest_proves_nothing(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/replayed", "v1")
    elsewhere = registry.push_image("e2e/replayed", "v2")
    registry.sign("e2e/replayed", digest, SIGNER, signed_digest=elsewhere)
    outcome = await _verify(registry, "e2e/replayed:v1", _keys(SIGNER_KEY))
    assert isinstance(outcome, Invalid)
    assert f"for digest {elsewhere}, not this image's {digest}" in outcome.reasons[0]


async def test_several_signers_and_a_threshold(registry: RegistryServer) -> None:
    second = generate_signing_key("rsa-2048")
    digest = registry.push_image("e2e/two-signers", "v1")
    registry.sign("e2e/two-signers", digest, SIGNER)
    registry.sign("e2e/two-signers", digest, second)
    keys = (SIGNER_KEY, load_public_key(public_pem(second), "qa-key"))
    outcome = await _verify(registry, "e2e/two-signers:v1", _keys(*keys, threshold=2))
    assert isinstance(outcome, Verified)
    assert outcome.matched_keys == ("release-key", "qa-key")


async def test_bad_signature_layers_are_each_explained(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/bad-layers", "v1")
    good_payload = simple_signing_payload(digest, f"{registry.host}/e2e/bad-layers")
    layers = [
        SignatureLayerSpec(b"definitely not json", {SIGNATURE_ANNOTATION: "MEUCIQ=="}),
        SignatureLayerSpec(good_payload, {}),
        SignatureLayerSpec(good_payload + b" ", {SIGNATURE_ANNOTATION: "not*base64"}),
        SignatureLayerSpec(b"x" * (1024 * 1024 + 1), {SIGNATURE_ANNOTATION: "MEUCIQ=="}),
    ]
    registry.push_signature_layers("e2e/bad-layers", digest, layers)
    outcome = await _verify(registry, "e2e/bad-layers:v1", _keys(SIGNER_KEY))
    assert isinstance(outcome, Invalid)
    assert len(outcome.reasons) == 4
    assert "does not verify with any trusted key" in outcome.reasons[0]
    assert "no dev.cosignproject.cosign/signature annotation" in outcome.reasons[1]
    assert "signature annotation is not valid base64" in outcome.reasons[2]
    assert "layer of 1048577 bytes exceeds the 1048576-byte limit" in outcome.reasons[3]
    registry.sign("e2e/bad-layers", digest, SIGNER)
    assert isinstance(await _verify(registry, "e2e/bad-layers:v1", _keys(SIGNER_KEY)), Verified)


async def test_fetch_once_then_decide_per_attestor(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/attestors", "v1")
    registry.sign("e2e/attestors", digest, SIGNER)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    async with RegistryClient(options) as client:
        found = await discover(client, parse_reference(f"{registry.host}/e2e/attestors:v1"))
    assert isinstance(found, FoundArtifacts)
    assert verify_found(found, _keys(SIGNER_KEY)).status == "verified"
    stranger = load_public_key(public_pem(generate_signing_key()), "stranger")
    assert verify_found(found, _keys(stranger)).status == "invalid"


async def test_unreachable_registry_is_an_error_outcome_not_an_exception() -> None:
    host = f"127.0.0.1:{free_port()}"
    options = RegistryOptions(insecure_registries=frozenset({host}), deadline=2.0)
    async with RegistryClient(options) as client:
        outcome = await verify_image(client, parse_reference(f"{host}/e2e/app:v1"), _keys(SIGNER_KEY))
    assert isinstance(outcome, VerificationError)
    assert outcome.status == "error"
    assert host in outcome.cause


def _vector_layers(case: str) -> list[SignatureLayerSpec]:
    return [SignatureLayerSpec(payload(case), annotations) for annotations in sig_annotations(case)]


def _push_vector(registry: RegistryServer, repository: str, case: str, front: ReferrersFront | None) -> str:
    """Push ``case`` in its real layout: ``.sig`` layers with cosign's annotations, or (the cosign 3 bundle)
    a referrer, listed by the referrers API of ``front`` or, without one, in the ``sha256-<hex>`` index."""
    if case != BUNDLE_CASE:
        digest = signed_digest(case)
        registry.push_signature_layers(repository, digest, _vector_layers(case), append=False)
        return digest
    # The signed image itself is not in the vector: describe it as the referrer's subject.
    subject = {"mediaType": OCI_MANIFEST, "digest": BUNDLE_DIGEST, "size": 1234}
    layers = [SignatureLayerSpec(bundle_content(), {}, SIGSTORE_BUNDLE_V03)]
    if front is not None:
        push_referrer(front, repository, BUNDLE_DIGEST, SIGSTORE_BUNDLE_V03, layers, subject=subject)
    else:
        attach_referrer(registry, repository, BUNDLE_DIGEST, SIGSTORE_BUNDLE_V03, layers, subject=subject)
    return BUNDLE_DIGEST


@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_vector_in_its_real_layout_reaches_its_verdict(
    registry: RegistryServer, case: str
) -> None:
    repository = f"vectors/{case}"
    digest = _push_vector(registry, repository, case, None)
    expected = expectation(case)
    outcome = await _verify(registry, f"{repository}@{digest}", expected.options)
    expected.check(outcome)
    if isinstance(outcome, Verified):
        place = "referrers-tag" if case == BUNDLE_CASE else "sig-tag"
        assert {signature.place for signature in outcome.signatures} == {place}


async def test_cosign3_bundle_vector_through_the_referrers_api(registry: RegistryServer) -> None:
    async with ReferrersFront(registry) as front:
        digest = _push_vector(registry, "vectors/api-bundle", BUNDLE_CASE, front)
        outcome = await _verify(front, f"vectors/api-bundle@{digest}", expectation(BUNDLE_CASE).options)
    assert isinstance(outcome, Verified), outcome.reason
    (signature,) = outcome.signatures
    assert (signature.place, signature.format, signature.bundle_version) == (
        "referrers-api",
        "bundle-dsse",
        "0.3",
    )


# --- a Sigstore of our own: keyless in both layouts, attestations, misplaced bundles ---

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0"
SIGNER_IDENTITY = Identity(WORKFLOW, GITHUB_ISSUER, github=GitHubWorkflow(repository="acme/app"))
SLSA_V1 = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def box_root(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


def _keyless(root: Path, **overrides: Any) -> VerificationOptions:
    identity = IdentityPolicy(
        subject=WORKFLOW, issuer=GITHUB_ISSUER, extensions={"githubWorkflowRepository": "acme/app"}
    )
    return VerificationOptions(
        attestors=(KeylessAttestor(name="release", identities=(identity,)),),
        trusted_root=load_trusted_root(root),
        **overrides,
    )


def _bundle_layer(signed: SignedBundle) -> list[SignatureLayerSpec]:
    return [SignatureLayerSpec(signed.json, {}, signed.media_type)]


async def test_keyless_legacy_sig_and_cosign3_bundle_in_the_registry(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    legacy_digest = registry.push_image("box/legacy", "v1")
    legacy = sigstore_box.legacy_signature(legacy_digest, f"{registry.host}/box/legacy", SIGNER_IDENTITY)
    registry.push_signature_layers("box/legacy", legacy_digest, [legacy.layer])
    bundle_digest = registry.push_image("box/bundle", "v1")
    signed = sigstore_box.image_bundle(bundle_digest, SIGNER_IDENTITY)
    attach_referrer(registry, "box/bundle", bundle_digest, signed.media_type, _bundle_layer(signed))
    async with ReferrersFront(registry) as front:
        api_digest = registry.push_image("box/api", "v1")
        api_signed = sigstore_box.image_bundle(api_digest, SIGNER_IDENTITY, log="rekor-v2", timestamp=True)
        push_referrer(front, "box/api", api_digest, api_signed.media_type, _bundle_layer(api_signed))
        through_api = await _verify(front, "box/api:v1", _keyless(box_root))
    expectations = (
        (
            await _verify(registry, "box/legacy:v1", _keyless(box_root)),
            "sig-tag",
            "simple-signing",
            legacy_digest,
        ),
        (
            await _verify(registry, "box/bundle:v1", _keyless(box_root)),
            "referrers-tag",
            "bundle-dsse",
            bundle_digest,
        ),
        (through_api, "referrers-api", "bundle-dsse", api_digest),
    )
    for outcome, place, format_, digest in expectations:
        assert isinstance(outcome, Verified), outcome.reason
        assert outcome.digest == digest
        (signature,) = outcome.signatures
        assert (signature.place, signature.format, signature.attestor) == (place, format_, "release")
        assert signature.identity is not None
        assert signature.identity.subject_alternative_names == (WORKFLOW,)
    assert through_api.signatures[0].time_source == "timestamp-authority"
    for signed_bundle, digest in ((signed, bundle_digest), (api_signed, api_digest)):
        theirs = reference_verify(
            signed_bundle.json, box_root, identity=WORKFLOW, issuer=GITHUB_ISSUER, subject_digest=digest
        )
        assert theirs.accepted, theirs.reason


async def test_a_bundle_copied_onto_another_images_referrers_proves_nothing(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    signed_digest_ = registry.push_image("box/copied", "signed")
    victim = registry.push_image("box/copied", "unsigned")
    signed = sigstore_box.image_bundle(signed_digest_, SIGNER_IDENTITY)
    attach_referrer(registry, "box/copied", victim, signed.media_type, _bundle_layer(signed))
    outcome = await _verify(registry, "box/copied:unsigned", _keyless(box_root))
    assert isinstance(outcome, Invalid)
    assert f"statement subject is {signed_digest_}, not this image's {victim}" in outcome.reasons[0]
    theirs = reference_verify(
        signed.json, box_root, identity=WORKFLOW, issuer=GITHUB_ISSUER, subject_digest=victim
    )
    assert not theirs.accepted


async def test_attestations_from_att_tags_and_bundle_referrers(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    digest = registry.push_image("box/attested", "v1")
    legacy = sigstore_box.legacy_attestation(
        digest, f"{registry.host}/box/attested", SIGNER_IDENTITY, predicate={"builder": {"id": "legacy"}}
    )
    push_att(registry, "box/attested", digest, [legacy.layer])
    slsa = sigstore_box.image_bundle(
        digest, SIGNER_IDENTITY, predicate_type=SLSA_V1, predicate={"builder": "v1"}
    )
    attach_referrer(registry, "box/attested", digest, slsa.media_type, _bundle_layer(slsa))
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    reference = parse_reference(f"{registry.host}/box/attested:v1")
    async with RegistryClient(options) as client:
        legacy_outcome = await verify_attestations(client, reference, _keyless(box_root), SLSA_PROVENANCE_V02)
        bundle_outcome = await verify_attestations(client, reference, _keyless(box_root), SLSA_V1)
        signatures = await verify_image(client, reference, _keyless(box_root))
    assert isinstance(legacy_outcome, Verified), legacy_outcome.reason
    assert [s.predicate for s in legacy_outcome.statements] == [{"builder": {"id": "legacy"}}]
    assert legacy_outcome.statements[0].signature.place == "att-tag"
    assert isinstance(bundle_outcome, Verified), bundle_outcome.reason
    assert [s.predicate for s in bundle_outcome.statements] == [{"builder": "v1"}]
    assert bundle_outcome.statements[0].signature.place == "referrers-tag"
    assert isinstance(signatures, Unsigned), "attestations are not image signatures"


async def test_signatures_in_a_separate_signature_repository(
    registry: RegistryServer, sigstore_box: SigstoreBox, box_root: Path
) -> None:
    digest = registry.push_image("box/elsewhere", "v1")
    signed = sigstore_box.image_bundle(digest, SIGNER_IDENTITY)
    attach_referrer(
        registry,
        "box/signatures",
        digest,
        signed.media_type,
        _bundle_layer(signed),
        subject_repo="box/elsewhere",
    )
    assert isinstance(await _verify(registry, "box/elsewhere:v1", _keyless(box_root)), Unsigned)
    moved = _keyless(box_root, signature_repository=f"{registry.host}/box/signatures")
    outcome = await _verify(registry, "box/elsewhere:v1", moved)
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.signatures[0].repository == f"{registry.host}/box/signatures"


async def test_cosign2_simple_signing_referrer_is_an_image_signature(registry: RegistryServer) -> None:
    """cosign 2 with ``--registry-referrers-mode=oci-1-1`` attaches its simple-signing layer as a referrer."""
    digest = registry.push_image("e2e/cosign2-referrer", "v1")
    layer = cosign_signature_layer(SIGNER, digest, f"{registry.host}/e2e/cosign2-referrer")
    attach_referrer(registry, "e2e/cosign2-referrer", digest, COSIGN_SIGNATURE_ARTIFACT, [layer])
    outcome = await _verify(registry, "e2e/cosign2-referrer:v1", _keys(SIGNER_KEY))
    assert isinstance(outcome, Verified), outcome.reason
    assert (outcome.signatures[0].place, outcome.signatures[0].format) == ("referrers-tag", "simple-signing")
