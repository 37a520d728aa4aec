"""ImageValidatingPolicies at admission: plan, verify (async, cached), then evaluate the CEL.

The one adapter between the CEL policies and the verification layer lives here: each (image, attestor) and
(image, attestor, attestation) check is a decision of the signature pipeline (``verify_found`` /
``verify_found_attestations`` with the attestor's options) run through
:meth:`exporter.admission.verifier.ImageVerifier.verify_decided`, so both policy kinds share its
single-flight cache, digest resolution, discovery, metrics and deadline handling. The cache slot names the
attestor (``attestor:<name>``, ``attestation:<attestation>:<attestor>``) under the policy's content
version, so an edited policy never reuses an old outcome.

Imported only when a policy set holds an ImageValidatingPolicy, which keeps the CEL engine out of
processes that never need it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exporter.admission.cache import Lookup
from exporter.admission.messages import IMAGE_VERIFIED, verification_failed
from exporter.admission.verifier import SIGNATURES_UNREADABLE, Decide, ImageOutcome
from exporter.cosign import VerificationError, VerificationOptions, VerificationOutcome, Verified
from exporter.cosign.found import FoundArtifacts
from exporter.cosign.pipeline import verify_found, verify_found_attestations
from exporter.ivp.evaluate import (
    Outcome,
    Prepared,
    SignatureOutcome,
    VerificationKey,
    conclude,
    conclusion_key,
    prepare,
)
from exporter.ivp.match import RequestAttributes, applicable
from exporter.ivp.model import Attestation, CosignAttestor, ImageValidatingPolicy
from exporter.sigstore import TrustedRoot

if TYPE_CHECKING:
    from exporter.admission.engine import Verifier
    from exporter.admission.review import AdmissionRequest

log = logging.getLogger(__name__)

CountVerification = Callable[[ImageValidatingPolicy, str, ImageOutcome, Lookup], None]


def _options(attestor: CosignAttestor, trusted_root: TrustedRoot | None) -> VerificationOptions:
    """The attestor's options; without a ``trustedRoot`` of its own it trusts the root trustwatch runs with
    (``--trusted-root``), as ClusterPolicy keyless and certificate attestors do."""
    if attestor.options.trusted_root is None and trusted_root is not None:
        return dataclasses.replace(attestor.options, trusted_root=trusted_root)
    return attestor.options


def signature_decision(attestor: CosignAttestor) -> Decide:
    """How an attestor decides on an image's signatures (the signature pipeline, no I/O)."""

    def decide(found: FoundArtifacts, display: str, trusted_root: TrustedRoot | None) -> ImageOutcome:
        return _image_outcome(verify_found(found, _options(attestor, trusted_root)), attestor.name, display)

    return decide


def attestation_decision(attestor: CosignAttestor, attestation: Attestation) -> Decide:
    """How an attestor decides on an image's attestations of one predicate type."""

    def decide(found: FoundArtifacts, display: str, trusted_root: TrustedRoot | None) -> ImageOutcome:
        options = _options(attestor, trusted_root)
        outcome = verify_found_attestations(found, options, attestation.predicate_type)
        return _image_outcome(outcome, attestor.name, display)

    return decide


def _image_outcome(outcome: VerificationOutcome, attestor: str, display: str) -> ImageOutcome:
    if isinstance(outcome, Verified):
        predicates = tuple(statement.predicate for statement in outcome.statements)
        return ImageOutcome("pass", IMAGE_VERIFIED, outcome.digest, predicates)
    if isinstance(outcome, VerificationError):
        log.warning("cannot verify the image", extra={"image": display, "error": outcome.cause})
        reason = f"attestors.{attestor}: {SIGNATURES_UNREADABLE}"
        return ImageOutcome("error", verification_failed(display, reason))
    return ImageOutcome(
        "fail", verification_failed(display, f"attestors.{attestor}: {outcome.reason}"), outcome.digest
    )


def signature_slot(attestor: CosignAttestor) -> str:
    """The verifier cache's slot for an attestor's signature check."""
    return f"attestor:{attestor.name}"


def attestation_slot(attestor: CosignAttestor, attestation: Attestation) -> str:
    """The verifier cache's slot for an attestor's check of one attestation."""
    return f"attestation:{attestation.name}:{attestor.name}"


@dataclass(frozen=True)
class Evaluated:
    """One applicable policy's outcome and the signature outcomes behind it (for digest pins)."""

    prepared: Prepared
    outcome: Outcome
    signatures: Mapping[VerificationKey, SignatureOutcome]


def request_attributes(
    request: AdmissionRequest, namespace_labels: Mapping[str, str] | None
) -> RequestAttributes:
    """The request as ``matchConstraints`` see it; ``namespace_labels`` None: not loaded yet."""
    obj = request.object or {}
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return RequestAttributes(
        group=request.group,
        version=request.version,
        resource=request.resource,
        subresource=request.sub_resource,
        kind=request.kind,
        operation=request.operation,
        name=request.name,
        namespace=request.namespace,
        object_labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        namespace_labels=namespace_labels or {},
        namespace_labels_known=namespace_labels is not None,
    )


def request_document(request: AdmissionRequest) -> dict[str, Any]:
    """The ``request`` CEL variable: the AdmissionRequest fields policies commonly read."""
    return {
        "uid": request.uid,
        "kind": {"group": request.group, "version": request.version, "kind": request.kind},
        "operation": request.operation,
        "name": request.name,
        "namespace": request.namespace,
        "subResource": request.sub_resource,
        "dryRun": request.dry_run,
    }


def _signature(outcome: ImageOutcome) -> SignatureOutcome:
    return SignatureOutcome(outcome.status, outcome.message, outcome.digest, outcome.predicates)


