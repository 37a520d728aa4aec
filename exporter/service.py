"""``trustwatch serve``: one process running the report watcher, the admission webhook and the status server.

This module only assembles components and owns their lifecycle; each component lives in its own package
and knows nothing of the others. Start-up order: status server first (so /healthz answers while the
watcher syncs), then sources, policies, the report writer and the webhook. On SIGTERM/SIGINT the webhook
stops accepting, in-flight reviews get ``--grace-period`` seconds, queued audit results are flushed, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import ssl
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from exporter import __version__
from exporter.admission.engine import AdmissionConfig, AdmissionEngine
from exporter.admission.secret_keys import KubernetesSecretKeys
from exporter.admission.server import build_webhook_app
from exporter.admission.tls import ServingCertificate, TLSConfig, TLSError
from exporter.admission.verifier import CacheSettings, ImageVerifier, registry_metrics_hook
from exporter.admission.violations import ViolationRecorder
from exporter.admission.violations_kube import KubernetesViolationBackend
from exporter.cluster import ClusterConnection, ClusterUnavailableError, connect
from exporter.config import ServeConfig, split_address
from exporter.heartbeat import LoopHeartbeat
from exporter.listen import CapClosure, start_site
from exporter.memory import HeapTrimmer, keep_large_allocations_returnable
from exporter.metrics import ServiceMetrics
from exporter.namespaces import NamespaceLabels
from exporter.policy.loader import PolicyLoadError
from exporter.policy.reload import PolicyReloader
from exporter.registry.auth import CredentialStore, DockerConfigError, load_docker_config
from exporter.registry.client import RegistryClient, RegistryOptions
from exporter.reports.config import ReportsConfig
from exporter.reports.exposition import ReportExposition
from exporter.reports.filters import GlobFilter, ResultFilters
from exporter.reports.labels import LabelConfigError
from exporter.reports.reaper import LiveResources, ResultReaper
from exporter.reports.sources.kube import KubeReportSource
from exporter.reports.sources.local import LocalReportSource
from exporter.reports.store import ReportStore
from exporter.reports.writer import ReportBackend, ReportWriter
from exporter.reports.writer_kube import KubernetesReportBackend
from exporter.reports.writer_local import LocalReportBackend
from exporter.sigstore import TrustedRoot, TrustedRootError, load_trusted_root
from exporter.status_server import Readiness, build_status_app
from exporter.status_thread import ThreadedServer

log = logging.getLogger(__name__)


def _source_state(
    ready: asyncio.Event, states: Mapping[str, str], problem: str | None = None
) -> tuple[bool, str]:
    """Readiness of a report source, and as detail what is not simply being watched (APIs missing, listing
    or failing; files skipped) or what went wrong overall."""
    details = [f"{name}: {state}" for name, state in sorted(states.items()) if state != "watching"]
    if problem:
        details.insert(0, problem)
    if not ready.is_set() and not details:
        details.append("first sync not finished")
    return ready.is_set(), "; ".join(details)


def _skipped_files(problems: Mapping[str, str]) -> dict[str, str]:
    """Report-file problems for /readyz, which anyone reaching the status port can read: how many files
    and directories, not their paths or error text (both are in the log and in the skipped-files metric)."""
    missing = sum(1 for problem in problems.values() if problem == "directory not found")
    skipped = len(problems) - missing
    summary: dict[str, str] = {}
    if missing:
        summary["report directories"] = f"{missing} not found"
    if skipped:
        summary["report files"] = f"{skipped} skipped as unreadable (named in the log)"
    return summary


class StartupError(RuntimeError):
    """The service cannot start as configured; the message says what to fix."""


# Errors that mean "the configuration is wrong" rather than "trustwatch is broken".
_STARTUP_ERRORS = (
    ClusterUnavailableError,
    DockerConfigError,
    LabelConfigError,
    PolicyLoadError,
    TLSError,
    TrustedRootError,
    OSError,
)

# How often file-based inputs (policies, local reports, TLS files) are checked for changes.
POLL_INTERVAL = 2.0


def embedded_defaults() -> Path:
    """The example policies and reports shipped inside the package (the no-cluster default)."""
    return Path(str(resources.files("exporter") / "defaults"))


@dataclass
class Plan:
    """What this process will run, derived from the config and whether a cluster is reachable."""

    cluster: ClusterConnection | None
    policies: tuple[Path, ...]
    report_dirs: tuple[Path, ...]
    report_output: str
    local_report_dir: Path
    webhook: bool
    notes: list[str] = field(default_factory=list)


def make_plan(config: ServeConfig, cluster: ClusterConnection | None) -> Plan:
    """Decide sources, outputs and defaults; with no cluster and no inputs, use the embedded examples."""
    state = config.resolved_state_dir()
    local_report_dir = state / "reports"
    policies = config.policies
    report_dirs = config.reports_dir
    notes: list[str] = []
    if cluster is None and not policies and config.webhook != "off":
        policies = (embedded_defaults() / "policies",)
        notes.append(f"no --policies given: using the embedded example policy in {policies[0]}")
    report_output = config.report_output
    if report_output == "auto":
        # Only a process running in the cluster writes into it: a laptop with a kubeconfig must not.
        report_output = "kubernetes" if cluster is not None and cluster.in_cluster else "local"
        if cluster is not None and not cluster.in_cluster:
            notes.append(
                f"connected through a kubeconfig: audit results go to {local_report_dir} "
                "(--report-output kubernetes writes them into the cluster)"
            )
    elif report_output == "kubernetes" and cluster is None:
        report_output = "local"
        notes.append(f"--report-output kubernetes but no cluster: writing reports to {local_report_dir}")
    if cluster is None and not report_dirs and not config.policies:
        # The examples go with the example policy: with your own policies they would only mislead.
        report_dirs = (embedded_defaults() / "reports",)
        notes.append(f"no cluster and no --reports-dir: watching the embedded examples in {report_dirs[0]}")
    if report_output == "local" and local_report_dir not in report_dirs:
        report_dirs = (*report_dirs, local_report_dir)
    webhook = config.webhook == "on" or (config.webhook == "auto" and bool(policies))
    return Plan(cluster, policies, report_dirs, report_output, local_report_dir, webhook, notes)


def reports_config(config: ServeConfig) -> ReportsConfig:
    """The watcher's label mode, result filters and namespace scope from the serve options."""
    filters = ResultFilters(
        policies=GlobFilter(config.policy_include, config.policy_exclude),
        sources=GlobFilter(config.source_include, config.source_exclude),
        statuses=GlobFilter(config.status_include, config.status_exclude),
        severities=GlobFilter(config.severity_include, config.severity_exclude),
        kinds=GlobFilter(config.kind_include, config.kind_exclude),
    )
    return ReportsConfig(
        label_mode=config.label_mode,  # type: ignore[arg-type]  # validated by the option's choices
        custom_labels=config.custom_labels,
        filters=filters,
        namespaces=GlobFilter(config.namespace_include, config.namespace_exclude),
        report_summaries=config.report_summaries,
    )


