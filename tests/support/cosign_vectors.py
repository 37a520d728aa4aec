"""The shared cosign interop vectors (``../shared/interop/cosign-vectors``) as test inputs: each case's
signature layers in their real layout, and the verification options under which ``vectors.json``'s verdict
holds (the signer's key, identity, own-PKI chain or trusted root), for the API and the registry tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.cosign import (
    CertificateAttestor,
    IdentityPolicy,
    Invalid,
    KeyAttestor,
    KeylessAttestor,
    TrustedKey,
    VerificationOptions,
    VerificationOutcome,
    Verified,
    load_public_key,
)
from exporter.cosign.formats.legacy import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    SIGNATURE_ANNOTATION,
)
from exporter.sigstore import load_trusted_root

VECTORS = Path(__file__).resolve().parents[3] / "shared/interop/cosign-vectors"

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_OAUTH = "https://github.com/login/oauth"
# Who signed each keyless vector (read from its certificate), as a policy would name them.
KEYLESS_IDENTITIES = {
    "ci-keyless-fulcio-rekor-2022": IdentityPolicy(subject="mitr@redhat.com", issuer=GITHUB_OAUTH),
    "ci-keyless-fulcio-rekor-2023": IdentityPolicy(subject="mitr@redhat.com", issuer=GITHUB_OAUTH),
    "ratify-keyless-2023": IdentityPolicy(subject="sozercan@gmail.com", issuer=GITHUB_OAUTH),
    "ratify-neg-keyless-corrupt-set": IdentityPolicy(subject="sozercan@gmail.com", issuer=GITHUB_OAUTH),
    # 2021: Fulcio wrote no OIDC issuer extension yet, and embedded no SCT.
    "rs-keyless-rekord-2021": IdentityPolicy(subject="flavio@castelli.me"),
}
NO_SCT = frozenset({"rs-keyless-rekord-2021"})
BUNDLE_CASE = "rs-bundle-v03-dsse-2026"
BUNDLE_IDENTITY = IdentityPolicy(
    subject="https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
    issuer=GITHUB_ISSUER,
)
BUNDLE_DIGEST = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"


def _cases() -> dict[str, Any]:
    index = VECTORS / "vectors.json"
    return json.loads(index.read_text()) if index.exists() else {}


CASES = _cases()


def read(case: str, name: str) -> str | None:
    path = VECTORS / case / name
    return path.read_text() if path.exists() else None


def payload(case: str) -> bytes:
    return (VECTORS / case / "payload.json").read_bytes()


def signed_digest(case: str) -> str:
    digest: str = json.loads(payload(case))["critical"]["image"]["docker-manifest-digest"]
    return digest


def sig_annotations(case: str) -> list[dict[str, str]]:
    """The case's ``.sig`` layer annotations as cosign wrote them (one dict per signature layer)."""
    manifest = read(case, "sig-manifest.json")
    if manifest is not None:
        return [layer["annotations"] for layer in json.loads(manifest)["layers"]]
    served = read(case, "annotations.json")
    if served is not None:
        return [json.loads(served)["annotations"]]
    annotations = {SIGNATURE_ANNOTATION: (read(case, "signature.b64") or "").strip()}
    for name, annotation in (
        ("bundle.json", BUNDLE_ANNOTATION),
        ("cert.pem", CERTIFICATE_ANNOTATION),
        ("chain.pem", CHAIN_ANNOTATION),
    ):
        text = read(case, name)
        if text is not None:
            annotations[annotation] = text
    return [annotations]


def case_key(case: str, name: str = "key") -> TrustedKey:
    return load_public_key((VECTORS / case / f"{name}.pub").read_text(), name)


def rekor_keys(case: str) -> tuple[TrustedKey, ...]:
    text = read(case, "rekor.pub")
    return (load_public_key(text, "rekor"),) if text else ()


