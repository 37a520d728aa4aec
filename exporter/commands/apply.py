"""`trustwatch apply`: evaluate resources against policies offline, like ``kyverno apply``.

Each resource is reviewed as a CREATE by the same engine the webhook runs (images verified against the
real registries), and the decision is printed as the API server would act on it: denied with Kyverno's
message, or admitted with its warnings and digest pins. ``--policy-report`` also prints the results as
PolicyReports, for every resource (the webhook reports only what was admitted). Exit codes: 0 nothing
denied, 1 an Enforce rule denied a resource, 2 error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporter.commands.registry_args import (
    UsageError,
    add_registry_arguments,
    build_registry_options,
    read_text_file,
)

if TYPE_CHECKING:
    from exporter.admission.engine import Decision
    from exporter.policy.loader import LoadedPolicy
    from exporter.registry import RegistryOptions
    from exporter.reports.writer import AuditResult
    from exporter.sigstore import TrustedRoot

EXIT_ADMITTED = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
MAX_RESOURCES = 1000


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apply",
        help="evaluate resources against ClusterPolicies and ImageValidatingPolicies offline",
        description="Review each resource as a CREATE against the policies, verifying its images in their "
        "registries. Exit 0 when nothing is denied, 1 when an Enforce rule denies a resource, 2 on error.",
    )
    parser.add_argument(
        "--policy",
        "--policies",
        dest="policy",
        metavar="FILE",
        action="append",
        required=True,
        help="policy YAML file or directory; repeatable",
    )
    parser.add_argument(
        "--resource",
        metavar="FILE",
        action="append",
        required=True,
        help="resource YAML file (multi-document)",
    )
    parser.add_argument(
        "--namespace-labels",
        metavar="FILE",
        help="YAML mapping of namespace name to its labels, for namespaceSelector matching",
    )
    parser.add_argument(
        "--policy-report",
        action="store_true",
        help="also print the results as PolicyReports (of every resource, admitted or denied, as "
        "kyverno apply reports them)",
    )
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json the policies' attestors trust, as serve's --trusted-root (default: "
        "the public-good root shipped with trustwatch)",
    )
    add_registry_arguments(parser, "decision deadline per resource in seconds")
    parser.set_defaults(run=run)


def _yaml_documents(path: str) -> list[Any]:
    import yaml  # noqa: PLC0415

    try:
        documents = list(yaml.safe_load_all(read_text_file(path, "resource file")))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from None
    return documents


def _resources(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every object in the files (``kind: List`` unwrapped); each needs apiVersion, kind and a name."""
    resources: list[dict[str, Any]] = []
    for path in paths:
        for number, document in enumerate(_yaml_documents(path), start=1):
            if document is None:
                continue
            items = (
                document.get("items")
                if isinstance(document, dict) and document.get("kind") == "List"
                else None
            )
            for obj in items if isinstance(items, list) else [document]:
                metadata = obj.get("metadata") if isinstance(obj, dict) else None
                if not (
                    isinstance(obj, dict)
                    and obj.get("apiVersion")
                    and obj.get("kind")
                    and isinstance(metadata, dict)
                ):
                    raise UsageError(
                        f"{path}: document {number} is not a Kubernetes object "
                        "(apiVersion, kind and metadata are required)"
                    )
                if not metadata.get("name"):
                    raise UsageError(f"{path}: document {number} ({obj['kind']}) has no metadata.name")
                resources.append(obj)
    if len(resources) > MAX_RESOURCES:
        raise UsageError(f"more than {MAX_RESOURCES} resources; split them across runs")
    return resources


def _namespace_labels(path: str | None) -> Mapping[str, Mapping[str, str]]:
    """The labels of each namespace given with ``--namespace-labels`` (none without it)."""
    if path is None:
        return {}
    documents = [document for document in _yaml_documents(path) if document is not None]
    loaded = documents[0] if documents else {}
    if not isinstance(loaded, dict) or not all(isinstance(labels, dict) for labels in loaded.values()):
        raise UsageError(f"{path} must map each namespace name to a mapping of its labels")
    return {
        str(namespace): {str(k): str(v) for k, v in labels.items()} for namespace, labels in loaded.items()
    }


def _policies(paths: Sequence[str]) -> list[LoadedPolicy]:
    from exporter.policy.loader import PolicyLoadError, load_policy_paths  # noqa: PLC0415

    try:
        return load_policy_paths([Path(path) for path in paths])
    except PolicyLoadError as exc:
        raise UsageError(str(exc)) from None


def _trusted_root(path: str | None) -> TrustedRoot | None:
    from exporter.sigstore import TrustedRootError, load_trusted_root  # noqa: PLC0415

    try:
        return load_trusted_root(path) if path else None
    except TrustedRootError as exc:
        raise UsageError(str(exc)) from None


