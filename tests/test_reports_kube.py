"""The Kubernetes report source against the fake API server, through the real kubernetes client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from exporter.metrics import ServiceMetrics
from exporter.reports.config import ReportsConfig, WatchTuning
from exporter.reports.filters import GlobFilter
from exporter.reports.sources.kube import KubeReportSource
from exporter.reports.store import ReportStore
from tests.support.fake_kube import FakeKubeServer, GoneAs, report_document, report_result

POLR_API = "wgpolicyk8s.io/v1alpha2"
POLR = "wgpolicyk8s.io/v1alpha2/PolicyReport"
CPOLR = "wgpolicyk8s.io/v1alpha2/ClusterPolicyReport"
OPENREPORTS = "openreports.io/v1alpha1/Report"
FAST = WatchTuning(rediscover_interval=0.05, backoff_initial=0.01, backoff_max=0.05, list_page_size=2)


class Running:
    def __init__(self, server: FakeKubeServer, config: ReportsConfig) -> None:
        self.server = server
        self.store = ReportStore()
        self.metrics = ServiceMetrics()
        self.source = KubeReportSource(server.api_client, self.store, self.metrics, config)

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    def names(self, api: str = POLR) -> set[str]:
        return {key[2] for key in self.store.keys(api)}

    def first_status(self, name: str, namespace: str = "dev") -> str | None:
        """The status of the first result of PolicyReport ``namespace/name``; None while it is not stored."""
        report = self.store.get((POLR, namespace, name))
        return None if report is None else report.results[0].status

    async def until(self, predicate: Callable[[], bool]) -> None:
        await self.server.wait_for(predicate)


@contextlib.asynccontextmanager
async def running(server: FakeKubeServer, config: ReportsConfig | None = None) -> AsyncIterator[Running]:
    run = Running(server, config or ReportsConfig(tuning=FAST))
    task = asyncio.create_task(run.source.run())
    try:
        await asyncio.wait_for(run.source.ready.wait(), 10)
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def polr(name: str, namespace: str = "dev", status: str = "fail") -> dict[str, Any]:
    return report_document(
        name, namespace, [report_result("require-signed", status, resource=("Pod", namespace, name))]
    )


async def test_initial_sync_then_updates_and_deletes() -> None:
    async with FakeKubeServer() as server:
        for index in range(5):  # more than one list page (page size 2)
            server.put_object(polr(f"r{index}"))
        server.put_object(report_document("cluster", "", [report_result("ns-labels", "warn", resource=None)]))
        async with running(server) as run:
            assert run.names() == {"r0", "r1", "r2", "r3", "r4"}
            assert run.names(CPOLR) == {"cluster"}
            await run.until(lambda: server.active_watches == 4)
            assert (
                len(
                    [
                        r
                        for r in server.requests
                        if r.path.endswith("/policyreports") and "continue" in r.query
                    ]
                )
                == 2
            )
            watch = server.watch_requests("policyreports")[0]
            assert watch.query["allowWatchBookmarks"] == "true"
            assert watch.query["resourceVersion"] == str(server.resource_version)
            assert run.value("trustwatch_report_watch_up", api=POLR) == 1
            assert run.source.health()[POLR] == "watching"
            transitions = run.store.aggregate_for(ReportsConfig(tuning=FAST)).transitions
            assert transitions == {}  # failures found by the initial sync are state, not new violations

            server.put_object(polr("r0", status="pass"))
            server.put_object(polr("r9"))
            server.delete_object(POLR_API, "PolicyReport", "r1", "dev")
            await run.until(lambda: run.names() == {"r0", "r2", "r3", "r4", "r9"})
            assert transitions == {("dev", "require-signed", "fail"): 1}  # r9 is a new failure
            await run.until(lambda: run.first_status("r0") == "pass")
            assert (run.value("trustwatch_report_watch_last_event_timestamp_seconds", api=POLR) or 0) > 0
            assert len(server.watch_requests("policyreports")) == 1  # one watch did it all


async def test_cut_connection_resumes_from_last_resource_version_without_relisting() -> None:
    async with FakeKubeServer() as server:
        server.put_object(polr("a"))
        async with running(server) as run:
            server.put_object(polr("b"))
            await run.until(lambda: run.names() == {"a", "b"})
            seen = str(server.resource_version)
            requests_before = len(server.requests)
            server.cut_watches()
            server.delete_object(POLR_API, "PolicyReport", "a", "dev")  # happens while disconnected
            await run.until(lambda: run.names() == {"b"})
            resumed = server.watch_requests("policyreports")[-1]
            assert resumed.query["resourceVersion"] == seen
            policyreport_lists = [
                r for r in server.requests[requests_before:] if r.path.endswith("/policyreports")
            ]
            assert all(r.query.get("watch") == "true" for r in policyreport_lists)
            assert (
                run.value("trustwatch_report_watch_restarts_total", api=POLR, reason="connection_error") == 1
            )


@pytest.mark.parametrize("gone_as", ["event", "status"])
async def test_410_gone_relists_and_drops_reports_deleted_meanwhile(gone_as: GoneAs) -> None:
    async with FakeKubeServer(gone_as=gone_as) as server:
        for name in ("keep", "doomed", "changed"):
            server.put_object(polr(name))
        async with running(server) as run:
            await run.until(lambda: len(run.store) == 3)
            # all at once as seen by clients: disconnect, changes, and compaction of the history
            server.cut_watches()
            server.delete_object(POLR_API, "PolicyReport", "doomed", "dev")
            server.put_object(polr("changed", status="pass"))
            server.put_object(polr("new"))
            server.expire_history()
            await run.until(lambda: run.names() == {"keep", "changed", "new"})
            assert run.first_status("changed") == "pass"
            assert run.value("trustwatch_report_watch_restarts_total", api=POLR, reason="gone") == 1
            aggregate = run.store.aggregate_for(ReportsConfig(tuning=FAST))
            assert {key[1]: count for key, count in aggregate.summaries.items()} == {
                "keep": [1, 0, 1, 0, 0, 0],
                "changed": [1, 1, 0, 0, 0, 0],
                "new": [1, 0, 1, 0, 0, 0],
            }


async def test_server_errors_back_off_and_recover() -> None:
    async with FakeKubeServer() as server:
        server.put_object(polr("a"))
        server.fail_next(2, 500, path_contains="/policyreports")
        async with running(server) as run:
            assert run.names() == {"a"}
            assert run.value("trustwatch_report_watch_restarts_total", api=POLR, reason="http_error") == 2
            assert run.value("trustwatch_report_watch_up", api=POLR) == 1


async def test_bookmarks_move_the_resume_point() -> None:
    async with FakeKubeServer() as server, running(server) as run:
        await run.until(lambda: server.active_watches == 4)
        server.put_object(report_document("other", "", [], kind="ClusterPolicyReport"))  # moves the RV
        last_event = run.value("trustwatch_report_watch_last_event_timestamp_seconds", api=POLR)
        server.send_bookmarks()
        bookmarked = str(server.resource_version)
        await run.until(
            lambda: run.value("trustwatch_report_watch_last_event_timestamp_seconds", api=POLR) != last_event
        )
        server.cut_watches()
        await run.until(lambda: len(server.watch_requests("policyreports")) == 2)
        assert server.watch_requests("policyreports")[-1].query["resourceVersion"] == bookmarked


async def test_missing_group_is_skipped_then_picked_up_and_dropped_when_it_vanishes() -> None:
    async with FakeKubeServer(groups_present=["wgpolicyk8s.io"]) as server:
        server.put_object(polr("a"))
        async with running(server) as run:
            assert run.source.health()[OPENREPORTS] == "missing"
            assert run.value("trustwatch_report_watch_up", api=OPENREPORTS) is None
            assert run.source.problem is None

            server.add_group("openreports.io")
            server.put_object(
                report_document(
                    "trivy", "prod", [report_result("CVE-1", "warn")], api_version="openreports.io/v1alpha1"
                )
            )
            await run.until(lambda: run.names(OPENREPORTS) == {"trivy"})
            # The list lands in the store from the worker thread just before the loop marks the watch up.
            await run.until(lambda: run.value("trustwatch_report_watch_up", api=OPENREPORTS) == 1)

            server.remove_group("openreports.io")
            await run.until(lambda: run.names(OPENREPORTS) == set())
            await run.until(lambda: run.source.health()[OPENREPORTS] == "missing")
            assert run.names() == {"a"}

            lists = len(
                [r for r in server.requests if r.path.endswith("/reports") and "watch" not in r.query]
            )
            server.add_group("openreports.io")  # back again, with its object still there: listed afresh
            await run.until(lambda: run.names(OPENREPORTS) == {"trivy"})
            assert (
                len([r for r in server.requests if r.path.endswith("/reports") and "watch" not in r.query])
                > lists
            )


async def test_no_report_api_at_all_is_ready_with_the_reason() -> None:
    async with FakeKubeServer(groups_present=[]) as server, running(server) as run:
        assert run.source.problem is not None
        assert "install the PolicyReport" in run.source.problem
        assert len(run.store) == 0


async def test_namespace_include_and_exclude() -> None:
    config = ReportsConfig(
        namespaces=GlobFilter.of(include=["team-*"], exclude=["team-sandbox"]), tuning=FAST
    )
    async with FakeKubeServer() as server:
        for namespace in ("team-a", "team-sandbox", "other"):
            server.put_object(polr(f"r-{namespace}", namespace))
        server.put_object(report_document("cluster", "", []))
        async with running(server, config) as run:
            assert {key[1] for key in run.store.keys(POLR)} == {"team-a"}
            assert run.names(CPOLR) == {"cluster"}  # cluster-scoped reports are not namespaced
            server.put_object(polr("late", "other"))
            server.put_object(polr("late", "team-b"))
            await run.until(lambda: {key[1] for key in run.store.keys(POLR)} == {"team-a", "team-b"})


async def test_malformed_reports_are_skipped_alone() -> None:
    async with FakeKubeServer() as server:
        server.put_object(polr("good"))
        server.put_object(polr("turns-bad"))
        bad = polr("bad")
        bad["results"] = "not a list"
        server.put_object(bad)
        async with running(server) as run:
            assert run.names() == {"good", "turns-bad"}
            broken = polr("turns-bad")
            broken["results"] = {"policy": "x"}
            server.put_object(broken)  # its old numbers are no longer true: it goes
            server.put_object(polr("after"))
            await run.until(lambda: run.names() == {"good", "after"})


async def test_openreports_and_filters_end_to_end() -> None:
    config = ReportsConfig(label_mode="detailed", tuning=FAST)
    async with FakeKubeServer() as server:
        server.put_object(
            report_document(
                "pod-shop",
                "prod",
                [{"policy": "CVE-2024-1", "result": "fail", "severity": "critical"}],
                api_version="openreports.io/v1alpha1",
                source="trivy",
                scope={"apiVersion": "v1", "kind": "Pod", "name": "shop", "namespace": "prod"},
            )
        )
        async with running(server, config) as run:
            aggregate = run.store.aggregate_for(config)
            assert aggregate.namespaced_results == {
                ("prod", "CVE-2024-1", "", "fail", "critical", "", "trivy", "Pod", "shop", "pod-shop"): 1
            }


async def test_a_kind_that_cannot_be_listed_keeps_the_source_unready_and_says_why() -> None:
    async with FakeKubeServer(groups_present=["wgpolicyk8s.io"]) as server:
        server.put_object(polr("a"))
        server.fail_next(10_000, 403, path_contains="/policyreports")
        run = Running(server, ReportsConfig(tuning=FAST))
        task = asyncio.create_task(run.source.run())
        try:
            await run.until(
                lambda: (
                    (run.value("trustwatch_report_watch_restarts_total", api=POLR, reason="http_error") or 0)
                    >= 2
                )
            )
            # Between retries the state flips to "listing" for a moment; wait until it shows the error.
            await run.until(lambda: run.source.health()[POLR].startswith("retrying after error: HTTP 403"))
            assert not run.source.ready.is_set()
            server.clear_failures()  # RBAC fixed
            await asyncio.wait_for(run.source.ready.wait(), 10)
            assert run.names() == {"a"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
