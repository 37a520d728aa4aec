"""Report files that are hostile or broken never stop, block or blow up the local report source: each is
skipped with a warning and counted in trustwatch_report_files_skipped, and the good files still count."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from exporter.metrics import ServiceMetrics
from exporter.reports.sources.local import MAX_FILE_BYTES, LocalReportSource
from exporter.reports.store import ReportStore

DATA = Path(__file__).parent / "data" / "reports"
GOOD_KEY = ("wgpolicyk8s.io/v1alpha2/PolicyReport", "kube-system", "kube-bench")

REPORT_HEAD = """apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata: {name: hostile, namespace: prod}
"""


def hostile_directory(directory: Path) -> list[str]:
    """Write one good report and one file of each hostile kind; returns the hostile file names."""
    shutil.copy(DATA / "single.json", directory / "good.json")
    (directory / "loop-a.yaml").symlink_to(directory / "loop-b.yaml")
    (directory / "loop-b.yaml").symlink_to(directory / "loop-a.yaml")
    os.mkfifo(directory / "fifo.yaml")
    (directory / "latin1.yaml").write_bytes(REPORT_HEAD.encode() + b"results: [{message: caf\xe9}]\n")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
    )
    (directory / "aliases.yaml").write_text(laughs)
    (directory / "huge.yaml").write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    (directory / "deep.yaml").write_text("[" * 200_000 + "]" * 200_000)
    (directory / "deep.json").write_text("[" * 2000 + "]" * 2000)
    (directory / "digits.json").write_text('{"a": ' + "9" * 5000 + "}")
    return ["loop-a.yaml", "loop-b.yaml", "fifo.yaml", "latin1.yaml", "aliases.yaml", "huge.yaml",
            "deep.yaml", "deep.json", "digits.json"]  # fmt: skip


async def test_hostile_files_are_skipped_and_counted(tmp_path: Path) -> None:
    hostile = hostile_directory(tmp_path)
    store = ReportStore()
    metrics = ServiceMetrics()
    source = LocalReportSource([tmp_path], store, metrics, interval=0.01)
    # A FIFO that were opened for reading would block this thread forever: bound the wait.
    outcome = await asyncio.wait_for(asyncio.to_thread(source.scan_once), 60)
    assert sorted(path.name for path in outcome.skipped) == sorted(hostile)
    assert set(store.keys()) == {GOOD_KEY}
    assert metrics.registry.get_sample_value("trustwatch_report_files_skipped") == len(hostile)
    assert "not a regular file" in source.problems[str(tmp_path / "fifo.yaml")]
    assert "aliases" in source.problems[str(tmp_path / "aliases.yaml")]
    assert "nested deeper than 100" in source.problems[str(tmp_path / "deep.yaml")]
    assert "larger than" in source.problems[str(tmp_path / "huge.yaml")]
    # The running source scans the same directory and keeps going.
    running = LocalReportSource([tmp_path], ReportStore(), ServiceMetrics(), interval=0.01)
    task = asyncio.create_task(running.run())
    try:
        await asyncio.wait_for(running.ready.wait(), 60)
        assert not task.done()
    finally:
        task.cancel()


def test_unparseable_timestamps_and_wrong_types_skip_only_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").write_text(
        REPORT_HEAD
        + """results:
- {policy: p, rule: r, result: fail, timestamp: "0001-01-01T00:00:00", resources: [{kind: Pod, name: a}]}
- {policy: p, rule: r, result: pass, timestamp: {seconds: "soon"}, resources: [{kind: Pod, name: b}]}
- {policy: [p], rule: {r: 1}, result: 7}
---
apiVersion: wgpolicyk8s.io/v1alpha2
kind: [PolicyReport]
metadata: {name: x, namespace: prod}
---
apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata: {name: {a: b}, namespace: prod}
"""
    )
    store = ReportStore()
    source = LocalReportSource([tmp_path], store, ServiceMetrics(), interval=0.01)
    outcome = source.scan_once()
    assert outcome.skipped == ()
    report = store.get(("wgpolicyk8s.io/v1alpha2/PolicyReport", "prod", "hostile"))
    assert report is not None
    assert {result.resources[0].name for result in report.results} == {"a", "b"}
