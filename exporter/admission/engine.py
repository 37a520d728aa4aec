"""Turns one admission request into rule results and a decision, within the webhook's deadline.

``/mutate`` verifies every image a matching ``verifyImages`` rule selects (cached, single-flight), denies
when an Enforce rule fails (or errors under ``failurePolicy: Fail``), warns for Audit failures, pins tags
to digests (``mutateDigest``) and queues the results for PolicyReports. ``/validate`` runs after the other
mutating webhooks, denies images left without a digest where ``verifyDigest`` requires one and, where
``required`` asks, verifies each image again as it now is (from the cache when unchanged).

A verification that has not finished when the decision budget (``timeout`` less a margin) runs out becomes
an ``error`` result; it keeps running in the background so the next request finds it cached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from exporter.admission.cache import Lookup
from exporter.admission.children import BoundedValues, MetricChildren
from exporter.admission.messages import (
    blocked_message,
    missing_digest,
    resource_label,
    verification_failed,
    warning,
)
from exporter.admission.pending import PendingResults, object_key
from exporter.admission.review import AdmissionRequest, AdmissionResponse
from exporter.admission.verifier import Decide, ImageOutcome, first_entry_path
from exporter.admission.violations import Violation
from exporter.metrics import ServiceMetrics
from exporter.policy.images import POD_SPEC_PATHS, ContainerImage, extract_images
from exporter.policy.match import ResourceInfo
from exporter.policy.model import Action, ImageVerification, KyvernoPolicy
from exporter.policy.plan import ImageCheck, RulePlan, plan_review
from exporter.reports.filters import GlobFilter
from exporter.reports.writer import AuditResult, ResultResource

if TYPE_CHECKING:
    from exporter.admission.image_policies import Evaluated, ImagePolicyRunner
    from exporter.ivp.evaluate import Prepared
    from exporter.ivp.model import ImageValidatingPolicy

    AnyPolicy = KyvernoPolicy | ImageValidatingPolicy

log = logging.getLogger(__name__)

Webhook = Literal["mutate", "validate"]
RuleStatus = Literal["pass", "fail", "error", "skip"]
_SEVERITY_ORDER: Mapping[str, int] = {"skip": 0, "pass": 1, "fail": 2, "error": 3}
OTHER_NAMESPACE = "other"
# Metric label values of request kinds: the kinds whose images are verified; any other kind is "other".
KIND_LABELS = frozenset(POD_SPEC_PATHS)
OTHER_KIND = "other"
# Distinct namespaces given their own metric series; a client inventing namespaces gets "other" beyond.
MAX_NAMESPACE_LABELS = 2000
# Distinct registries one request may make us contact: each costs DNS and connections; beyond it, the
# images of further registries are errors of that request (their failurePolicy decides).
MAX_REGISTRIES_PER_REQUEST = 10
# Distinct image messages joined into one rule's result; beyond, "... and N more images".
MAX_MESSAGES_PER_RULE = 10


class Verifier(Protocol):
    """What the engine needs from :class:`exporter.admission.verifier.ImageVerifier`."""

    def cached(self, policy_version: str, rule: str, index: int, image: str) -> ImageOutcome | None: ...

    async def verify(
        self, policy_version: str, rule: str, index: int, verification: ImageVerification, image: str
    ) -> tuple[ImageOutcome, Lookup]: ...

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
    ) -> tuple[ImageOutcome, Lookup]: ...


class ResultSink(Protocol):
    """Where audit results go (the report writer); must not block."""

    def submit(self, results: Iterable[AuditResult]) -> None: ...


class ViolationSink(Protocol):
    """Where blocked requests go (PolicyViolation events); must not block."""

    def submit(self, violation: Violation) -> None: ...


@dataclass(frozen=True)
class AdmissionConfig:
    """Settings of the webhook engine.

    ``timeout`` is the webhook's ``timeoutSeconds``; decisions are made within ``decision_budget``,
    which leaves a margin for the network and the API server. Namespace labels on metrics are kept
    for namespaces passing the include/exclude globs and folded into ``other`` otherwise.
    """

    timeout: float = 10.0
    namespace_include: tuple[str, ...] = ()
    namespace_exclude: tuple[str, ...] = ()
    report_source: str = "kyverno"
    # Which webhook writes the results of admitted requests: "mutate" when nothing names objects later
    # (local runs, `trustwatch apply`), "validate" behind an API server, which has by then generated the
    # object's name and uid (see exporter/admission/pending.py).
    results_from: Webhook = "mutate"

    @property
    def decision_budget(self) -> float:
        """Seconds available for a decision: the timeout less 20 % (at least 50 ms, at most 2 s)."""
        return decision_budget(self.timeout)


def decision_budget(timeout: float) -> float:
    """Seconds available to decide within a webhook ``timeout``: less a margin of 20 % (at least 50 ms, at
    most 2 s) for the network, the API server, and sending the answer even when the CPU is saturated."""
    return timeout - min(2.0, max(0.05, timeout * 0.2))


@dataclass(frozen=True)
class RuleResult:
    """The result of one rule on the reviewed resource (for an ImageValidatingPolicy: of the policy, whose
    ``rule`` is its name or ``autogen-<name>``). ``warn``: a failure that does not block is returned as an
    admission warning (always for ClusterPolicy Audit; ImageValidatingPolicies only with ``Warn``)."""

    policy: AnyPolicy
    rule: str
    action: Action
    status: RuleStatus
    message: str
    warn: bool = True

    @property
    def blocks(self) -> bool:
        """Whether this result denies the request: Enforce failures, and Enforce errors unless Ignore."""
        if self.action != "Enforce":
            return False
        return self.status == "fail" or (self.status == "error" and self.policy.failure_policy == "Fail")


@dataclass(frozen=True)
class Decision:
    """The answer plus the results behind it (for reports, metrics, logs, ``trustwatch apply``).

    ``cached`` says whether every image outcome came from the verification cache."""

    response: AdmissionResponse
    results: tuple[RuleResult, ...] = ()
    cached: bool = True


@dataclass(frozen=True)
class _Evaluation:
    """Rule results of one request, the digest pins they allow, and whether all came from the cache."""

    results: tuple[RuleResult, ...]
    patch: list[dict[str, str]]
    cached: bool


def _image_set(obj: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(image.pointer, image.image) for image in extract_images(obj or {})]


def _has_digest(image: ContainerImage) -> bool:
    return "@" in image.image


def _images_after(obj: Mapping[str, Any] | None, patch: Sequence[Mapping[str, str]]) -> list[str]:
    """The object's images once ``patch`` (digest pins) is applied, as the next webhook will see them."""
    pinned = {op["path"]: op["value"] for op in patch}
    return [pinned.get(pointer, image) for pointer, image in _image_set(obj)]