class Listener(Protocol):
    """A started server: ``cleanup`` stops accepting and drains in-flight requests."""

    async def cleanup(self) -> None: ...


async def _listen(
    app: web.Application,
    address: str,
    option: str,
    grace: float,
    ssl_context: ssl.SSLContext | None = None,
    *,
    own_thread: str | None = None,
    site: str,
    metrics: ServiceMetrics,
) -> tuple[Listener, str]:
    """Serve ``app`` on ``address`` (on a thread so named, with an event loop of its own, if
    ``own_thread``); returns the listener and the URL actually bound. Connections closed to hold the
    connection cap are counted under ``site`` in trustwatch_http_connections_closed_total."""
    host, port = split_address(address, option)

    def count_cap_closure(reason: CapClosure) -> None:
        metrics.http_connections_closed.labels(site=site, reason=reason).inc()

    listener: Listener
    try:
        if own_thread is not None:
            listener = threaded = ThreadedServer(own_thread)
            bound = await threaded.start(
                app, host, port, shutdown_timeout=grace, on_cap_closure=count_cap_closure
            )
        else:
            listener, bound = await start_site(
                app,
                host,
                port,
                ssl_context=ssl_context,
                shutdown_timeout=grace,
                on_cap_closure=count_cap_closure,
            )
    except OSError as exc:
        busy = exc.errno == errno.EADDRINUSE
        hint = f"another process is using it: stop that process or choose a free address with {option}"
        raise StartupError(
            f"{option} {address}: cannot listen: {exc.strerror or exc}"
            + (f" ({hint})" if busy else f" (choose another address with {option})")
        ) from exc
    scheme = "https" if ssl_context is not None else "http"
    display_host = f"[{host}]" if ":" in host else host
    return listener, f"{scheme}://{display_host}:{bound}"


def _log_trusted_root(root: TrustedRoot) -> None:
    """Name the Sigstore root policy attestors trust and what it lists, so that the rollout of a new one
    (a private Sigstore, a rotated key) can be checked in the logs."""
    log.info(
        "sigstore trusted root loaded",
        extra={
            "trusted_root": root.source,
            "certificate_authorities": [authority.uri for authority in root.certificate_authorities],
            "transparency_logs": [entry.base_url for entry in root.tlogs],
            "ct_logs": [entry.base_url for entry in root.ctlogs],
            "timestamp_authorities": [authority.uri for authority in root.timestamp_authorities],
        },
    )


