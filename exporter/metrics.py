"""Every metric trustwatch exposes, defined once: name, type, help and labels.

Dashboards, alerting rules and docs use these names, and a test proves that every series they query is
defined here. Two kinds live side by side:

* instrumented metrics (admission, verification, report writing, health) are ``prometheus_client`` objects
  created by :class:`ServiceMetrics` on a registry the caller owns, so tests get fresh ones;
* report metrics are rendered at scrape time from the report store, using the specs below
  (``POLICY_REPORT_*``) for names, help and labels, so series of deleted results vanish by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

PREFIX = "trustwatch"

# ``_created`` series double the series count of every counter and histogram and nothing queries them.
disable_created_metrics()  # type: ignore[no-untyped-call]

MetricType = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is called, what it counts and which labels it carries.

    ``name`` is the family name without the ``_total``/``_bucket``/``_info`` suffixes that Prometheus adds.
    """

    name: str
    type: MetricType
    documentation: str
    labels: tuple[str, ...] = ()

    def series_names(self) -> tuple[str, ...]:
        """The sample names this family produces in the exposition format."""
        if self.type == "counter":
            return (f"{self.name}_total",)
        if self.type == "histogram":
            return tuple(f"{self.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        if self.type == "info":
            return (f"{self.name}_info",)
        return (self.name,)


def _spec(name: str, type_: MetricType, documentation: str, *labels: str) -> MetricSpec:
    return MetricSpec(f"{PREFIX}_{name}", type_, documentation, labels)


# --- admission webhook ---------------------------------------------------------------------------------
ADMISSION_REQUESTS = _spec(
    "admission_requests",
    "counter",
    "Admission reviews answered, by webhook (mutate|validate), operation, resource kind (Pod and the Pod "
    "controllers; any other kind is 'other') and decision (allowed|denied|error).",
    "webhook",
    "operation",
    "kind",
    "decision",
)
ADMISSION_FALLBACKS = _spec(
    "admission_fallback_decisions",
    "counter",
    "Admission reviews answered by failurePolicy instead of by verification, because no decision was made "
    "before the deadline (reason=deadline) or evaluation failed (reason=error), by webhook.",
    "webhook",
    "reason",
)
ADMISSION_REVIEW_DURATION = _spec(
    "admission_review_duration_seconds",
    "histogram",
    "Time from receiving an AdmissionReview to sending the answer.",
    "webhook",
)
IMAGE_VERIFICATIONS = _spec(
    "image_verifications",
    "counter",
    "Image verifications by policy, rule, result (pass|fail|error) and whether the cache answered.",
    "policy",
    "rule",
    "result",
    "cached",
)
IMAGE_VERIFICATION_DURATION = _spec(
    "image_verification_duration_seconds",
    "histogram",
    "Latency of uncached image verifications (registry round trips plus signature checks), by result.",
    "result",
)
POLICY_RESULTS = _spec(
    "admission_policy_results",
    "counter",
    "Rule results produced at admission, by policy, rule, namespace, result (pass|fail|error|skip), the "
    "effective action (Audit|Enforce; an ImageValidatingPolicy's Deny is Enforce) and the policy_type "
    "(ClusterPolicy|Policy|ImageValidatingPolicy|NamespacedImageValidatingPolicy).",
    "policy",
    "rule",
    "namespace",
    "result",
    "action",
    "policy_type",
)
ADMISSION_DENIALS = _spec(
    "admission_denials",
    "counter",
    "Requests denied by an Enforce rule, by policy, rule and namespace.",
    "policy",
    "rule",
    "namespace",
)
AUDIT_FAILURES_ADMITTED = _spec(
    "admission_audit_failures_admitted",
    "counter",
    "Workloads admitted although a rule failed, because the rule's action was Audit (e.g. unsigned images "
    "in audit namespaces), by policy, rule and namespace.",
    "policy",
    "rule",
    "namespace",
)
FAIL_OPEN_ADMISSIONS = _spec(
    "admission_fail_open",
    "counter",
    "Requests admitted although verification could not finish, because failurePolicy is Ignore.",
    "policy",
    "rule",
    "namespace",
)
ADMITTED_WORKLOADS = _spec(
    "admitted_workloads",
    "counter",
    "Admitted workloads by namespace and whether every one of their images verified (verified=true|false); "
    "coverage is the ratio of the two.",
    "namespace",
    "verified",
)
VERIFICATION_CACHE_LOOKUPS = _spec(
    "verification_cache_lookups",
    "counter",
    "Verification cache lookups by result: hit, miss, or shared (joined a verification already in flight).",
    "result",
)
VERIFICATION_CACHE_ENTRIES = _spec(
    "verification_cache_entries",
    "gauge",
    "Entries currently held in the verification cache.",
)
REGISTRY_REQUESTS = _spec(
    "registry_requests",
    "counter",
    "HTTP requests to OCI registries by registry host and status (the HTTP code, or 'error' when no "
    "response came); hosts beyond the first 100 seen are counted as 'other'.",
    "registry",
    "status",
)

# --- audit report writer -------------------------------------------------------------------------------
REPORT_WRITES = _spec(
    "report_writes",
    "counter",
    "PolicyReport writes by result (success|conflict|error).",
    "result",
)
REPORT_QUEUE_DEPTH = _spec(
    "report_queue_depth",
    "gauge",
    "Audit results waiting to be written to PolicyReports.",
)
REPORT_QUEUE_DROPPED = _spec(
    "report_queue_dropped",
    "counter",
    "Audit results dropped because the report queue was full.",
)

# --- policies and serving health ------------------------------------------------------------------------
POLICIES_LOADED = _spec(
    "policies_loaded",
    "gauge",
    "Kyverno policies currently in force, by kind (ClusterPolicy|Policy|ImageValidatingPolicy|"
    "NamespacedImageValidatingPolicy).",
    "kind",
)
POLICY_LOAD_ERRORS = _spec(
    "policy_load_errors",
    "counter",
    "Policy (re)loads rejected as invalid; the last good set stays in force.",
)
POLICY_LAST_LOAD_SUCCESS = _spec(
    "policy_last_load_success",
    "gauge",
    "1 if the most recent policy (re)load succeeded, else 0.",
)
CERTIFICATE_EXPIRY = _spec(
    "serving_certificate_expiry_timestamp_seconds",
    "gauge",
    "Unix time at which the webhook's serving certificate expires.",
)
BUILD_INFO = _spec("build", "info", "trustwatch version.", "version")
EVENT_LOOP_LAG = _spec(
    "event_loop_lag_seconds",
    "histogram",
    "How late the event loop ran a timer due every 0.25 s: time during which no admission review, watch "
    "event or report write could make progress.",
)
HTTP_CONNECTIONS_CLOSED = _spec(
    "http_connections_closed",
    "counter",
    "Connections closed to hold a listener's connection limit, by site (webhook|status) and reason: "
    "evicted_idle (the connection waiting longest without a request in progress was closed to serve a new "
    "one) or refused_at_cap (every connection had a request in progress, so the new one was closed).",
    "site",
    "reason",
)

# --- report watcher (instrumented) ----------------------------------------------------------------------
WATCH_UP = _spec(
    "report_watch_up",
    "gauge",
    "1 while the list+watch of a report API (group/version/kind, or 'local' for the directory source) is "
    "healthy.",
    "api",
)
WATCH_RESTARTS = _spec(
    "report_watch_restarts",
    "counter",
    "Restarts of a report watch (errors, dropped connections, 410 Gone relists).",
    "api",
    "reason",
)
WATCH_LAST_EVENT = _spec(
    "report_watch_last_event_timestamp_seconds",
    "gauge",
    "Unix time of the last event (including bookmarks) received for a report API.",
    "api",
)
REPORT_FILES_SKIPPED = _spec(
    "report_files_skipped",
    "gauge",
    "Files in the local report directory currently skipped as unreadable.",
)

# --- report store (collected at scrape time) -----------------------------------------------------------
# The label sets of the two result families depend on the configured label mode (default, detailed,
# custom); these tuples are the default mode's.
POLICY_REPORT_RESULTS = _spec(
    "policy_report_results",
    "gauge",
    "Results in namespaced PolicyReports/Reports, by namespace, policy, rule, status, severity, category, "
    "source and resource kind.",
    "namespace",
    "policy",
    "rule",
    "status",
    "severity",
    "category",
    "source",
    "kind",
)
CLUSTER_POLICY_REPORT_RESULTS = _spec(
    "cluster_policy_report_results",
    "gauge",
    "Results in ClusterPolicyReports/ClusterReports, by policy, rule, status, severity, category, source and "
    "resource kind.",
    "policy",
    "rule",
    "status",
    "severity",
    "category",
    "source",
    "kind",
)
POLICY_REPORT_SUMMARY = _spec(
    "policy_report_summary",
    "gauge",
    "The summary counts of each namespaced report, by namespace, report and status.",
    "namespace",
    "report",
    "status",
)
CLUSTER_POLICY_REPORT_SUMMARY = _spec(
    "cluster_policy_report_summary",
    "gauge",
    "The summary counts of each cluster-scoped report, by report and status.",
    "report",
    "status",
)
POLICY_REPORT_TRANSITIONS = _spec(
    "policy_report_result_transitions",
    "counter",
    "Results that entered fail, warn or error (new, or changed from another status), by namespace ('' for "
    "cluster scope), policy and status; increase() gives new violations per interval.",
    "namespace",
    "policy",
    "status",
)
POLICY_REPORT_OLDEST_FAILURE = _spec(
    "policy_report_oldest_failure_timestamp_seconds",
    "gauge",
    "Unix time since which the oldest still-failing result of a policy in a namespace has failed (its result "
    "timestamp, else when trustwatch first saw it); time() minus this is its age.",
    "namespace",
    "policy",
)
REPORTS_HELD = _spec(
    "reports",
    "gauge",
    "Reports held by the watcher, by api (the report's group/version/kind, whichever source it came from).",
    "api",
)
REPORT_RESULTS_HELD = _spec(
    "report_results",
    "gauge",
    "Results held by the watcher across all reports.",
)

ALL_METRICS: tuple[MetricSpec, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, MetricSpec)
)