class AdmissionEngine:
    """Evaluates admission requests against the current policies (see the module docstring)."""

    def __init__(
        self,
        policies: Callable[[], Sequence[AnyPolicy]],
        verifier: Verifier,
        metrics: ServiceMetrics,
        *,
        config: AdmissionConfig | None = None,
        results: ResultSink | None = None,
        violations: ViolationSink | None = None,
        namespace_labels: Callable[[str], Mapping[str, str] | None] = lambda _namespace: {},
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policies = policies
        self._verifier = verifier
        self._metrics = metrics
        self.config = config or AdmissionConfig()
        self._results = results
        self._violations = violations
        # Twice the webhook timeout: /validate follows /mutate within one API request.
        self._pending: PendingResults[tuple[RuleResult, ...]] = PendingResults(
            ttl=max(30.0, 2 * self.config.timeout)
        )
        self._namespace_labels = namespace_labels
        self._clock = clock
        self._children = MetricChildren()
        self._namespaces = GlobFilter.of(self.config.namespace_include, self.config.namespace_exclude)
        self._namespace_values = BoundedValues(MAX_NAMESPACE_LABELS, OTHER_NAMESPACE)
        self._image_policies: ImagePolicyRunner | None = None

    # --- entry points -----------------------------------------------------------------------------------

    async def review(
        self, webhook: Webhook, request: AdmissionRequest, deadline: float | None = None
    ) -> Decision:
        """Answer one request for ``webhook``; records request metrics. Never raises for policy outcomes.

        ``deadline`` (event-loop time) is when verification must be settled; by default the decision
        budget from now. The caller passes the request's arrival plus the budget, so reading and parsing
        the body count against it too.
        """
        started = time.perf_counter()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.config.decision_budget
        decision = await (
            self._mutate(request, deadline) if webhook == "mutate" else self._validate(request, deadline)
        )
        self._count_request(webhook, request, "allowed" if decision.response.allowed else "denied")
        duration = time.perf_counter() - started
        self._children.get(self._metrics.admission_review_duration, webhook).observe(duration)
        self._log_decision(webhook, request, decision, duration)
        return decision

    def _log_decision(
        self, webhook: Webhook, request: AdmissionRequest, decision: Decision, duration: float
    ) -> None:
        """One structured line per decision: info for denials and Audit failures, debug for the rest."""
        noteworthy = not decision.response.allowed or any(
            result.status in ("fail", "error") and not result.blocks for result in decision.results
        )
        level = logging.INFO if noteworthy else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        metadata = (request.object or {}).get("metadata") or {}
        name = request.name or (f"{metadata.get('generateName')}*" if metadata.get("generateName") else "")
        log.log(
            level,
            "admission decision",
            extra={
                "webhook": webhook,
                "uid": request.uid,
                "operation": request.operation,
                "namespace": request.namespace,
                "resource": f"{request.kind}/{name}",
                "images": [image for _pointer, image in _image_set(request.object)],
                "results": [
                    {
                        "policy": result.policy.display_name,
                        "rule": result.rule,
                        "result": result.status,
                        "action": result.action,
                    }
                    for result in decision.results
                ],
                "decision": "allowed" if decision.response.allowed else "denied",
                "duration_ms": round(duration * 1000, 3),
                "cached": decision.cached,
            },
        )

    def fallback(self, webhook: Webhook, request: AdmissionRequest, reason: str) -> Decision:
        """The answer when no decision was made in time, or evaluation failed: every rule that applies
        gets an ``error`` result with ``reason``, so each rule's failurePolicy (and Audit) decides as it
        would for a registry outage. When not even planning works, the request is denied if any policy in
        force has ``failurePolicy: Fail``, else admitted with a warning. Counted as an ``error`` decision."""
        try:
            plans, prepared = self._plans(request) or ([], [])
            results = tuple(
                RuleResult(plan.policy, plan.rule.name, plan.action, "error", reason)
                for plan in plans
                if plan.checks or plan.error is not None
            ) + tuple(
                _image_policy_rule_result(ready, "error", reason)
                for ready in prepared
                if ready.outcome is None or ready.outcome.status == "error"
            )
            decision = self._decide(request, results, [])
        except Exception:
            log.exception("admission fallback could not plan the request", extra={"uid": request.uid})
            decision = Decision(self._unplanned(reason))
        self._count_request(webhook, request, "error")
        return decision

    def _unplanned(self, reason: str) -> AdmissionResponse:
        """Denied (code 500) when any policy in force fails closed, or the policies cannot be read."""
        message = f"trustwatch could not evaluate this request: {reason}; see the webhook's logs"
        try:
            fail = any(policy.failure_policy == "Fail" for policy in self._policies())
        except Exception:
            fail = True
        if fail:
            return AdmissionResponse(allowed=False, message=message, code=500)
        return AdmissionResponse(allowed=True, warnings=(message,))

    def _count_request(self, webhook: Webhook, request: AdmissionRequest, decision: str) -> None:
        # Label values in spec order (exporter/metrics.py); the children are memoised for the hot path.
        kind = request.kind if request.kind in KIND_LABELS else OTHER_KIND
        self._children.get(self._metrics.admission_requests, webhook, request.operation, kind, decision).inc()

    def namespace_label(self, namespace: str) -> str:
        """The namespace as a metric label value, bounded by the include/exclude globs and by
        :data:`MAX_NAMESPACE_LABELS` distinct values."""
        if not namespace:
            return namespace
        return self._namespace_values(namespace) if self._namespaces.allows(namespace) else OTHER_NAMESPACE

    # --- planning ---------------------------------------------------------------------------------------

    def _plans(self, request: AdmissionRequest) -> tuple[list[RulePlan], list[Prepared]] | None:
        """The ClusterPolicy rules and ImageValidatingPolicies to evaluate, or None when the request needs
        no evaluation at all."""
        if request.operation not in ("CREATE", "UPDATE") or request.object is None:
            return None
        if request.operation == "UPDATE" and _image_set(request.object) == _image_set(request.old_object):
            return None  # labels, replicas, status...: nothing to verify again
        # None: the namespace's labels are not loaded yet; decisions that need them follow failurePolicy.
        labels = self._namespace_labels(request.namespace) if request.namespace else {}
        policies = self._policies()
        cluster_policies = [policy for policy in policies if isinstance(policy, KyvernoPolicy)]
        image_policies = [policy for policy in policies if not isinstance(policy, KyvernoPolicy)]
        plans: list[RulePlan] = []
        if cluster_policies:
            info = ResourceInfo.from_object(
                request.object,
                operation=request.operation,
                namespace_labels=labels,
                namespace=request.namespace or None,
                namespace_labels_known=labels is not None,
            )
            info = dataclasses.replace(info, name=info.name or request.name, subresource=request.sub_resource)
            plans = plan_review(cluster_policies, info, request.object)
        prepared = self._image_runner().plan(image_policies, request, labels) if image_policies else []
        if not plans and not prepared:
            return None
        return plans, prepared

    def _image_runner(self) -> ImagePolicyRunner:
        """Built on first use: importing it loads the CEL engine, which ClusterPolicy-only sets never need."""
        if self._image_policies is None:
            from exporter.admission.image_policies import ImagePolicyRunner  # noqa: PLC0415

            self._image_policies = ImagePolicyRunner(self._verifier, self._count_attestor)
        return self._image_policies

    # --- /mutate ----------------------------------------------------------------------------------------

    async def _mutate(self, request: AdmissionRequest, deadline: float) -> Decision:
        evaluation = await self._evaluate(request, deadline)
        if evaluation is None:
            return Decision(AdmissionResponse(allowed=True))
        decision = self._decide(request, evaluation.results, evaluation.patch, evaluation.cached)
        self._record(request, evaluation.results, decision.response.allowed)
        if not decision.response.allowed:
            self._blocked(request, decision.results)
        elif not request.dry_run and self._results is not None:
            if self.config.results_from == "mutate":
                self._results.submit(self.audit_results(request, evaluation.results))
            else:
                images = _images_after(request.object, evaluation.patch)
                key = object_key(request.namespace, request.object or {}, request.operation, images)
                self._pending.put(key, evaluation.results)
        return decision

    async def _evaluate(self, request: AdmissionRequest, deadline: float) -> _Evaluation | None:
        """Verify every image the matching rules select; None when the request needs no evaluation."""
        planned = self._plans(request)
        if planned is None:
            return None
        plans, prepared = planned
        checks = [check for plan in plans for check in plan.checks]
        if prepared and checks:
            (outcomes, cached), (evaluated, images_cached) = await asyncio.gather(
                self._verify_all(checks, deadline), self._image_runner().evaluate(prepared, deadline)
            )
            cached = cached and images_cached
        elif prepared:  # no task for the ClusterPolicy side: a warm request schedules nothing
            (outcomes, _), (evaluated, cached) = (
                ({}, True),
                await self._image_runner().evaluate(prepared, deadline),
            )
        else:
            (outcomes, cached), evaluated = await self._verify_all(checks, deadline), []
        results = tuple(
            self._rule_result(plan, [outcomes[id(check)] for check in plan.checks]) for plan in plans
        ) + tuple(_image_policy_result(item) for item in evaluated)
        # One op per image field, when both kinds pin the same image.
        pins = [*self._digest_patch(checks, outcomes), *_image_policy_patch(evaluated)]
        return _Evaluation(results, list({op["path"]: op for op in pins}.values()), cached)

    async def _verify_all(
        self, checks: Sequence[ImageCheck], deadline: float
    ) -> tuple[dict[int, ImageOutcome], bool]:
        """Outcome per check (by id), every one settled within the decision budget, and whether all of
        them came from the cache.

        Cached outcomes are taken synchronously; each distinct (policy, rule, entry, image) of the rest is
        verified once, however many containers name it, and only those become tasks the deadline applies
        to. Images of registries beyond :data:`MAX_REGISTRIES_PER_REQUEST` are not looked up at all.
        """
        outcomes: dict[int, ImageOutcome] = {}
        tasks: dict[tuple[str, str, int, str], asyncio.Future[tuple[ImageOutcome, Lookup]]] = {}
        waiting: list[tuple[ImageCheck, tuple[str, str, int, str]]] = []
        registries: set[str] = set()
        for check in checks:
            index = check.rule.verify_images.index(check.verification)
            key = (check.policy.version, check.rule.name, index, check.image.image)
            if key in tasks:
                waiting.append((check, key))
                continue
            hit = self._verifier.cached(*key) if check.verification.use_cache else None
            if hit is not None:
                self._count_verification(check, hit, "hit")
                outcomes[id(check)] = hit
                continue
            registry = check.reference.partition("/")[0]
            if registry not in registries and len(registries) >= MAX_REGISTRIES_PER_REQUEST:
                outcomes[id(check)] = self._error_outcome(
                    check, f"more than {MAX_REGISTRIES_PER_REQUEST} registries in one request"
                )
                continue
            registries.add(registry)
            tasks[key] = asyncio.ensure_future(self._verify(check, index))
            waiting.append((check, key))
        if not tasks:
            return outcomes, True
        cached = True
        loop = asyncio.get_running_loop()
        # A policy's webhookTimeoutSeconds bounds its own verifications within the request's deadline.
        limits = {key: self._policy_deadline(check.policy, deadline, loop.time()) for check, key in waiting}
        for limit in sorted(set(limits.values())):
            batch = [task for key, task in tasks.items() if limits[key] == limit and not task.done()]
            if batch:
                await asyncio.wait(batch, timeout=max(0.0, limit - loop.time()))
        settled: dict[tuple[str, str, int, str], ImageOutcome] = {}
        for check, key in waiting:
            if key not in settled:
                task = tasks[key]
                if task.done() and not task.cancelled() and task.exception() is None:
                    settled[key], how = task.result()
                    cached = cached and how != "miss"
                else:
                    task.cancel()
                    settled[key] = self._unfinished(check, task, limits[key] < deadline)
                    cached = False
            outcomes[id(check)] = settled[key]
        return outcomes, cached

    @staticmethod
    def _policy_deadline(policy: KyvernoPolicy, deadline: float, now: float) -> float:
        """When ``policy``'s verifications must be settled: its webhookTimeoutSeconds, if shorter."""
        seconds = policy.webhook_timeout_seconds
        return deadline if seconds is None else min(deadline, now + decision_budget(seconds))

    def _unfinished(
        self, check: ImageCheck, task: asyncio.Future[tuple[ImageOutcome, Lookup]], policy_limit: bool
    ) -> ImageOutcome:
        """An error outcome for a verification that timed out or crashed (the crash is logged)."""
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("verification crashed", exc_info=task.exception(), extra={"image": check.image.image})
            reason = "internal error in trustwatch (details in its log)"
        elif policy_limit:
            seconds = check.policy.webhook_timeout_seconds
            reason = f"verification did not finish within the policy's webhookTimeoutSeconds ({seconds}s)"
        else:
            reason = (
                f"verification did not finish within the {self.config.decision_budget:g}s admission deadline"
            )
        return self._error_outcome(check, reason)

    def _error_outcome(self, check: ImageCheck, reason: str) -> ImageOutcome:
        """An ``error`` outcome for ``check`` (counted as an uncached verification error)."""
        metric = self._metrics.image_verifications
        self._children.get(metric, check.policy.name, check.rule.name, "error", "false").inc()
        path = first_entry_path(check.verification)
        return ImageOutcome("error", verification_failed(check.reference, f"{path}: {reason}"))

    async def _verify(self, check: ImageCheck, index: int) -> tuple[ImageOutcome, Lookup]:
        outcome, how = await self._verifier.verify(
            check.policy.version, check.rule.name, index, check.verification, check.image.image
        )
        self._count_verification(check, outcome, how)
        return outcome, how

    def _count_verification(self, check: ImageCheck, outcome: ImageOutcome, how: Lookup) -> None:
        cached = "false" if how == "miss" else "true"
        metric = self._metrics.image_verifications
        self._children.get(metric, check.policy.name, check.rule.name, outcome.status, cached).inc()

    def _count_attestor(
        self, policy: ImageValidatingPolicy, slot: str, outcome: ImageOutcome, how: Lookup
    ) -> None:
        """An ImageValidatingPolicy verification, counted with ``rule`` naming its cache slot
        (``attestor:<name>``, ``attestation:<attestation>:<attestor>``)."""
        cached = "false" if how == "miss" else "true"
        metric = self._metrics.image_verifications
        self._children.get(metric, policy.name, slot, outcome.status, cached).inc()

    @staticmethod
    def _rule_result(plan: RulePlan, outcomes: Sequence[ImageOutcome]) -> RuleResult:
        """A rule's result is its worst image outcome; the messages of those images are joined."""
        if plan.error is not None:
            return RuleResult(plan.policy, plan.rule.name, plan.action, "error", plan.error)
        if not outcomes:
            return RuleResult(plan.policy, plan.rule.name, plan.action, "skip", plan.skip_message)
        worst = max(outcomes, key=lambda outcome: _SEVERITY_ORDER[outcome.status]).status
        messages = list(dict.fromkeys(outcome.message for outcome in outcomes if outcome.status == worst))
        if len(messages) > MAX_MESSAGES_PER_RULE:  # keep denials, warnings and reports readable and small
            more = len(messages) - MAX_MESSAGES_PER_RULE
            messages = [*messages[:MAX_MESSAGES_PER_RULE], f"... and {more} more images"]
        return RuleResult(plan.policy, plan.rule.name, plan.action, worst, "; ".join(messages))

    @staticmethod
    def _digest_patch(
        checks: Sequence[ImageCheck], outcomes: Mapping[int, ImageOutcome]
    ) -> list[dict[str, str]]:
        """``replace`` ops pinning verified tags to their digests, one per container image field."""
        patch: dict[str, dict[str, str]] = {}
        for check in checks:
            outcome = outcomes[id(check)]
            if (
                check.verification.mutate_digest
                and outcome.status == "pass"
                and outcome.digest
                and not _has_digest(check.image)
            ):
                value = f"{check.reference}@{outcome.digest}"
                patch[check.image.pointer] = {"op": "replace", "path": check.image.pointer, "value": value}
        return list(patch.values())

    # --- /validate --------------------------------------------------------------------------------------

    async def _validate(self, request: AdmissionRequest, deadline: float) -> Decision:
        planned = self._plans(request)
        if planned is None:
            return Decision(AdmissionResponse(allowed=True))
        plans, prepared = planned
        # ``required``: every image must be verified as it is now, after every mutating webhook ran (one
        # may have swapped an image /mutate verified); from the cache when /mutate just verified it.
        required = [check for plan in plans for check in plan.checks if check.verification.required]
        outcomes, _cached = await self._verify_all(required, deadline)
        results: list[RuleResult] = []
        for plan in plans:
            problems = [
                ("fail", missing_digest(check.reference))
                for check in plan.checks
                if check.verification.verify_digest and not _has_digest(check.image)
            ]
            problems += [
                (outcome.status, outcome.message)
                for check in plan.checks
                if (outcome := outcomes.get(id(check))) is not None and outcome.status != "pass"
            ]
            if problems:
                status: RuleStatus = "fail" if any(status == "fail" for status, _ in problems) else "error"
                message = "; ".join(dict.fromkeys(message for _, message in problems))
                results.append(RuleResult(plan.policy, plan.rule.name, plan.action, status, message))
        for ready in prepared:
            unpinned = [image.reference for image in ready.images if "@" not in image.image]
            if ready.policy.verify_digest and unpinned:
                message = "; ".join(dict.fromkeys(missing_digest(reference) for reference in unpinned))
                results.append(_image_policy_rule_result(ready, "fail", message))
        decision = self._decide(request, tuple(results), [])
        if not decision.response.allowed:
            self._count_denials(request, decision.results)
            self._blocked(request, decision.results)
        elif self.config.results_from == "validate" and not request.dry_run and self._results is not None:
            await self._submit_named(request, deadline)
        return decision

    async def _submit_named(self, request: AdmissionRequest, deadline: float) -> None:
        """Write the results /mutate computed for this object, now that it has its name and uid; when
        /mutate ran elsewhere (another replica) or long ago, evaluate again (from the cache, mostly)."""
        assert self._results is not None
        images = [image for _pointer, image in _image_set(request.object)]
        key = object_key(request.namespace, request.object or {}, request.operation, images)
        results = self._pending.take(key)
        if results is None:
            evaluation = await self._evaluate(request, deadline)
            results = evaluation.results if evaluation is not None else ()
        self._results.submit(self.audit_results(request, results))

    # --- decision, metrics, reports ---------------------------------------------------------------------

    def _decide(
        self,
        request: AdmissionRequest,
        results: tuple[RuleResult, ...],
        patch: list[dict[str, str]],
        cached: bool = True,
    ) -> Decision:
        blocking_policies = {result.policy for result in results if result.blocks}
        failures: dict[str, dict[str, str]] = {}
        warnings: list[str] = []
        has_violations = False
        for result in results:
            emits = isinstance(result.policy, KyvernoPolicy) and result.policy.emit_warning
            if result.status == "pass" and emits:
                warnings.append(warning(result.policy.display_name, result.rule, result.message))
            if result.status not in ("fail", "error"):
                continue
            if result.policy in blocking_policies:
                failures.setdefault(result.policy.display_name, {})[result.rule] = result.message
                has_violations = has_violations or result.status == "fail"
            elif result.warn:
                warnings.append(warning(result.policy.display_name, result.rule, result.message))
        if failures:
            resource = resource_label(request.kind, request.namespace, request.name)
            message = blocked_message(resource, failures, has_violations)
            return Decision(
                AdmissionResponse(allowed=False, message=message, code=403, warnings=warnings),
                results,
                cached,
            )
        response = AdmissionResponse(allowed=True, warnings=warnings, patch=patch or None)
        return Decision(response, results, cached)

    def _blocked(self, request: AdmissionRequest, results: Iterable[RuleResult]) -> None:
        """A denied request is an event, never a report result: nothing was created."""
        if request.dry_run or self._violations is None:
            return
        by_policy: dict[AnyPolicy, dict[str, str]] = {}
        for result in results:
            if result.blocks:
                by_policy.setdefault(result.policy, {})[result.rule] = result.message
        metadata = (request.object or {}).get("metadata") or {}
        name = request.name or str(metadata.get("generateName") or "")
        for policy, rules in by_policy.items():
            self._violations.submit(
                Violation(
                    policy=policy.name,
                    policy_namespace=policy.namespace,
                    policy_kind=policy.kind,
                    resource_kind=request.kind,
                    resource_namespace=request.namespace,
                    resource_name=name,
                    rules=rules,
                    timestamp=self._clock(),
                )
            )

    def _count_denials(self, request: AdmissionRequest, results: Iterable[RuleResult]) -> None:
        namespace = self.namespace_label(request.namespace)
        for result in results:
            if result.blocks:
                self._metrics.admission_denials.labels(
                    policy=result.policy.name, rule=result.rule, namespace=namespace
                ).inc()

    def _record(self, request: AdmissionRequest, results: Sequence[RuleResult], allowed: bool) -> None:
        namespace = self.namespace_label(request.namespace)
        for result in results:
            metric = self._metrics.policy_results
            self._children.get(
                metric,
                result.policy.name,
                result.rule,
                namespace,
                result.status,
                result.action,
                result.policy.kind,
            ).inc()
            labels = {"policy": result.policy.name, "rule": result.rule, "namespace": namespace}
            if not allowed or result.status not in ("fail", "error"):
                continue
            if result.action == "Audit":
                self._metrics.audit_failures_admitted.labels(**labels).inc()
            elif result.status == "error":
                self._metrics.fail_open_admissions.labels(**labels).inc()
        if not allowed:
            self._count_denials(request, results)
        elif any(result.status != "skip" for result in results):
            verified = all(result.status in ("pass", "skip") for result in results)
            verified_label = "true" if verified else "false"
            self._children.get(self._metrics.admitted_workloads, namespace, verified_label).inc()

    def audit_results(self, request: AdmissionRequest, results: Iterable[RuleResult]) -> list[AuditResult]:
        """``results`` as report results about the requested object (``trustwatch apply`` reports them
        for every resource file, admitted or not, as ``kyverno apply`` does)."""
        metadata = (request.object or {}).get("metadata") or {}
        resource = ResultResource(
            api_version=request.resource_api_version,
            kind=request.kind,
            name=request.name or str(metadata.get("name") or ""),
            namespace=request.namespace,
            uid=str(metadata.get("uid") or ""),
        )
        now = self._clock()
        return [
            AuditResult(
                namespace=request.namespace,
                report_name=result.policy.report_name,
                policy=result.policy.name,
                rule=result.rule,
                result="warn" if result.status == "fail" and not result.policy.scored else result.status,
                message=result.message,
                resource=resource,
                timestamp=now,
                severity=result.policy.severity or "",
                category=result.policy.category or "",
                scored=result.policy.scored,
                source=self.config.report_source
                if isinstance(result.policy, KyvernoPolicy)
                else result.policy.report_source,
            )
            for result in results
        ]


def _image_policy_rule_result(prepared: Prepared, status: RuleStatus, message: str) -> RuleResult:
    """A RuleResult for an ImageValidatingPolicy: Deny blocks (reported as Enforce), Audit and Warn do not;
    only Warn returns a warning."""
    policy = prepared.policy
    action: Action = "Enforce" if policy.denies else "Audit"
    return RuleResult(policy, prepared.rule, action, status, message, warn=policy.warns)


def _image_policy_result(evaluated: Evaluated) -> RuleResult:
    return _image_policy_rule_result(evaluated.prepared, evaluated.outcome.status, evaluated.outcome.message)


def _image_policy_patch(evaluated: Sequence[Evaluated]) -> list[dict[str, str]]:
    """Digest pins for the images of passing ImageValidatingPolicies with ``mutateDigest``: the digest an
    attestor verified, for images written without one (extractor images have no pointer and stay)."""
    patch: dict[str, dict[str, str]] = {}
    for item in evaluated:
        if item.outcome.status != "pass" or not item.prepared.policy.mutate_digest:
            continue
        for image in item.prepared.images:
            digests = [
                outcome.digest
                for key, outcome in item.signatures.items()
                if key[0] == image.reference and outcome.status == "pass" and outcome.digest
            ]
            if image.pointer is None or "@" in image.image or not digests:
                continue
            value = f"{image.reference}@{digests[0]}"
            patch[image.pointer] = {"op": "replace", "path": image.pointer, "value": value}
    return list(patch.values())
