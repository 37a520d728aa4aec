"""sigstore-python as the reference verifier for keyless Sigstore bundles, offline.

Why: our own verifier must agree with the field's. Every keyless bundle a test verifies can be handed to
``reference_verify`` with the same trusted root and identity; it runs ``sigstore.verify.Verifier`` built
from that ``trusted_root.json`` (no TUF, no network) and says whether it accepted, and if not, why.

sigstore-python checks the signature, chain, SCT, log entry (SET, inclusion proof, checkpoint, body),
the signing time and the identity; it does not look inside a DSSE payload. For image bundles pass
``subject_digest``: the in-toto statement's subject must then name that digest, as cosign requires.

sigstore-python cannot verify key-signed bundles or legacy ``.sig`` signatures; for those,
``reference_verify_log_entry`` runs its log-entry checks alone (inclusion proof, signed checkpoint, and the
SET when there is one) through its internal API.

Usage::

    outcome = reference_verify(signed.json, root_path, identity=who.san, issuer=who.issuer,
                               subject_digest=image_digest)          # DSSE bundle
    outcome = reference_verify(signed.json, root_path, identity=..., issuer=..., artifact=blob)
    assert outcome.accepted, outcome.reason
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import Error as SigstoreError
from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier, policy
from sigstore_models.rekor.v1 import TransparencyLogEntry as EntryMessage

from tests.support.sigstore_box import GitHubWorkflow


@dataclass(frozen=True)
class ReferenceOutcome:
    """``accepted``, or the reason sigstore-python (or the subject check) gave for rejecting."""

    accepted: bool
    reason: str = ""
    payload_type: str | None = None
    payload: bytes | None = None


def identity_policy(
    identity: str, issuer: str, github: GitHubWorkflow | None = None
) -> policy.VerificationPolicy:
    """Exact SAN and issuer (sigstore-python reads the issuer from 1.3.6.1.4.1.57264.1.1), plus GitHub's."""
    checks: list[policy.VerificationPolicy] = [policy.Identity(identity=identity, issuer=issuer)]
    if github is not None:
        checks += [
            policy.GitHubWorkflowTrigger(github.trigger),
            policy.GitHubWorkflowSHA(github.sha),
            policy.GitHubWorkflowName(github.name),
            policy.GitHubWorkflowRepository(github.repository),
            policy.GitHubWorkflowRef(github.ref),
        ]
    return policy.AllOf(checks)


def reference_verify(
    bundle: bytes | str,
    trusted_root: Path,
    *,
    identity: str,
    issuer: str,
    github: GitHubWorkflow | None = None,
    artifact: bytes | None = None,
    subject_digest: str | None = None,
) -> ReferenceOutcome:
    """Verify a keyless bundle like ``sigstore verify identity --offline --trusted-root``.

    A message-signature bundle needs ``artifact``; a DSSE bundle is verified as such (and its in-toto
    subject checked against ``subject_digest`` when given).
    """
    try:
        verifier = Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
        parsed = Bundle.from_json(bundle)
        checks = identity_policy(identity, issuer, github)
        if artifact is not None:
            verifier.verify_artifact(artifact, parsed, checks)
            return ReferenceOutcome(True)
        payload_type, payload = verifier.verify_dsse(parsed, checks)
    except SigstoreError as error:
        return ReferenceOutcome(False, str(error))
    if subject_digest is not None:
        reason = subject_mismatch(payload, subject_digest)
        if reason:
            return ReferenceOutcome(False, reason, payload_type, payload)
    return ReferenceOutcome(True, "", payload_type, payload)


def subject_mismatch(payload: bytes, image_digest: str) -> str:
    """Why an in-toto statement is not about ``image_digest`` ("" when one of its subjects is)."""
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        algorithm, _, value = image_digest.partition(":")
        if any(s.get("digest", {}).get(algorithm) == value for s in subjects):
            return ""
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return f"payload is not an in-toto statement: {error!r}"
    return f"statement subject does not name {image_digest}"


def reference_verify_log_entry(entry: dict[str, Any], trusted_root: Path) -> ReferenceOutcome:
    """sigstore-python's checks of one bundle ``tlogEntries`` item against the trusted root's Rekor keys."""
    try:
        keyring = TrustedRoot.from_file(str(trusted_root)).rekor_keyring(KeyringPurpose.VERIFY)
        TransparencyLogEntry(EntryMessage.from_json(json.dumps(entry)))._verify(keyring)
    except (SigstoreError, ValueError) as error:
        return ReferenceOutcome(False, str(error))
    return ReferenceOutcome(True)
