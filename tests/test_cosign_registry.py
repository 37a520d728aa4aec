"""End to end through a real docker-registry: images signed in cosign's layout, verified by tag and digest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cosign import (
    Invalid,
    SignatureSet,
    Unsigned,
    VerificationError,
    Verified,
    VerifyOptions,
    fetch_signatures,
    load_public_key,
    verify_image,
    verify_signatures,
)
from exporter.registry import RegistryClient, RegistryOptions, parse_reference
from tests.support.registry import (
    BUNDLE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    RegistryServer,
    SignatureLayerSpec,
    free_port,
    generate_signing_key,
    needs_registry,
    public_pem,
    simple_signing_payload,
)

pytestmark = needs_registry

VECTORS = Path(__file__).resolve().parents[2] / "shared/interop/cosign-vectors"
SIGNER = generate_signing_key()
SIGNER_KEY = load_public_key(public_pem(SIGNER), "release-key")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("cosign-registry")) as server:
        yield server


async def _verify(registry: RegistryServer, image: str, options: VerifyOptions, **kwargs: Any) -> Any:
    registry_options = RegistryOptions(insecure_registries=frozenset({registry.host}), **kwargs)
    async with RegistryClient(registry_options) as client:
        return await verify_image(client, parse_reference(f"{registry.host}/{image}"), options)


async def test_signed_image_verifies_by_tag_and_by_digest(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/signed", "v1")
    registry.sign("e2e/signed", digest, SIGNER)
    options = VerifyOptions(keys=(SIGNER_KEY,))
    by_tag = await _verify(registry, "e2e/signed:v1", options)
    assert isinstance(by_tag, Verified)
    assert (by_tag.digest, by_tag.matched_keys) == (digest, ("release-key",))
    requests: list[tuple[str, str]] = []
    by_digest = await _verify(
        registry, f"e2e/signed@{digest}", options, on_request=lambda h, s: requests.append((h, s))
    )
    assert isinstance(by_digest, Verified)
    assert by_digest.digest == digest
    assert len(requests) == 2, "digest reference: .sig manifest and one payload blob, no tag resolution"


async def test_unsigned_and_wrongly_signed_images(registry: RegistryServer) -> None:
    unsigned_digest = registry.push_image("e2e/unsigned", "v1")
    assert await _verify(registry, "e2e/unsigned:v1", VerifyOptions(keys=(SIGNER_KEY,))) == Unsigned(
        parse_reference(f"{registry.host}/e2e/unsigned:v1"), unsigned_digest
    )
    digest = registry.push_image("e2e/other-signer", "v1")
    registry.sign("e2e/other-signer", digest, generate_signing_key())
    outcome = await _verify(registry, "e2e/other-signer:v1", VerifyOptions(keys=(SIGNER_KEY,)))
    assert isinstance(outcome, Invalid)
    assert "does not verify with any trusted key (release-key)" in outcome.reasons[0]


async def test_signature_for_another_digest_proves_nothing(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/replayed", "v1")
    elsewhere = registry.push_image("e2e/replayed", "v2")
    registry.sign("e2e/replayed", digest, SIGNER, signed_digest=elsewhere)
    outcome = await _verify(registry, "e2e/replayed:v1", VerifyOptions(keys=(SIGNER_KEY,)))
    assert isinstance(outcome, Invalid)
    assert f"for digest {elsewhere}, not this image's {digest}" in outcome.reasons[0]


async def test_several_signers_and_a_threshold(registry: RegistryServer) -> None:
    second = generate_signing_key("rsa-2048")
    digest = registry.push_image("e2e/two-signers", "v1")
    registry.sign("e2e/two-signers", digest, SIGNER)
    registry.sign("e2e/two-signers", digest, second)
    keys = (SIGNER_KEY, load_public_key(public_pem(second), "qa-key"))
    outcome = await _verify(registry, "e2e/two-signers:v1", VerifyOptions(keys=keys, threshold=2))
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
    outcome = await _verify(registry, "e2e/bad-layers:v1", VerifyOptions(keys=(SIGNER_KEY,)))
    assert isinstance(outcome, Invalid)
    assert len(outcome.reasons) == 4
    assert "does not verify with any trusted key" in outcome.reasons[0]
    assert "no dev.cosignproject.cosign/signature annotation" in outcome.reasons[1]
    assert "signature annotation is not valid base64" in outcome.reasons[2]
    assert "payload of 1048577 bytes exceeds the 1048576-byte limit" in outcome.reasons[3]
    registry.sign("e2e/bad-layers", digest, SIGNER)
    assert isinstance(
        await _verify(registry, "e2e/bad-layers:v1", VerifyOptions(keys=(SIGNER_KEY,))), Verified
    )


async def test_fetch_once_then_decide_per_attestor(registry: RegistryServer) -> None:
    digest = registry.push_image("e2e/attestors", "v1")
    registry.sign("e2e/attestors", digest, SIGNER)
    options = RegistryOptions(insecure_registries=frozenset({registry.host}))
    async with RegistryClient(options) as client:
        signatures = await fetch_signatures(client, parse_reference(f"{registry.host}/e2e/attestors:v1"))
    assert isinstance(signatures, SignatureSet)
    assert verify_signatures(signatures, VerifyOptions(keys=(SIGNER_KEY,))).status == "verified"
    stranger = load_public_key(public_pem(generate_signing_key()), "stranger")
    assert verify_signatures(signatures, VerifyOptions(keys=(stranger,))).status == "invalid"


async def test_unreachable_registry_is_an_error_outcome_not_an_exception() -> None:
    host = f"127.0.0.1:{free_port()}"
    options = RegistryOptions(insecure_registries=frozenset({host}), deadline=2.0)
    async with RegistryClient(options) as client:
        outcome = await verify_image(
            client, parse_reference(f"{host}/e2e/app:v1"), VerifyOptions(keys=(SIGNER_KEY,))
        )
    assert isinstance(outcome, VerificationError)
    assert outcome.status == "error"
    assert host in outcome.cause


def _vector_cases() -> list[Any]:
    index = VECTORS / "vectors.json"
    if not index.exists():
        return [
            pytest.param("", marks=pytest.mark.skip(reason=f"cosign interop vectors not found at {VECTORS}"))
        ]
    cases = json.loads(index.read_text())
    return [
        pytest.param(name, id=name)
        for name, meta in sorted(cases.items())
        if meta["kind"] in ("key", "key+rekor-bundle") and meta["expect"] in ("verified", "per-key")
    ]


def _vector_layers(case: str) -> list[SignatureLayerSpec]:
    folder = VECTORS / case
    payload = (folder / "payload.json").read_bytes()
    sig_manifest = folder / "sig-manifest.json"
    if sig_manifest.exists():
        return [
            SignatureLayerSpec(payload, layer["annotations"])
            for layer in json.loads(sig_manifest.read_text())["layers"]
        ]
    annotations = (
        json.loads((folder / "annotations.json").read_text())["annotations"]
        if (folder / "annotations.json").exists()
        else {}
    )
    signature = (folder / "signature.b64").read_text().strip()
    extra = {BUNDLE_ANNOTATION: annotations[BUNDLE_ANNOTATION]} if BUNDLE_ANNOTATION in annotations else {}
    return [SignatureLayerSpec(payload, {SIGNATURE_ANNOTATION: signature, **extra})]


@pytest.mark.parametrize("case", _vector_cases())
async def test_real_cosign_signatures_verify_through_the_registry(
    registry: RegistryServer, case: str
) -> None:
    folder = VECTORS / case
    digest = json.loads((folder / "payload.json").read_bytes())["critical"]["image"]["docker-manifest-digest"]
    repository = f"vectors/{case}"
    registry.push_signature_layers(repository, digest, _vector_layers(case), append=False)
    keys = tuple(load_public_key(path.read_text(), path.stem) for path in sorted(folder.glob("key*.pub")))
    signers = tuple(key for key in keys if "NOT-A-SIGNER" not in key.name)
    rekor = (
        (load_public_key((folder / "rekor.pub").read_text(), "rekor"),)
        if (folder / "rekor.pub").exists()
        else ()
    )
    options = VerifyOptions(keys=signers, threshold=len(signers), rekor_keys=rekor, require_tlog=bool(rekor))
    outcome = await _verify(registry, f"{repository}@{digest}", options)
    assert isinstance(outcome, Verified), outcome.reason
    assert outcome.matched_keys == tuple(key.name for key in signers)
