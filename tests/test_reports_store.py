"""The incremental store and its aggregates: every event moves the totals exactly, nothing is recounted."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.reports.config import ReportsConfig
from exporter.reports.filters import GlobFilter, ResultFilters
from exporter.reports.labels import LabelConfigError, build_scheme
from exporter.reports.model import Report, parse_report
from exporter.reports.store import ReportStore
from tests.support.fake_kube import report_document, report_result


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def report(name: str, namespace: str, *results: dict[str, Any], **extra: Any) -> Report:
    return parse_report(report_document(name, namespace, results, **extra))


def pod(name: str, namespace: str = "dev") -> tuple[str, str, str]:
    return ("Pod", namespace, name)


def default_key(
    namespace: str, policy: str, status: str, kind: str = "Pod", rule: str = "check"
) -> tuple[str, ...]:
    return (namespace, policy, rule, status, "", "", "kyverno", kind)


def test_apply_update_delete_move_totals_exactly() -> None:
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig())
    store.apply(
        report("a", "dev", report_result("p1", "fail", resource=pod("x")), report_result("p1", "pass"))
    )
    store.apply(report("b", "dev", report_result("p1", "fail", resource=pod("y"))))
    assert aggregate.namespaced_results == {
        default_key("dev", "p1", "fail"): 2,
        default_key("dev", "p1", "pass"): 1,
    }
    store.apply(report("a", "dev", report_result("p1", "pass", resource=pod("x"))))
    assert aggregate.namespaced_results == {
        default_key("dev", "p1", "fail"): 1,
        default_key("dev", "p1", "pass"): 1,
    }
    assert store.delete(("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "b"))
    assert aggregate.namespaced_results == {default_key("dev", "p1", "pass"): 1}
    assert not store.delete(("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "b"))
    assert store.results_held == 1
    assert store.held_per_api() == {"wgpolicyk8s.io/v1alpha2/PolicyReport": 1}


def test_cluster_reports_have_their_own_totals_and_summaries() -> None:
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig())
    store.apply(report("c", "", report_result("p", "warn", resource=("Namespace", "", "dev"))))
    assert aggregate.cluster_results == {("p", "check", "warn", "", "", "kyverno", "Namespace"): 1}
    assert aggregate.namespaced_results == {}
    assert aggregate.summaries == {("", "c"): [1, 0, 0, 1, 0, 0]}


def test_transitions_count_entries_into_fail_warn_error_only() -> None:
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig())
    x, y = pod("x"), pod("y")
    store.apply(
        report("a", "dev", report_result("p", "fail", resource=x), report_result("p", "pass", resource=y))
    )
    assert aggregate.transitions == {("dev", "p", "fail"): 1}
    # unchanged failure, pass -> fail, then a relist delivering the same state: only the real change counts
    store.apply(
        report("a", "dev", report_result("p", "fail", resource=x), report_result("p", "fail", resource=y))
    )
    store.apply(
        report("a", "dev", report_result("p", "fail", resource=x), report_result("p", "fail", resource=y))
    )
    assert aggregate.transitions == {("dev", "p", "fail"): 2}
    # fail -> warn is a new warn; fail -> pass and deletion are not transitions
    store.apply(
        report("a", "dev", report_result("p", "warn", resource=x), report_result("p", "pass", resource=y))
    )
    store.delete(("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "a"))
    assert aggregate.transitions == {("dev", "p", "fail"): 2, ("dev", "p", "warn"): 1}
    # a result that returns after its report was deleted is new again
    store.apply(report("a", "dev", report_result("p", "error", resource=x)))
    assert aggregate.transitions[("dev", "p", "error")] == 1


def test_oldest_failure_uses_timestamps_else_first_seen() -> None:
    clock = Clock()
    store = ReportStore(clock=clock)
    aggregate = store.aggregate_for(ReportsConfig())
    timed = report_result("p", "fail", resource=pod("x"), timestamp={"seconds": 500, "nanos": 0})
    untimed = report_result("q", "fail", resource=pod("y"))
    store.apply(report("a", "dev", timed, untimed))
    assert dict(aggregate.oldest_failures()) == {("dev", "p"): 500.0, ("dev", "q"): 1000.0}
    clock.now = 2_000.0  # the untimed failure keeps its first-seen time across updates
    store.apply(report("a", "dev", timed, untimed, report_result("q", "fail", resource=pod("z"))))
    assert dict(aggregate.oldest_failures()) == {("dev", "p"): 500.0, ("dev", "q"): 1000.0}
    store.apply(report("b", "dev", report_result("p", "fail", resource=pod("w"), timestamp={"seconds": 100})))
    assert dict(aggregate.oldest_failures())[("dev", "p")] == 100.0
    store.delete(("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "b"))
    store.apply(report("a", "dev", untimed))  # p passes now, so it has no failure age at all
    assert dict(aggregate.oldest_failures()) == {("dev", "q"): 1000.0}


def test_initial_sync_seeds_state_without_counting_transitions() -> None:
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig())
    store.replace_all(
        "wgpolicyk8s.io/v1alpha2/PolicyReport",
        [report("a", "dev", report_result("p", "fail"))],
        count_transitions=False,
    )
    assert aggregate.transitions == {}
    store.apply(report("a", "dev", report_result("p", "fail"), report_result("p", "warn", resource=pod("y"))))
    assert aggregate.transitions == {("dev", "p", "warn"): 1}


def test_replace_all_deletes_reports_not_listed() -> None:
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig())
    for name in ("a", "b", "c"):
        store.apply(report(name, "dev", report_result("p", "fail")))
    removed = store.replace_all(
        "wgpolicyk8s.io/v1alpha2/PolicyReport", [report("b", "dev", report_result("p", "pass"))]
    )
    assert removed == 2
    assert store.keys() == [("wgpolicyk8s.io/v1alpha2/PolicyReport", "dev", "b")]
    assert aggregate.namespaced_results == {default_key("dev", "p", "pass"): 1}
    with pytest.raises(ValueError, match=r"got a wgpolicyk8s\.io/v1alpha2/PolicyReport report"):
        store.replace_all("openreports.io/v1alpha1/Report", [report("b", "dev")])


def test_a_new_label_config_is_filled_once_from_reports_held() -> None:
    store = ReportStore()
    store.apply(report("a", "dev", report_result("p", "fail", resource=pod("x"))))
    detailed = store.aggregate_for(ReportsConfig(label_mode="detailed"))
    assert detailed.namespaced_results == {(*default_key("dev", "p", "fail"), "x", "a"): 1}
    assert detailed.transitions == {}  # existing failures are state, not new violations
    assert store.aggregate_for(ReportsConfig(label_mode="detailed")) is detailed


def test_filters_given_as_lists_still_make_a_usable_config() -> None:
    config = ReportsConfig(filters=ResultFilters(policies=GlobFilter(["a*"], ["ab"])))  # type: ignore[arg-type]
    assert ReportStore().aggregate_for(config).config.filters.policies.include == ("a*",)


def test_filters_apply_to_every_dimension() -> None:
    filters = ResultFilters(
        namespaces=GlobFilter.of(exclude=["kube-*"]),
        policies=GlobFilter.of(include=["require-*"]),
        statuses=GlobFilter.of(exclude=["skip"]),
        severities=GlobFilter.of(exclude=["info"]),
        sources=GlobFilter.of(include=["kyverno"]),
        kinds=GlobFilter.of(exclude=["Event"]),
    )
    store = ReportStore()
    aggregate = store.aggregate_for(ReportsConfig(filters=filters))
    store.apply(report("sys", "kube-system", report_result("require-a", "fail")))
    store.apply(
        report(
            "a",
            "dev",
            report_result("require-a", "fail"),
            report_result("other", "fail"),
            report_result("require-a", "skip"),
            report_result("require-a", "fail", severity="info"),
            report_result("require-a", "fail", source="trivy"),
            report_result("require-a", "fail", resource=("Event", "dev", "e")),
        )
    )
    assert aggregate.namespaced_results == {default_key("dev", "require-a", "fail"): 1}
    assert set(aggregate.summaries) == {("dev", "a")}
    assert aggregate.transitions == {("dev", "require-a", "fail"): 1}


def test_custom_labels_read_report_labels_and_properties_with_sanitised_names() -> None:
    config = ReportsConfig(
        label_mode="custom",
        custom_labels=(
            "namespace",
            "policy",
            "status",
            "label:app.kubernetes.io/team",
            "property:image",
            "property:im.age",
        ),
    )
    scheme = config.scheme()
    assert scheme.namespaced_names == (
        "namespace",
        "policy",
        "status",
        "label_app_kubernetes_io_team",
        "property_image",
        "property_im_age",
    )
    assert scheme.cluster_names == scheme.namespaced_names[1:]
    collision = build_scheme("custom", ["property:a.b", "property:a_b", "policy", "policy"])
    assert collision.namespaced_names == ("property_a_b", "property_a_b_2", "policy")

    store = ReportStore()
    aggregate = store.aggregate_for(config)
    store.apply(
        report(
            "a",
            "dev",
            report_result("p", "fail", properties={"image": "app:1"}),
            report_result("p", "fail", properties={"image": "app:1"}, resource=pod("y")),
            labels={"app.kubernetes.io/team": "payments"},
        )
    )
    assert aggregate.namespaced_results == {("dev", "p", "fail", "payments", "app:1", ""): 2}


@pytest.mark.parametrize(
    ("mode", "labels", "message"),
    [
        ("custom", [], "needs at least one label"),
        ("custom", ["policy", "owner"], "unknown custom label 'owner'"),
        ("verbose", [], "is not one of default, detailed, custom"),
    ],
)
def test_unusable_label_configs_say_what_is_allowed(mode: str, labels: list[str], message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        build_scheme(mode, labels)  # type: ignore[arg-type]