# Latency buckets sized for an admission webhook whose deadline is 10 s by default.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    return Counter(spec.name, spec.documentation, spec.labels, registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.documentation, spec.labels, registry=registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    return Histogram(spec.name, spec.documentation, spec.labels, registry=registry, buckets=LATENCY_BUCKETS)


class ServiceMetrics:
    """The instrumented metrics of one trustwatch process, registered on ``registry``.

    Components receive this object rather than touching globals, so a test can build a fresh registry,
    drive a component and read exact values back.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.admission_requests = _counter(ADMISSION_REQUESTS, reg)
        self.admission_fallbacks = _counter(ADMISSION_FALLBACKS, reg)
        self.admission_review_duration = _histogram(ADMISSION_REVIEW_DURATION, reg)
        self.image_verifications = _counter(IMAGE_VERIFICATIONS, reg)
        self.image_verification_duration = _histogram(IMAGE_VERIFICATION_DURATION, reg)
        self.policy_results = _counter(POLICY_RESULTS, reg)
        self.admission_denials = _counter(ADMISSION_DENIALS, reg)
        self.audit_failures_admitted = _counter(AUDIT_FAILURES_ADMITTED, reg)
        self.fail_open_admissions = _counter(FAIL_OPEN_ADMISSIONS, reg)
        self.admitted_workloads = _counter(ADMITTED_WORKLOADS, reg)
        self.verification_cache_lookups = _counter(VERIFICATION_CACHE_LOOKUPS, reg)
        self.verification_cache_entries = _gauge(VERIFICATION_CACHE_ENTRIES, reg)
        self.registry_requests = _counter(REGISTRY_REQUESTS, reg)
        self.report_writes = _counter(REPORT_WRITES, reg)
        self.report_queue_depth = _gauge(REPORT_QUEUE_DEPTH, reg)
        self.report_queue_dropped = _counter(REPORT_QUEUE_DROPPED, reg)
        self.policies_loaded = _gauge(POLICIES_LOADED, reg)
        self.policy_load_errors = _counter(POLICY_LOAD_ERRORS, reg)
        self.policy_last_load_success = _gauge(POLICY_LAST_LOAD_SUCCESS, reg)
        self.certificate_expiry = _gauge(CERTIFICATE_EXPIRY, reg)
        self.http_connections_closed = _counter(HTTP_CONNECTIONS_CLOSED, reg)
        self.watch_up = _gauge(WATCH_UP, reg)
        self.watch_restarts = _counter(WATCH_RESTARTS, reg)
        self.watch_last_event = _gauge(WATCH_LAST_EVENT, reg)
        self.report_files_skipped = _gauge(REPORT_FILES_SKIPPED, reg)
        self.event_loop_lag = _histogram(EVENT_LOOP_LAG, reg)
        self.build_info = Info(BUILD_INFO.name, BUILD_INFO.documentation, registry=reg)
