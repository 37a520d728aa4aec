"""Every field the policy parser accepts changes what trustwatch does, or is refused at load.

The parser's accepted fields are collected by recording every key it asks a policy for (present or not)
while parsing documents that hold every container; each must appear below, either with a variant of a
base policy that changes the decisions trustwatch takes on a fixed set of admission requests (through the
real engine and the real attestor logic over signatures made with real keys), or as a field accepted only
with the value that asks for what trustwatch does anyway, every other value being a load error. A field
added to the parser without a proven effect fails this test.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client import CollectorRegistry

from exporter.admission.cache import Lookup
from exporter.admission.engine import AdmissionConfig, AdmissionEngine
from exporter.admission.review import parse_review
from exporter.admission.verifier import Decide, ImageOutcome, judge
from exporter.cosign.formats.legacy import SIMPLE_SIGNING_MEDIA_TYPE
from exporter.cosign.found import FoundArtifact, FoundArtifacts
from exporter.metrics import ServiceMetrics
from exporter.policy import PolicyLoadError, fields
from exporter.policy.model import ImageVerification
from exporter.policy.parse import parse_policy
from exporter.registry.reference import ImageReference, parse_reference
from exporter.sigstore import TrustedRoot, parse_trusted_root
from tests.support.admission import review_body, workload
from tests.support.artifacts import artifact, found, sig_layer
from tests.support.registry import generate_signing_key, public_pem
from tests.support.sigstore_box import GITHUB_ISSUER, GitHubWorkflow, Identity, SigstoreBox, pem
from tests.test_policy_builders import load

KEY_A, KEY_B = generate_signing_key(), generate_signing_key()
PEM_A, PEM_B = public_pem(KEY_A), public_pem(KEY_B)
NAMESPACE_LABELS = {"prod": {"tier": "critical"}, "dev": {"tier": "low"}}
DIGEST = "sha256:" + "ab" * 32

Doc = dict[str, Any]

# Keyless signers on "signed" images: one logged in Rekor, one logged nowhere, one timestamped by the TSA.
LOGGED = Identity("logged@example.com", GITHUB_ISSUER, github=GitHubWorkflow(trigger="push"))
UNLOGGED = Identity("unlogged@example.com", GITHUB_ISSUER)
STAMPED = Identity("stamped@example.com", GITHUB_ISSUER)


@functools.cache
def box() -> SigstoreBox:
    return SigstoreBox("policy-fields")


@functools.cache
def rogue_chain() -> str:
    """A Fulcio chain nobody here signs under."""
    return SigstoreBox("policy-fields rogue", now=box().now).chain_pem


@functools.cache
def logs_root() -> TrustedRoot:
    """The box's Fulcio CA and Rekor logs only: the CT log and TSA keys must come from the policy's ctlog."""
    document = box().trusted_root()
    document["ctlogs"], document["timestampAuthorities"] = [], []
    return parse_trusted_root(json.dumps(document).encode(), "policy-fields root")


def _public_pem(key: Any) -> str:
    return str(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode())


def rekor_pem() -> str:
    return box().rekor_public_pem


def ctlog_pem() -> str:
    return _public_pem(box().ct_log.key.public_key())


def tsa_chain() -> str:
    return pem(box().tsa.certificate) + pem(box().tsa.root)


@functools.cache
def keyless_layers(digest: str, repository: str) -> tuple[FoundArtifact, ...]:
    signed = (
        box().legacy_signature(digest, repository, LOGGED),
        box().legacy_signature(digest, repository, UNLOGGED, log="none"),
        box().legacy_signature(digest, repository, STAMPED, log="none", timestamp=True),
    )
    return tuple(
        artifact("sig-tag", item.layer.payload, SIMPLE_SIGNING_MEDIA_TYPE, item.annotations)
        for item in signed
    )


class JudgingVerifier:
    """The engine's verifier with the real attestor logic: images whose repository contains ``signed``
    carry a signature by KEY_A and the keyless signatures of :func:`keyless_layers` (their signatures are
    looked for in the rule's ``repository`` when it names one); ``slow`` images take longer than any
    deadline here. Certificates and keyless identities are judged with :func:`logs_root`."""

    def __init__(self) -> None:
        self.cached_calls = 0
        self.verify_calls = 0

    def cached(self, policy_version: str, rule: str, index: int, image: str) -> ImageOutcome | None:
        self.cached_calls += 1
        return None

    async def verify(
        self, policy_version: str, rule: str, index: int, verification: ImageVerification, image: str
    ) -> tuple[ImageOutcome, Lookup]:
        self.verify_calls += 1
        reference, signatures = await self._signatures(image, verification.repository)
        return judge(signatures, verification, reference.canonical, logs_root()), "miss"

    async def verify_decided(
        self,
        policy_version: str,
        slot: str,
        image: str,
        path: str,
        decide: Decide,
        *,
        signature_repository: str | None = None,
        tag_prefix: str = "",
    ) -> tuple[ImageOutcome, Lookup]:
        """The same signatures, judged by ``decide`` (ImageValidatingPolicy attestors). ``tag_prefix`` does
        not matter: the signatures are made here, not looked up by tag."""
        self.verify_calls += 1
        reference, signatures = await self._signatures(image, signature_repository)
        return decide(signatures, reference.canonical, logs_root()), "miss"

    async def _signatures(self, image: str, repository: str | None) -> tuple[ImageReference, FoundArtifacts]:
        """The image and what a registry would hold for it, with its signatures in ``repository`` if set."""
        reference = parse_reference(image)
        if "slow" in reference.repository:
            await asyncio.sleep(5)
        digest = reference.digest or "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        where = parse_reference(repository) if repository else reference
        signed = "signed" in where.repository and "unsigned" not in where.repository
        layers: list[FoundArtifact] = []
        if signed:
            layers = [sig_layer(KEY_A, digest, reference.repository_path)]
            layers += keyless_layers(digest, reference.repository_path)
        return reference, found(reference.with_digest(digest), digest, *layers)


def _labelled(obj: Doc, **annotations: str) -> Doc:
    obj["metadata"]["labels"] = {"app": "web"}
    obj["metadata"]["annotations"] = annotations
    return obj


def _requests() -> dict[str, bytes]:
    signed, unsigned = "ghcr.io/acme/signed:1", "ghcr.io/acme/unsigned:1"
    old = workload("Pod", "web", "prod", signed)
    return {
        "pod-prod-signed": review_body(_labelled(workload("Pod", "web", "prod", signed), team="a")),
        "pod-prod-unsigned": review_body(_labelled(workload("Pod", "web", "prod", unsigned), team="a")),
        "pod-dev-unsigned": review_body(workload("Pod", "web", "dev", unsigned)),
        "pod-dev-debug": review_body(workload("Pod", "web", "dev", "ghcr.io/acme/debug:1")),
        "pod-prod-pinned": review_body(workload("Pod", "web", "prod", f"ghcr.io/acme/unsigned@{DIGEST}")),
        "pod-batch": review_body(workload("Pod", "batch", "prod", unsigned)),
        "pod-update": review_body(workload("Pod", "web", "prod", unsigned), operation="UPDATE", old=old),
        "deployment": review_body(workload("Deployment", "web", "prod", unsigned)),
        "cronjob": review_body(workload("CronJob", "web", "prod", unsigned)),
    }


REQUESTS = _requests()
SLOW = review_body(workload("Pod", "web", "prod", "ghcr.io/acme/slow:1"))


def behaviour(document: Doc, slow: bool = False) -> Any:
    """What trustwatch does with ``document`` as its only policy: every decision on the fixed requests
    (both webhooks), and how often the verifier and its cache were asked."""
    policies = [load(document)]
    verifier = JudgingVerifier()
    engine = AdmissionEngine(
        lambda: policies,
        verifier,
        ServiceMetrics(CollectorRegistry()),
        config=AdmissionConfig(timeout=1.6),
        namespace_labels=lambda namespace: NAMESPACE_LABELS.get(namespace, {}),
    )

    async def run() -> list[Any]:
        seen = []
        for body in [SLOW] if slow else REQUESTS.values():
            for webhook in ("mutate", "validate"):
                decision = await engine.review(webhook, parse_review(body))
                response = decision.response
                seen.append(
                    (
                        response.allowed,
                        response.message,
                        tuple(response.warnings),
                        json.dumps(response.patch),
                        tuple(
                            (r.policy.name, r.rule, r.status, r.action, r.message) for r in decision.results
                        ),
                    )
                )
        return seen

    decisions = asyncio.run(run())
    return decisions, verifier.cached_calls, verifier.verify_calls


def base_policy() -> Doc:
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "validationFailureAction": "Audit",
            "failurePolicy": "Fail",
            "rules": [
                {
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": ["ghcr.io/acme/*"],
                            "attestors": [{"entries": [{"keys": {"publicKeys": PEM_A}}]}],
                        }
                    ],
                }
            ],
        },
    }


def _rule(doc: Doc) -> Doc:
    rule: Doc = doc["spec"]["rules"][0]
    return rule


def _entry(doc: Doc) -> Doc:
    entry: Doc = _rule(doc)["verifyImages"][0]
    return entry


def _keys(doc: Doc) -> Doc:
    keys: Doc = _entry(doc)["attestors"][0]["entries"][0]["keys"]
    return keys


def _resources(doc: Doc) -> Doc:
    resources: Doc = _rule(doc)["match"]["any"][0]["resources"]
    return resources


def _with(path: Callable[[Doc], Doc], **values: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        path(doc).update(values)

    return change


def _spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]
    return spec


def _match(doc: Doc) -> Doc:
    match: Doc = _rule(doc)["match"]
    return match


def _two_filters(doc: Doc) -> None:
    _match(doc)["any"] = [
        {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}},
        {"resources": {"kinds": ["Pod"], "namespaces": ["dev"]}},
    ]


def _only_prod(doc: Doc) -> None:
    _match(doc)["any"] = [{"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}]


def _all_filters(doc: Doc) -> None:
    _match(doc).pop("any")
    _match(doc)["all"] = [
        {"resources": {"kinds": ["Pod"]}},
        {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}},
    ]


def _legacy_resources(doc: Doc) -> None:
    _match(doc).pop("any")
    _match(doc)["resources"] = {"kinds": ["Pod"], "namespaces": ["prod"]}


def _exclude_prod(doc: Doc) -> None:
    _rule(doc)["exclude"] = {"any": [{"resources": {"namespaces": ["prod"]}}]}


def _expression(**changes: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        expression = {"key": "tier", "operator": "In", "values": ["critical"], **changes}
        if expression["operator"] in ("Exists", "DoesNotExist"):
            expression.pop("values")
        _resources(doc)["namespaceSelector"] = {"matchExpressions": [expression]}

    return change


def _override(**override: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        _spec(doc)["validationFailureActionOverrides"] = [override]

    return change


def _legacy_image(doc: Doc) -> None:
    entry = _entry(doc)
    entry.pop("imageReferences")
    entry["image"] = "ghcr.io/acme/s*"


def _legacy_key(doc: Doc) -> None:
    entry = _entry(doc)
    entry.pop("attestors")
    entry["imageReferences"] = ["ghcr.io/acme/*"]
    entry["key"] = PEM_B


def _secret(name: str, namespace: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        keys = _keys(doc)
        keys.pop("publicKeys", None)
        keys["secret"] = {"name": name, "namespace": namespace}

    return change


def _both(*changes: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        for each in changes:
            each(doc)

    return change


def _set_entries(*pems: str, count: int | None = None) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        attestor: Doc = {"entries": [{"keys": {"publicKeys": pem}} for pem in pems]}
        if count is not None:
            attestor["count"] = count
        _entry(doc)["attestors"] = [attestor]

    return change


def _signer_entry(kind: str, **fields: Any) -> Callable[[Doc], None]:
    """Replace the attestors by one ``kind`` entry (keyless or certificates) with ``fields``; None drops one.

    The defaults verify the "signed" images' Rekor-logged keyless signature under :func:`logs_root`.
    ``rekor.pubkey`` ``PEM_B`` is a log that logged nothing here; ``ELSEWHERE`` is no log of the root.
    """

    def change(doc: Doc) -> None:
        if kind == "keyless":
            entry: Doc = {"subject": LOGGED.san, "issuer": GITHUB_ISSUER}
        else:
            entry = {"certChain": box().chain_pem}
        entry |= {"rekor": {"pubkey": rekor_pem()}, "ctlog": {"pubkey": ctlog_pem()}}
        entry |= fields
        _entry(doc)["attestors"] = [
            {"entries": [{kind: {key: value for key, value in entry.items() if value is not None}}]}
        ]

    return change


def _signer_effects(kind: str) -> dict[str, Effect]:
    """The rekor/ctlog settings both certificate kinds share, each shown to decide a verification."""
    at = f"spec.rules.verifyImages.attestors.entries.{kind}"
    # keyless identities pick one of the three signatures; a certificate chain accepts all three
    unlogged = {"subject": UNLOGGED.san} if kind == "keyless" else {}
    stamped = {"subject": STAMPED.san} if kind == "keyless" else {}
    no_ctlog_key = _signer_entry(kind, ctlog=None)
    untrusted_log = {"pubkey": PEM_B}  # the logged signature does not count
    return {
        f"{at}.rekor": (_signer_entry(kind, rekor=None), _signer_entry(kind, rekor={"pubkey": PEM_B}), False),
        f"{at}.rekor.pubkey": (
            _signer_entry(kind, rekor={}),
            _signer_entry(kind, rekor={"pubkey": PEM_B}),
            False,
        ),
        f"{at}.rekor.url": (
            _signer_entry(kind, rekor={"url": box().rekor.base_url + "/"}),
            _signer_entry(kind, rekor={"url": ELSEWHERE}),
            False,
        ),
        f"{at}.rekor.ignoreTlog": (
            _signer_entry(kind, rekor=untrusted_log, **unlogged),
            _signer_entry(kind, rekor={**untrusted_log, "ignoreTlog": True}, **unlogged),
            False,
        ),
        f"{at}.ctlog": (no_ctlog_key, _signer_entry(kind), False),
        f"{at}.ctlog.pubkey": (
            _signer_entry(kind, ctlog={}),
            _signer_entry(kind, ctlog={"pubkey": ctlog_pem()}),
            False,
        ),
        f"{at}.ctlog.ignoreSCT": (no_ctlog_key, _signer_entry(kind, ctlog={"ignoreSCT": True}), False),
        f"{at}.ctlog.tsaCertChain": (
            _signer_entry(kind, rekor=untrusted_log, **stamped),
            _signer_entry(
                kind,
                rekor=untrusted_log,
                ctlog={"pubkey": ctlog_pem(), "tsaCertChain": tsa_chain()},
                **stamped,
            ),
            False,
        ),
    }


_ENFORCE = _with(_spec, validationFailureAction="Enforce")
_SECRET = _secret("cosign", "keys")
_REKOR = _with(_keys, rekor={"pubkey": PEM_B})
ELSEWHERE = "https://rekor.elsewhere.test"

# field -> (change to the base policy that sets it up, change that must alter behaviour, slow request)
Effect = tuple[Callable[[Doc], None] | None, Callable[[Doc], None], bool]
EFFECTS: dict[str, Effect] = {
    "kind": (
        None,
        _both(_with(lambda d: d, kind="Policy"), _with(lambda d: d["metadata"], namespace="prod")),
        False,
    ),
    "metadata": (None, _with(lambda d: d["metadata"], name="renamed"), False),
    "metadata.name": (None, _with(lambda d: d["metadata"], name="renamed"), False),
    "metadata.namespace": (
        _both(_with(lambda d: d, kind="Policy"), _with(lambda d: d["metadata"], namespace="prod")),
        _with(lambda d: d["metadata"], namespace="dev"),
        False,
    ),
    "metadata.annotations": (
        None,
        _with(lambda d: d["metadata"], annotations={"pod-policies.kyverno.io/autogen-controllers": "none"}),
        False,
    ),
    "spec": (None, _ENFORCE, False),
    "spec.admission": (None, _with(_spec, admission=False), False),
    "spec.emitWarning": (None, _with(_spec, emitWarning=True), False),
    "spec.failurePolicy": (_both(_ENFORCE, _SECRET), _with(_spec, failurePolicy="Ignore"), False),
    "spec.validationFailureAction": (None, _ENFORCE, False),
    "spec.validationFailureActionOverrides": (None, _override(action="Enforce", namespaces=["prod"]), False),
    "spec.validationFailureActionOverrides.action": (
        _override(action="Audit", namespaces=["prod"]),
        _override(action="Enforce", namespaces=["prod"]),
        False,
    ),
    "spec.validationFailureActionOverrides.namespaces": (
        _override(action="Enforce", namespaces=["dev"]),
        _override(action="Enforce", namespaces=["prod"]),
        False,
    ),
    "spec.validationFailureActionOverrides.namespaceSelector": (
        _override(action="Enforce", namespaces=["*"]),
        _override(action="Enforce", namespaces=["*"], namespaceSelector={"matchLabels": {"tier": "low"}}),
        False,
    ),
    "spec.webhookTimeoutSeconds": (None, _with(_spec, webhookTimeoutSeconds=1), True),
    "spec.webhookConfiguration": (None, _with(_spec, webhookConfiguration={"timeoutSeconds": 1}), True),
    "spec.webhookConfiguration.timeoutSeconds": (
        None,
        _with(_spec, webhookConfiguration={"timeoutSeconds": 1}),
        True,
    ),
    "spec.webhookConfiguration.failurePolicy": (
        _both(_ENFORCE, _SECRET),
        _with(_spec, webhookConfiguration={"failurePolicy": "Ignore"}),
        False,
    ),
    "spec.rules": (
        None,
        lambda d: _spec(d)["rules"].append({**copy.deepcopy(_rule(d)), "name": "second"}),
        False,
    ),
    "spec.rules.name": (None, _with(_rule, name="renamed"), False),
    "spec.rules.match": (None, _only_prod, False),
    "spec.rules.exclude": (None, _exclude_prod, False),
    "block.any": (_only_prod, _two_filters, False),
    "block.any.resources": (None, _only_prod, False),
    "block.all": (None, _all_filters, False),
    "block.all.resources": (None, _all_filters, False),
    "block.resources": (None, _legacy_resources, False),
    "resources.kinds": (None, _with(_resources, kinds=["Deployment"]), False),
    "resources.names": (None, _with(_resources, names=["batch"]), False),
    "resources.name": (None, _with(_resources, name="batch"), False),
    "resources.namespaces": (None, _with(_resources, namespaces=["prod"]), False),
    "resources.selector": (None, _with(_resources, selector={"matchLabels": {"app": "web"}}), False),
    "resources.namespaceSelector": (
        None,
        _with(_resources, namespaceSelector={"matchLabels": {"tier": "critical"}}),
        False,
    ),
    "resources.operations": (None, _with(_resources, operations=["UPDATE"]), False),
    "resources.annotations": (None, _with(_resources, annotations={"team": "a"}), False),
    "selector.matchLabels": (
        None,
        _with(_resources, namespaceSelector={"matchLabels": {"tier": "low"}}),
        False,
    ),
    "selector.matchExpressions": (None, _expression(), False),
    "selector.matchExpressions.key": (_expression(), _expression(key="zone"), False),
    "selector.matchExpressions.operator": (_expression(), _expression(operator="NotIn"), False),
    "selector.matchExpressions.values": (_expression(), _expression(values=["low"]), False),
    "spec.rules.verifyImages": (
        None,
        lambda d: _rule(d)["verifyImages"].append({**copy.deepcopy(_entry(d)), "imageReferences": ["*"]}),
        False,
    ),
    "spec.rules.verifyImages.image": (None, _legacy_image, False),
    "spec.rules.verifyImages.key": (None, _legacy_key, False),
    "spec.rules.verifyImages.imageReferences": (
        None,
        _with(_entry, imageReferences=["ghcr.io/acme/s*"]),
        False,
    ),
    "spec.rules.verifyImages.skipImageReferences": (
        None,
        _with(_entry, skipImageReferences=["ghcr.io/acme/debug*"]),
        False,
    ),
    "spec.rules.verifyImages.attestors": (
        None,
        lambda d: _entry(d)["attestors"].append({"entries": [{"keys": {"publicKeys": PEM_B}}]}),
        False,
    ),
    "spec.rules.verifyImages.attestors.count": (
        _set_entries(PEM_A, PEM_B),
        _set_entries(PEM_A, PEM_B, count=1),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries": (None, _set_entries(PEM_B), False),
    "spec.rules.verifyImages.attestors.entries.keys": (None, _set_entries(PEM_B), False),
    "spec.rules.verifyImages.attestors.entries.keys.publicKeys": (
        None,
        _with(_keys, publicKeys=PEM_B),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keys.secret": (None, _SECRET, False),
    "spec.rules.verifyImages.attestors.entries.keys.secret.name": (_SECRET, _secret("other", "keys"), False),
    "spec.rules.verifyImages.attestors.entries.keys.secret.namespace": (
        _SECRET,
        _secret("cosign", "b"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keys.signatureAlgorithm": (
        None,
        _with(_keys, signatureAlgorithm="sha512"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keys.rekor": (None, _REKOR, False),
    "spec.rules.verifyImages.attestors.entries.keys.rekor.pubkey": (None, _REKOR, False),
    # A legacy key signature's log entry is checked when a URL names the log; no log of the root is there.
    "spec.rules.verifyImages.attestors.entries.keys.rekor.url": (
        _with(_keys, rekor={"url": box().rekor.base_url}),
        _with(_keys, rekor={"url": ELSEWHERE}),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keys.rekor.ignoreTlog": (
        _REKOR,
        _with(_keys, rekor={"pubkey": PEM_B, "ignoreTlog": True}),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless": (
        None,
        _signer_entry("keyless", subject="someone-else@example.com"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.subject": (
        _signer_entry("keyless"),
        _signer_entry("keyless", subject="someone-else@example.com"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.subjectRegExp": (
        _signer_entry("keyless", subject=None),
        _signer_entry("keyless", subject=None, subjectRegExp="^unlogged@"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.issuer": (
        _signer_entry("keyless"),
        _signer_entry("keyless", issuer="https://accounts.example.com"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.issuerRegExp": (
        _signer_entry("keyless", issuer=None),
        _signer_entry("keyless", issuer=None, issuerRegExp="gitlab"),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.additionalExtensions": (
        _signer_entry("keyless", additionalExtensions={"githubWorkflowTrigger": "push"}),
        _signer_entry("keyless", additionalExtensions={"githubWorkflowTrigger": "release"}),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.keyless.roots": (
        _signer_entry("keyless"),
        _signer_entry("keyless", roots=rogue_chain()),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.certificates": (
        None,
        _signer_entry("certificates", certChain=rogue_chain()),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.certificates.cert": (
        _signer_entry("certificates"),
        _signer_entry("certificates", cert=rogue_chain()),
        False,
    ),
    "spec.rules.verifyImages.attestors.entries.certificates.certChain": (
        _signer_entry("certificates"),
        _signer_entry("certificates", certChain=rogue_chain()),
        False,
    ),
    **_signer_effects("keyless"),
    **_signer_effects("certificates"),
    "spec.rules.verifyImages.repository": (
        None,
        _with(_entry, repository="ghcr.io/acme/signed-signatures"),
        False,
    ),
    # The signed images' key signature carries no annotations: requiring one makes it not count.
    "spec.rules.verifyImages.annotations": (None, _with(_entry, annotations={"env": "prod"}), False),
    "spec.rules.verifyImages.attestors.entries.annotations": (
        None,
        lambda d: _entry(d)["attestors"][0]["entries"][0].update(annotations={"env": "prod"}),
        False,
    ),
    "spec.rules.verifyImages.type": (None, _with(_entry, type="SigstoreBundle"), False),
    "spec.rules.verifyImages.cosignOCI11": (None, _with(_entry, cosignOCI11=True), False),
    "spec.rules.verifyImages.required": (None, _with(_entry, required=False), False),
    "spec.rules.verifyImages.verifyDigest": (None, _with(_entry, verifyDigest=False), False),
    "spec.rules.verifyImages.mutateDigest": (None, _with(_entry, mutateDigest=False), False),
    "spec.rules.verifyImages.useCache": (None, _with(_entry, useCache=False), False),
    "spec.rules.verifyImages.failureAction": (None, _with(_entry, failureAction="Enforce"), False),
    "spec.rules.verifyImages.attestations": (
        None,
        _with(
            _entry,
            attestations=[{"type": "vuln", "attestors": [{"entries": [{"keys": {"publicKeys": PEM_A}}]}]}],
        ),
        False,
    ),
}

# Fields accepted only with the value(s) that ask for what trustwatch does; the second value is refused.
FIXED: dict[str, tuple[Callable[[Doc], None], Callable[[Doc], None]]] = {
    "apiVersion": (
        _with(lambda d: d, apiVersion="kyverno.io/v2beta1"),
        _with(lambda d: d, apiVersion="kyverno.io/v2"),
    ),
    "spec.applyRules": (_with(_spec, applyRules="All"), _with(_spec, applyRules="One")),
    "spec.background": (_with(_spec, background=False), _with(_spec, background=True)),
    "spec.schemaValidation": (_with(_spec, schemaValidation=True), _with(_spec, schemaValidation=False)),
    "spec.useServerSideApply": (
        _with(_spec, useServerSideApply=False),
        _with(_spec, useServerSideApply=True),
    ),
    "spec.generateExisting": (_with(_spec, generateExisting=False), _with(_spec, generateExisting=True)),
    "spec.generateExistingOnPolicyUpdate": (
        _with(_spec, generateExistingOnPolicyUpdate=False),
        _with(_spec, generateExistingOnPolicyUpdate=True),
    ),
    "spec.mutateExistingOnPolicyUpdate": (
        _with(_spec, mutateExistingOnPolicyUpdate=False),
        _with(_spec, mutateExistingOnPolicyUpdate=True),
    ),
    "spec.rules.skipBackgroundRequests": (
        _with(_rule, skipBackgroundRequests=True),
        _with(_rule, skipBackgroundRequests=False),
    ),
}
# Written by Kyverno into the objects it serves (``kubectl get -o yaml``), never read as policy input.
OUTPUT_ONLY = {"status"}

_NORMALISE = (
    (re.compile(r"\[\]"), ""),
    (re.compile(r"^.*(?:selector|Selector)\.(match\w+)"), r"selector.\1"),
    (
        re.compile(r"^spec\.rules\.(?:match|exclude)\.(?:any\.resources|all\.resources|resources)\.(?=\w)"),
        "resources.",
    ),
    (re.compile(r"^spec\.rules\.(?:match|exclude)\.(any|all|resources)"), r"block.\1"),
)


def normalise(path: str) -> str:
    """One name per field, whatever list index or block (match/exclude, any/all/legacy) it sits in."""
    for pattern, replacement in _NORMALISE:
        path = pattern.sub(replacement, path)
    return path


@pytest.fixture
def accepted(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Every field the parser asks a policy for, while parsing documents holding every container."""
    asked: set[str] = set()
    raw = fields.Fields.raw

    def recording(self: fields.Fields, key: str) -> Any:
        asked.add(normalise(re.sub(r"\[\d+\]", "[]", self.at(key))))
        return raw(self, key)

    monkeypatch.setattr(fields.Fields, "raw", recording)
    selector = {
        "matchLabels": {"a": "b"},
        "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}],
    }
    resources = {"kinds": ["Pod"], "namespaces": ["n"], "selector": selector, "namespaceSelector": selector}
    full = base_policy()
    full["kind"], full["metadata"]["namespace"] = "Policy", "n"
    full["spec"]["validationFailureActionOverrides"] = [
        {"action": "Enforce", "namespaces": ["x"], "namespaceSelector": selector}
    ]
    full["spec"]["webhookConfiguration"] = {"timeoutSeconds": 3}
    rule = _rule(full)
    rule["match"] = {"all": [{"resources": resources}]}
    rule["exclude"] = {"any": [{"resources": resources}]}
    _entry(full)["attestors"] = [
        {
            "count": 1,
            "entries": [
                {"keys": {"publicKeys": PEM_A, "rekor": {"pubkey": PEM_B}}},
                {"keys": {"secret": {"name": "a", "namespace": "b"}}},
            ],
        }
    ]
    parse_policy(full)
    signers = base_policy()
    _entry(signers).update(repository="ghcr.io/acme/signatures", type="SigstoreBundle", cosignOCI11=True)
    logs = {"rekor": {"pubkey": PEM_B, "ignoreTlog": True}, "ctlog": {"pubkey": PEM_B, "ignoreSCT": True}}
    logs["ctlog"]["tsaCertChain"] = tsa_chain()
    keyless = {
        "subject": "a",
        "subjectRegExp": "b",
        "issuer": "c",
        "issuerRegExp": "d",
        "additionalExtensions": {"githubWorkflowTrigger": "push"},
        "roots": box().chain_pem,
        **logs,
    }
    certificates = {"cert": pem(box().fulcio.chain[0]), "certChain": box().chain_pem, **logs}
    _entry(signers)["attestors"] = [{"entries": [{"keyless": keyless}, {"certificates": certificates}]}]
    parse_policy(signers)
    legacy = base_policy()
    _legacy_key(legacy)
    _match(legacy).pop("any")
    _match(legacy)["resources"] = {"kinds": ["Pod"], "name": "x"}
    parse_policy(legacy)
    monkeypatch.undo()
    yield asked


def test_every_accepted_field_is_accounted_for(accepted: set[str]) -> None:
    assert accepted == set(EFFECTS) | set(FIXED) | OUTPUT_ONLY


@pytest.mark.parametrize("field", sorted(EFFECTS))
def test_the_field_changes_behaviour(field: str) -> None:
    setup, change, slow = EFFECTS[field]
    base = base_policy()
    if setup is not None:
        setup(base)
    variant = copy.deepcopy(base)
    change(variant)
    assert variant != base
    assert behaviour(base, slow) != behaviour(variant, slow), f"{field} made no difference"


@pytest.mark.parametrize("field", sorted(FIXED))
def test_the_field_is_accepted_only_with_the_value_trustwatch_matches(field: str) -> None:
    accepted_value, refused_value = FIXED[field]
    base = base_policy()
    accepted_value(base)
    assert behaviour(base) == behaviour(base_policy())
    refused = base_policy()
    refused_value(refused)
    with pytest.raises(PolicyLoadError):
        load(refused)