def key_options(case: str, **overrides: Any) -> VerificationOptions:
    """The case's key; its Rekor key (then a log entry is required), as a policy with ``rekor.pubkey``."""
    rekor = rekor_keys(case)
    settings: dict[str, Any] = {
        "attestors": (KeyAttestor(name="key", keys=(case_key(case),)),),
        "rekor_keys": rekor,
        "ignore_tlog": False if rekor else None,
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


def keyless_options(case: str, **overrides: Any) -> VerificationOptions:
    """The signer's identity, the shipped public-good root; SCTs required unless the vector has none."""
    settings: dict[str, Any] = {
        "attestors": (KeylessAttestor(name="keyless", identities=(KEYLESS_IDENTITIES[case],)),),
        "ignore_sct": case in NO_SCT,
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


PKI = "ci-byo-pki-rsa4096"


def pki_options(**overrides: Any) -> VerificationOptions:
    """The own-PKI vector's chain; a private CA logs nowhere, so cosign verifies it with
    ``--insecure-ignore-tlog --insecure-ignore-sct``."""
    chain = (read(PKI, "pki-intermediate.pem") or "") + (read(PKI, "pki-root.pem") or "")
    settings: dict[str, Any] = {
        "attestors": (CertificateAttestor(name="team-a", chain=chain),),
        "ignore_tlog": True,
        "ignore_sct": True,
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


def bundle_options(**overrides: Any) -> VerificationOptions:
    """The cosign 3 bundle vector's signer (a GitHub release workflow) and its trusted root."""
    settings: dict[str, Any] = {
        "attestors": (KeylessAttestor(name="release", identities=(BUNDLE_IDENTITY,)),),
        "trusted_root": load_trusted_root(VECTORS / BUNDLE_CASE / "trusted_root.json"),
    }
    settings.update(overrides)
    return VerificationOptions(**settings)


def bundle_content() -> bytes:
    return (VECTORS / BUNDLE_CASE / "bundle.sigstore.json").read_bytes()


@dataclass(frozen=True)
class Expectation:
    """What a correct verifier concludes for a case: the options, the verdict, and for a negative the
    reason it must give (a substring of its one rejection)."""

    options: VerificationOptions
    verified: bool
    reason: str | None = None

    def check(self, outcome: VerificationOutcome) -> None:
        """Assert that ``outcome`` is this verdict: every attestor matched, or every rejection gives the
        stated reason."""
        if self.verified:
            assert isinstance(outcome, Verified), outcome.reason
            assert len(outcome.matched_attestors) == len(self.options.attestors)
        else:
            assert isinstance(outcome, Invalid), outcome.reason
            assert self.reason is not None
            assert all(self.reason in reason for reason in outcome.reasons), outcome.reasons


def expectation(case: str) -> Expectation:
    """The verdict ``vectors.json`` states for ``case``, with the options a user would verify it with."""
    meta = CASES[case]
    kind = meta["kind"]
    if kind in ("key", "key+rekor-bundle"):
        names = sorted(path.stem for path in (VECTORS / case).glob("key*.pub"))
        signers = [name for name in names if "NOT-A-SIGNER" not in name]
        attestors = tuple(KeyAttestor(name=name, keys=(case_key(case, name),)) for name in signers)
        rekor = rekor_keys(case)
        options = VerificationOptions(
            attestors=attestors,
            threshold=len(attestors),
            rekor_keys=rekor,
            ignore_tlog=False if rekor else None,
        )
        if meta["expect"] == "rejected":
            return Expectation(options, False, "does not verify with any trusted key")
        return Expectation(options, True)
    if kind == "keyless":
        if meta["expect"] == "rejected":
            return Expectation(
                keyless_options(case), False, "bundle.SignedEntryTimestamp is not valid base64"
            )
        return Expectation(keyless_options(case), True)
    if kind == "certificate-chain":
        return Expectation(pki_options(), True)
    if kind == "sigstore-bundle-v0.3":
        return Expectation(bundle_options(), True)
    raise ValueError(f"{case}: vector kind {kind!r} has no expectation here; add one")