def _review_body(obj: Mapping[str, Any], number: int) -> bytes:
    import json  # noqa: PLC0415

    group, _, version = str(obj["apiVersion"]).rpartition("/")
    metadata = obj["metadata"]
    namespace = str(metadata.get("namespace") or "default")
    request = {
        "uid": f"trustwatch-apply-{number}",
        "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "operation": "CREATE",
        "name": metadata["name"],
        "namespace": namespace,
        "object": obj,
    }
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


async def _evaluate(
    policies: list[LoadedPolicy],
    resources: list[dict[str, Any]],
    labels: Mapping[str, Mapping[str, str]],
    registry_options: RegistryOptions,
    decision_timeout: float,
    *,
    trusted_root: TrustedRoot | None,
) -> tuple[list[tuple[str, Decision]], list[AuditResult]]:
    from exporter.admission.engine import AdmissionConfig, AdmissionEngine  # noqa: PLC0415
    from exporter.admission.messages import resource_label  # noqa: PLC0415
    from exporter.admission.review import parse_review  # noqa: PLC0415
    from exporter.admission.verifier import ImageVerifier  # noqa: PLC0415
    from exporter.metrics import ServiceMetrics  # noqa: PLC0415
    from exporter.policy.match import NAMESPACE_NAME_LABEL  # noqa: PLC0415
    from exporter.registry import RegistryClient  # noqa: PLC0415

    metrics = ServiceMetrics()
    collected: list[AuditResult] = []
    decisions: list[tuple[str, Decision]] = []
    async with RegistryClient(registry_options) as client:
        verifier = ImageVerifier(client, metrics, trusted_root=trusted_root)
        engine = AdmissionEngine(
            lambda: policies,
            verifier,
            metrics,
            config=AdmissionConfig(timeout=decision_timeout),
            # A namespace not described has only the label the API server always sets.
            namespace_labels=lambda namespace: labels.get(namespace, {NAMESPACE_NAME_LABEL: namespace}),
        )
        try:
            for number, obj in enumerate(resources, start=1):
                request = parse_review(_review_body(obj, number))
                decision = await engine.review("mutate", request)
                collected.extend(engine.audit_results(request, decision.results))
                decisions.append((resource_label(request.kind, request.namespace, request.name), decision))
        finally:
            await verifier.close()
    return decisions, collected


def _describe(resource: str, decision: Decision) -> str:
    response = decision.response
    if not response.allowed:
        return f"DENIED {resource}{response.message.rstrip()}"
    lines = [f"ADMITTED {resource}"]
    lines += [f"  warning: {text}" for text in response.warnings]
    lines += [f"  pinned {op['path']} -> {op['value']}" for op in response.patch or ()]
    return "\n".join(lines)


def _summary(results: Iterable[AuditResult]) -> str:
    from exporter.reports.model import STATUSES  # noqa: PLC0415

    counts = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result.result] = counts.get(result.result, 0) + 1
    return ", ".join(f"{status}: {count}" for status, count in counts.items())


def _reports_yaml(results: list[AuditResult]) -> str:
    import yaml  # noqa: PLC0415

    from exporter.reports.writer import ReportTarget, merge_report, target_of  # noqa: PLC0415

    groups: dict[ReportTarget, list[AuditResult]] = {}
    for result in results:
        groups.setdefault(target_of(result), []).append(result)
    items = [merge_report(target, None, grouped) for target, grouped in groups.items()]
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    try:
        policies = _policies(args.policy)
        resources = _resources(args.resource)
        labels = _namespace_labels(args.namespace_labels)
        registry_options = build_registry_options(args)
        trusted_root = _trusted_root(args.trusted_root)
    except UsageError as exc:
        print(f"trustwatch apply: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    from exporter.policy.loader import rule_count  # noqa: PLC0415

    if not logging.getLogger().handlers:
        # Denial messages leave registry errors out ("details in trustwatch's log"): the log is stderr here,
        # with the fields that say what failed. A process embedding apply keeps its own logging.
        from exporter import logs  # noqa: PLC0415

        logs.configure("warning")
    rules = sum(map(rule_count, policies))
    print(f"Applying {rules} policy rule(s) to {len(resources)} resource(s)...\n")
    evaluated: list[tuple[list[tuple[str, Decision]], list[AuditResult]]] = []

    async def evaluate() -> None:
        # The result is handed over in a list, not returned: on leaving, asyncio.run (Python 3.11) formats
        # an error message holding repr() of the main task, whose repr holds its result, and the repr of a
        # thousand-rule result took minutes.
        evaluated.append(
            await _evaluate(
                policies, resources, labels, registry_options, args.timeout, trusted_root=trusted_root
            )
        )

    asyncio.run(evaluate())
    decisions, results = evaluated[0]
    for resource, decision in decisions:
        print(_describe(resource, decision) + "\n")
    print(_summary(results))
    if args.policy_report:
        print("---\n" + _reports_yaml(results), end="")
    return EXIT_DENIED if any(not decision.response.allowed for _, decision in decisions) else EXIT_ADMITTED
