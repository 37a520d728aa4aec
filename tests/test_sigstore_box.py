"""The Sigstore in a box is right: sigstore-python accepts what it signs, and rejects each negative for the
reason the negative is about. Other tests build on the box, so a wrong box would prove nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.reference_verifier import ReferenceOutcome, reference_verify
from tests.support.sigstore_box import (
    BUNDLE_V03,
    GitHubWorkflow,
    Identity,
    SignedBundle,
    SigstoreBox,
)

WORKFLOW = GitHubWorkflow(repository="example/app", ref="refs/tags/v1.2.3")
CI = Identity(
    "https://github.com/example/app/.github/workflows/release.yml@refs/tags/v1.2.3", github=WORKFLOW
)
PERSON = Identity("alice@example.com", "https://accounts.example.com")
IMAGE = "sha256:" + hashlib.sha256(b"the image manifest").hexdigest()
OTHER_IMAGE = "sha256:" + hashlib.sha256(b"another image manifest").hexdigest()
ARTIFACT = b"a release tarball"


@pytest.fixture(scope="module")
def root(sigstore_box: SigstoreBox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sigstore_box.write_trusted_root(tmp_path_factory.mktemp("box") / "trusted_root.json")


def check(signed: SignedBundle, root: Path, who: Identity = CI, **kwargs: object) -> ReferenceOutcome:
    if signed.document.get("messageSignature") is not None:
        kwargs.setdefault("artifact", ARTIFACT)
    else:
        kwargs.setdefault("subject_digest", IMAGE)
    return reference_verify(signed.json, root, identity=who.san, issuer=who.issuer, **kwargs)  # type: ignore[arg-type]


# Rekor v2 entries carry no time of their own: they always come with a TSA timestamp.
PROOFS = [("rekor-v1", False), ("rekor-v1", True), ("rekor-v2", True)]


@pytest.mark.parametrize(("log", "timestamp"), PROOFS)
@pytest.mark.parametrize("who", [CI, PERSON], ids=["github-uri", "email"])
def test_sigstore_python_accepts_message_signature_bundles(
    sigstore_box: SigstoreBox, root: Path, log: str, timestamp: bool, who: Identity
) -> None:
    signed = sigstore_box.message_bundle(ARTIFACT, who, log=log, timestamp=timestamp)  # type: ignore[arg-type]
    assert signed.media_type == BUNDLE_V03
    outcome = check(signed, root, who, github=who.github)
    assert outcome.accepted, outcome.reason


@pytest.mark.parametrize(("log", "timestamp"), PROOFS)
def test_sigstore_python_accepts_dsse_image_bundles(
    sigstore_box: SigstoreBox, root: Path, log: str, timestamp: bool
) -> None:
    signed = sigstore_box.image_bundle(IMAGE, CI, log=log, timestamp=timestamp)  # type: ignore[arg-type]
    outcome = check(signed, root, github=WORKFLOW)
    assert outcome.accepted, outcome.reason
    assert outcome.payload_type == "application/vnd.in-toto+json"
    assert outcome.payload is not None and IMAGE.removeprefix("sha256:").encode() in outcome.payload