@dataclass(frozen=True)
class WebhookInputs:
    """What the webhook needs that is read from files at start-up (and validated then)."""

    reloader: PolicyReloader
    certificate: ServingCertificate
    credentials: CredentialStore | None
    trusted_root: TrustedRoot | None


class Service:
    """The running process: components, their tasks, and an orderly shutdown."""

    def __init__(self, config: ServeConfig, plan: Plan, metrics: ServiceMetrics) -> None:
        self.config = config
        self.plan = plan
        self.metrics = metrics
        self.readiness = Readiness()
        self.store = ReportStore()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []
        self.heartbeat = LoopHeartbeat(metrics.event_loop_lag)
        self.writer: ReportWriter | None = None
        self.violations: ViolationRecorder | None = None
        self._resources = contextlib.AsyncExitStack()
        self.crashed = asyncio.Event()

    def _spawn(self, name: str, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._report_crash)
        self._tasks.append(task)

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        """A component that dies takes the process down (exit 1), so the kubelet restarts it, rather than
        leaving a process that looks healthy with a part missing."""
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "component stopped unexpectedly; shutting down",
            extra={"component": task.get_name(), "error": repr(task.exception())},
        )
        self.crashed.set()

    async def start(self) -> None:
        """Start every component; returns once all listeners are bound."""
        config, plan = self.config, self.plan
        reports = reports_config(config)
        reports.scheme()  # fail fast on a bad custom label list
        # Everything that can be wrong in the configuration is checked before anything listens.
        webhook_inputs = self._prepare_webhook() if plan.webhook else None
        self._spawn("event-loop-heartbeat", self.heartbeat.run())
        # The report families are rendered by their own fast path, not through the registry.
        status_app = build_status_app(
            self.metrics.registry, self.readiness, self.heartbeat, ReportExposition(self.store, reports)
        )
        listener, url = await _listen(
            status_app,
            config.metrics_address,
            "--metrics-address",
            config.grace_period,
            own_thread="trustwatch-status",
            site="status",
            metrics=self.metrics,
        )
        self._listeners.append(listener)
        log.info("status server listening", extra={"url": url})
        self._start_report_sources(reports)
        if webhook_inputs is not None:
            await self._start_webhook(webhook_inputs)
        self.readiness.started = True  # every component's readiness check is registered now

    def _start_report_sources(self, reports: ReportsConfig) -> None:
        if self.plan.cluster is not None:
            kube = KubeReportSource(
                self.plan.cluster.api_client_factory,
                self.store,
                self.metrics,
                reports,
                connection=self.plan.cluster.health,
            )
            self._spawn("kube-report-source", kube.run())
            self.readiness.add(
                "kubernetes-reports", lambda: _source_state(kube.ready, kube.health(), kube.problem)
            )
        if self.plan.report_dirs:
            if self.plan.report_output == "local":
                self.plan.local_report_dir.mkdir(parents=True, exist_ok=True)
            local = LocalReportSource(self.plan.report_dirs, self.store, self.metrics, interval=POLL_INTERVAL)
            self._spawn("local-report-source", local.run())
            self.readiness.add(
                "local-reports", lambda: _source_state(local.ready, _skipped_files(local.problems))
            )

    def _report_backend(self) -> ReportBackend | None:
        """Where audit results go; the local directory exists already (it is also a report source)."""
        cluster = self.plan.cluster
        if self.plan.report_output == "kubernetes" and cluster is not None:
            backend = KubernetesReportBackend(cluster.api_client_factory())
            self._start_cluster_report_upkeep(cluster, backend)
            return backend
        if self.plan.report_output == "local":
            return LocalReportBackend(self.plan.local_report_dir)
        return None

    def _start_cluster_report_upkeep(
        self, cluster: ClusterConnection, backend: KubernetesReportBackend
    ) -> None:
        """What keeps reports written into a cluster true: the reaper removing results of deleted
        resources, and PolicyViolation events for the denials that are never results."""
        reaper = ResultReaper(
            backend,
            LiveResources(cluster.api_client_factory()),
            report_api=self.config.report_api,
            interval=self.config.report_cleanup_interval,
            connection=cluster.health,
        )
        self._spawn("report-reaper", reaper.run())
        self.violations = ViolationRecorder(KubernetesViolationBackend(cluster.api_client_factory()))
        self._spawn("violation-events", self.violations.run())

    def _prepare_webhook(self) -> WebhookInputs:
        """Load policies, TLS material and registry credentials; raises on any configuration error."""
        config = self.config
        reloader = PolicyReloader(self.plan.policies, self.metrics, interval=POLL_INTERVAL)
        reloader.load_initial()
        tls_config = TLSConfig(
            cert_file=config.tls_cert,
            key_file=config.tls_key,
            generate_dir=config.resolved_state_dir() / "tls",
        )
        certificate = ServingCertificate.open(tls_config, self.metrics)
        credentials = load_docker_config(config.registry_config) if config.registry_config else None
        trusted_root = load_trusted_root(config.trusted_root) if config.trusted_root else None
        if trusted_root is not None:
            _log_trusted_root(trusted_root)
        return WebhookInputs(reloader, certificate, credentials, trusted_root)

    async def _start_webhook(self, inputs: WebhookInputs) -> None:
        config, plan = self.config, self.plan
        reloader, certificate = inputs.reloader, inputs.certificate
        self._spawn("policy-reloader", reloader.run())
        backend = self._report_backend()
        if backend is not None:
            self.writer = ReportWriter(backend, self.metrics, report_api=config.report_api)
            self._spawn("report-writer", self.writer.run())
        namespaces = NamespaceLabels(plan.cluster)
        if plan.cluster is not None:
            self._spawn("namespace-labels", namespaces.run())
        # Not ready (so out of the Service's endpoints) until every input of a decision is loaded.
        self.readiness.add("policies", lambda: (True, f"{len(reloader.current().policies)} loaded"))
        self.readiness.add(
            "namespace-labels",
            lambda: (namespaces.loaded, "" if namespaces.loaded else "first list of Namespaces not finished"),
        )
        registry_options = RegistryOptions(
            insecure_registries=frozenset(config.insecure_registry),
            credentials=inputs.credentials,
            deadline=config.timeout,
            on_request=registry_metrics_hook(self.metrics),
        )
        client = await self._resources.enter_async_context(RegistryClient(registry_options))
        settings = CacheSettings(ttl=config.cache_ttl, max_entries=config.cache_size)
        secret_keys = (
            KubernetesSecretKeys(plan.cluster.api_client_factory()) if plan.cluster is not None else None
        )
        verifier = ImageVerifier(
            client, self.metrics, settings, secret_keys=secret_keys, trusted_root=inputs.trusted_root
        )
        self._resources.push_async_callback(verifier.close)
        engine = AdmissionEngine(
            lambda: reloader.current().policies,
            verifier,
            self.metrics,
            config=AdmissionConfig(
                timeout=config.timeout,
                namespace_include=config.namespace_include,
                namespace_exclude=config.namespace_exclude,
                # Behind an API server, results wait for the name and uid it gives the object.
                results_from="validate" if plan.report_output == "kubernetes" else "mutate",
            ),
            results=self.writer,
            violations=self.violations,
            namespace_labels=namespaces.labels_of,
        )
        self._spawn("tls-reloader", certificate.watch(POLL_INTERVAL))
        listener, url = await _listen(
            build_webhook_app(engine, self.metrics, ready=lambda: namespaces.loaded),
            config.webhook_address,
            "--webhook-address",
            config.grace_period,
            site="webhook",
            metrics=self.metrics,
            ssl_context=certificate.context,
        )
        self._listeners.insert(0, listener)  # stopped first on shutdown
        log.info(
            "admission webhook listening", extra={"url": url, "policies": [str(p) for p in plan.policies]}
        )

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish and flush reports, all within one grace period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.grace_period
        # Every listener drains at once (each bounded by the grace period), not one after the other.
        await asyncio.gather(*(listener.cleanup() for listener in self._listeners), return_exceptions=True)
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.flush(final=True), max(0.0, deadline - loop.time()))
        if self.violations is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.violations.flush(), max(0.0, deadline - loop.time()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._resources.aclose()


async def run(config: ServeConfig) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    # Memory returns to the system after bursts (docs/admission.md, exporter/memory.py).
    keep_large_allocations_returnable()
    trimmer = HeapTrimmer()
    trimmer.start()
    try:
        return await _serve(config)
    finally:
        trimmer.stop()


async def _serve(config: ServeConfig) -> int:
    metrics = ServiceMetrics()
    metrics.build_info.info({"version": __version__})
    try:
        cluster = await asyncio.to_thread(connect, config.kubernetes)
    except ClusterUnavailableError as exc:
        raise StartupError(str(exc)) from exc
    plan = make_plan(config, cluster)
    log.info(
        "starting trustwatch",
        extra={
            "version": __version__,
            "cluster": cluster.description if cluster else "none (local files)",
            "report_output": plan.report_output,
        },
    )
    for note in plan.notes:
        log.info(note)
    service = Service(config, plan, metrics)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        try:
            await service.start()
        except _STARTUP_ERRORS as exc:
            raise StartupError(str(exc)) from exc
        waiters = [asyncio.create_task(event.wait()) for event in (stopping, service.crashed)]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        log.info("stopping", extra={"grace_period_seconds": config.grace_period})
    finally:
        await service.stop()
    log.info("stopped")
    return 1 if service.crashed.is_set() else 0