class ImagePolicyRunner:
    """Evaluates the ImageValidatingPolicies of a request (see the module docstring)."""

    def __init__(self, verifier: Verifier, count: CountVerification, memo_size: int = 4096) -> None:
        self._verifier = verifier
        self._count = count
        # Conclusions of policies that read only images and verification outcomes (see conclusion_key).
        self._conclusions: OrderedDict[Hashable, Outcome] = OrderedDict()
        self._memo_size = memo_size

    def plan(
        self,
        policies: Sequence[ImageValidatingPolicy],
        request: AdmissionRequest,
        namespace_labels: Mapping[str, str] | None,
    ) -> list[Prepared]:
        """The policies that apply to the request, prepared (match conditions and images evaluated)."""
        if request.object is None:
            return []
        attributes = request_attributes(request, namespace_labels)
        document = request_document(request)
        namespace_object = (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": request.namespace,
                                                                   "labels": dict(namespace_labels or {})}}
            if request.namespace
            else None
        )  # fmt: skip
        prepared: list[Prepared] = []
        for policy in policies:
            applies = applicable(policy, attributes, request.object)
            if applies is None:
                continue
            ready = prepare(
                policy,
                applies,
                request.object,
                request.old_object,
                request=document,
                namespace_object=namespace_object,
            )
            if ready is not None:
                prepared.append(ready)
        return prepared

    async def evaluate(self, prepared: Sequence[Prepared], deadline: float) -> tuple[list[Evaluated], bool]:
        """Verify every (image, attestor) pair the policies may ask about, then conclude each policy; also
        whether every verification came from the cache."""
        pairs, cached = await self._verify_pairs(prepared, deadline)
        evaluated = [
            Evaluated(ready, self._conclude(ready, pairs.get(id(ready), {})), pairs.get(id(ready), {}))
            for ready in prepared
        ]
        return evaluated, cached

    def _conclude(self, ready: Prepared, signatures: Mapping[VerificationKey, SignatureOutcome]) -> Outcome:
        key = conclusion_key(ready, signatures)
        if key is None:
            return conclude(ready, signatures)
        outcome = self._conclusions.get(key)
        if outcome is None:
            outcome = conclude(ready, signatures)
            self._conclusions[key] = outcome
            if len(self._conclusions) > self._memo_size:
                self._conclusions.popitem(last=False)
        else:
            self._conclusions.move_to_end(key)
        return outcome

    def _wanted(self, ready: Prepared) -> list[tuple[VerificationKey, str, str, Decide, CosignAttestor]]:
        """(key, cache slot, image, decision, attestor) of every verification the policy's functions may ask
        for."""
        policy = ready.policy
        wanted: list[tuple[VerificationKey, str, str, Decide, CosignAttestor]] = []
        for image in ready.images:
            for attestor in policy.attestors:
                if policy.verifies_signatures:
                    key: VerificationKey = (image.reference, attestor.name)
                    decide = signature_decision(attestor)
                    wanted.append((key, signature_slot(attestor), image.image, decide, attestor))
                if not policy.verifies_attestations:
                    continue
                for attestation in policy.attestations:
                    key = (image.reference, attestor.name, attestation.name)
                    decide = attestation_decision(attestor, attestation)
                    wanted.append(
                        (key, attestation_slot(attestor, attestation), image.image, decide, attestor)
                    )
        return wanted

    async def _verify_pairs(
        self, prepared: Sequence[Prepared], deadline: float
    ) -> tuple[dict[int, dict[VerificationKey, SignatureOutcome]], bool]:
        results: dict[int, dict[VerificationKey, SignatureOutcome]] = {}
        tasks: dict[tuple[int, VerificationKey], asyncio.Future[tuple[ImageOutcome, Lookup]]] = {}
        for ready in prepared:
            found = results.setdefault(id(ready), {})
            if ready.outcome is not None:
                continue
            policy = ready.policy
            for key, slot, image, decide, attestor in self._wanted(ready):
                hit = self._verifier.cached(policy.version, slot, 0, image)
                if hit is not None:
                    self._count(policy, slot, hit, "hit")
                    found[key] = _signature(hit)
                elif (id(ready), key) not in tasks:
                    verification = self._verify(policy, slot, image, decide, attestor)
                    tasks[(id(ready), key)] = asyncio.ensure_future(verification)
        if not tasks:
            return results, True
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.wait(tasks.values(), timeout=remaining)
        cached = True
        for (ready_id, key), task in tasks.items():
            results[ready_id][key], how = self._settled(task, key)
            cached = cached and how != "miss"
        return results, cached

    async def _verify(
        self, policy: ImageValidatingPolicy, slot: str, image: str, decide: Decide, attestor: CosignAttestor
    ) -> tuple[ImageOutcome, Lookup]:
        path = "attestors." + slot.rsplit(":", 1)[-1]
        outcome, how = await self._verifier.verify_decided(
            policy.version,
            slot,
            image,
            path,
            decide,
            signature_repository=attestor.options.signature_repository,
            tag_prefix=attestor.options.signature_tag_prefix,
        )
        self._count(policy, slot, outcome, how)
        return outcome, how

    @staticmethod
    def _settled(
        task: asyncio.Future[tuple[ImageOutcome, Lookup]], key: VerificationKey
    ) -> tuple[SignatureOutcome, Lookup]:
        if task.done() and not task.cancelled() and task.exception() is None:
            outcome, how = task.result()
            return _signature(outcome), how
        if task.done() and not task.cancelled():
            log.error("verification crashed", exc_info=task.exception(), extra={"image": key[0]})
            reason = "internal error in trustwatch (details in its log)"
        else:
            task.cancel()
            reason = "verification did not finish within the admission deadline"
        return SignatureOutcome("error", verification_failed(key[0], f"attestors.{key[1]}: {reason}")), "miss"
