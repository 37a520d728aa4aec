"""Namespace labels for namespaceSelector: a list+watch cache through the real client and the fake API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.cluster import ClusterConnection
from exporter.namespaces import NAME_LABEL, NamespaceLabels
from tests.support.fake_kube import NAMESPACES, REPORT_RESOURCES, FakeKubeServer


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


@contextlib.asynccontextmanager
async def running(cache: NamespaceLabels) -> AsyncIterator[NamespaceLabels]:
    task = asyncio.create_task(cache.run())
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeServer]:
    async with FakeKubeServer((*REPORT_RESOURCES, NAMESPACES)) as server:
        yield server


async def test_without_a_cluster_only_the_name_label_is_known() -> None:
    async with running(NamespaceLabels(None)) as cache:
        await asyncio.wait_for(cache.synced.wait(), 5)
        assert cache.labels_of("prod") == {NAME_LABEL: "prod"}


async def test_labels_follow_the_watch_and_survive_expiry(api: FakeKubeServer) -> None:
    api.put_object(namespace("prod", env="production", team="shop"))
    cache = NamespaceLabels(ClusterConnection("fake", api.api_client), backoff_max=0.2)
    async with running(cache):
        await asyncio.wait_for(cache.synced.wait(), 10)
        assert cache.labels_of("prod") == {"env": "production", "team": "shop"}
        assert cache.labels_of("unknown") == {NAME_LABEL: "unknown"}

        api.put_object(namespace("dev", env="dev"))
        api.put_object(namespace("prod", env="production"))
        await api.wait_for(lambda: cache.labels_of("dev") == {"env": "dev"}, within=10)
        await api.wait_for(lambda: cache.labels_of("prod") == {"env": "production"}, within=10)

        api.delete_object("v1", "Namespace", "dev")
        await api.wait_for(lambda: cache.labels_of("dev") == {NAME_LABEL: "dev"}, within=10)

        # Compaction while the watch is cut: the cache relists and still converges.
        api.expire_history()
        api.put_object(namespace("staging", env="staging"))
        api.cut_watches()
        await api.wait_for(lambda: cache.labels_of("staging") == {"env": "staging"}, within=10)


async def test_server_errors_back_off_and_recover(api: FakeKubeServer) -> None:
    api.put_object(namespace("prod", env="production"))
    api.fail_next(3, 500, "/api/v1/namespaces")
    cache = NamespaceLabels(ClusterConnection("fake", api.api_client), backoff_max=0.2)
    async with running(cache):
        await asyncio.wait_for(cache.synced.wait(), 10)
        assert cache.labels_of("prod") == {"env": "production"}
        failed = [r for r in api.requests if r.path == "/api/v1/namespaces"]
        assert len(failed) >= 4


async def test_labels_are_unknown_until_the_first_list(api: FakeKubeServer) -> None:
    api.put_object(namespace("prod", env="production"))
    cache = NamespaceLabels(ClusterConnection("fake", api.api_client), backoff_max=0.2)
    assert cache.loaded is False
    assert cache.labels_of("prod") is None  # unknown, not "no labels"
    async with running(cache):
        await asyncio.wait_for(cache.synced.wait(), 10)
        assert cache.loaded is True
        assert cache.labels_of("prod") == {"env": "production"}
