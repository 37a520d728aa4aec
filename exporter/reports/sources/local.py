"""Reports from local YAML/JSON files: the embedded default, so trustwatch shows metrics without a cluster.

A file may hold one report, many documents, or a ``kind: List`` (what ``kubectl get polr -A -o yaml``
prints). Directories are polled: a file whose (mtime, size, inode) changed is read again, a new file is
read, a vanished file takes its reports with it. A file that cannot be read or parsed is logged by name and
counted in ``trustwatch_report_files_skipped``; its last good reports stay (an editor mid-save must not
make numbers flap) and every other file still counts. A malformed report inside a readable file is logged
with the reason and skipped alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.metrics import ServiceMetrics
from exporter.reports.model import Report, ReportKey, ReportParseError, parse_report
from exporter.reports.store import ReportStore
from exporter.yamldoc import YamlLimitError, YamlLimits, load_yaml_documents

log = logging.getLogger(__name__)

API_LABEL = "local"
SUFFIXES = frozenset({".yaml", ".yml", ".json"})
# A report is one API object (etcd caps objects near 1.5 MiB); a whole `kubectl get -A` list stays well
# under this. Larger files are skipped: parsing 14 MB of YAML costs about 1 GB of memory.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILES = 10_000
REPORT_YAML_LIMITS = YamlLimits(max_depth=100, max_events=2_000_000)
Signature = tuple[int, int, int]  # (mtime_ns, size, inode)


class ReportFileError(ValueError):
    """A report file cannot be used; the message names the file and the problem."""


@dataclass
class _FileState:
    signature: Signature
    keys: set[ReportKey] = field(default_factory=set)
    error: str | None = None


@dataclass(frozen=True)
class ScanOutcome:
    """What one pass over the directories changed."""

    read: tuple[Path, ...] = ()
    removed: tuple[Path, ...] = ()
    skipped: tuple[Path, ...] = ()  # every file currently unreadable, not only new ones


class LocalReportSource:
    """Keeps the store equal to the reports found in ``directories`` (searched recursively)."""

    def __init__(
        self,
        directories: Sequence[Path],
        store: ReportStore,
        metrics: ServiceMetrics,
        interval: float = 2.0,
    ) -> None:
        self._directories = tuple(Path(d) for d in directories)
        self._store = store
        self._metrics = metrics
        self._interval = interval
        self._files: dict[Path, _FileState] = {}
        self._owners: dict[ReportKey, Path] = {}
        self._missing: set[Path] = set()
        self._scanned_once = False  # the first scan is state, not transitions
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Scan forever (file reads run in a worker thread); ``ready`` is set after the first scan.

        No file can stop this loop: a scan that fails anyway is logged and retried at the next interval.
        """
        while True:
            try:
                await asyncio.to_thread(self.scan_once)
            except Exception:
                log.exception("scanning the report directories failed; retrying")
            self.ready.set()
            await asyncio.sleep(self._interval)

    @property
    def problems(self) -> dict[str, str]:
        """File -> why it is skipped, for health output (read from the status server's thread: the live
        collections are copied in one step each before being walked)."""
        problems = {str(path): "directory not found" for path in tuple(self._missing)}
        files = list(self._files.items())
        problems.update((str(path), state.error) for path, state in files if state.error)
        return problems

    def scan_once(self) -> ScanOutcome:
        """One pass: read new and changed files, drop vanished ones, update the health metrics."""
        seen: dict[Path, Signature] = {}
        unreadable: dict[Path, str] = {}
        for path in self._candidates():
            try:
                info = path.stat()
            except FileNotFoundError:
                continue  # vanished since it was listed (or a dangling symlink)
            except OSError as error:  # a symlink loop, a directory we may not enter...
                seen[path] = (0, 0, 0)
                unreadable[path] = f"{path}: cannot read: {error.strerror or error}"
                continue
            seen[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
        removed = [path for path in self._files if path not in seen]
        for path in removed:
            self._forget(path)
        read = []
        for path, signature in seen.items():
            state = self._files.get(path)
            if path in unreadable:
                self._unreadable(path, signature, unreadable[path])
            elif state is None or state.signature != signature:
                self._read(path, signature)
                read.append(path)
        self._scanned_once = True
        skipped = tuple(path for path, state in self._files.items() if state.error)
        self._metrics.report_files_skipped.set(len(skipped))
        self._metrics.watch_up.labels(api=API_LABEL).set(0 if self._missing else 1)
        if read or removed:
            self._metrics.watch_last_event.labels(api=API_LABEL).set(time.time())
        return ScanOutcome(tuple(read), tuple(removed), skipped)

    def _candidates(self) -> Iterator[Path]:
        count = 0
        for directory in self._directories:
            if not directory.is_dir():
                if directory not in self._missing:
                    log.error(
                        "report directory not found; its reports are not counted",
                        extra={"dir": str(directory)},
                    )
                    self._missing.add(directory)
                continue
            self._missing.discard(directory)
            for root, _dirs, names in os.walk(directory):
                for name in sorted(names):
                    path = Path(root) / name
                    if path.suffix in SUFFIXES and not name.startswith("."):
                        count += 1
                        if count > MAX_FILES:
                            log.warning(
                                "too many report files; the rest are ignored", extra={"limit": MAX_FILES}
                            )
                            return
                        yield path

    def _unreadable(self, path: Path, signature: Signature, error: str) -> None:
        """Keep the file's last good reports, mark it skipped (logged once per new problem)."""
        state = self._files.setdefault(path, _FileState(signature))
        state.signature = signature
        if state.error != error:
            log.warning("skipping report file", extra={"file": str(path), "reason": error})
        state.error = error

    def _read(self, path: Path, signature: Signature) -> None:
        state = self._files.setdefault(path, _FileState(signature))
        state.signature = signature
        try:
            reports = list(self._reports_in(path))
        except ReportFileError as error:
            self._unreadable(path, signature, str(error))
            return
        state.error = None
        keys = {report.key for report in reports}
        for key in state.keys - keys:
            self._release(key, path)
        for report in reports:
            owner = self._owners.get(report.key)
            if owner is not None and owner != path:
                log.warning(
                    "report defined in two files; the file read last wins",
                    extra={"report": "/".join(report.key), "file": str(path), "other_file": str(owner)},
                )
            self._owners[report.key] = path
            self._store.apply(report, count_transitions=self._scanned_once)
        state.keys = keys

    def _forget(self, path: Path) -> None:
        state = self._files.pop(path)
        for key in state.keys:
            self._release(key, path)

    def _release(self, key: ReportKey, path: Path) -> None:
        if self._owners.get(key) == path:
            del self._owners[key]
            self._store.delete(key)

    def _reports_in(self, path: Path) -> Iterator[Report]:
        for index, document in enumerate(_documents(path)):
            for item in _items(document):
                if item is None:
                    continue
                try:
                    report = parse_report(item)
                except (ReportParseError, ValueError, TypeError, OverflowError, RecursionError) as error:
                    log.warning(
                        "skipping malformed report",
                        extra={"file": str(path), "document": index, "reason": str(error)},
                    )
                    continue
                if report.dropped_results:
                    log.warning(
                        "dropped malformed results",
                        extra={"file": str(path), "report": report.name, "problems": list(report.problems)},
                    )
                yield report


def _documents(path: Path) -> list[Any]:
    """The decoded documents of a report file, or ReportFileError. Only regular files are read: a FIFO or
    a device under the directory would block or never end, so it is refused without reading."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on what was opened.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ReportFileError(f"{path}: cannot read: {error.strerror or error}") from error
    with os.fdopen(descriptor, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ReportFileError(f"{path}: not a regular file")
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise ReportFileError(f"{path}: cannot read: {error.strerror or error}") from error
    if len(data) > MAX_FILE_BYTES:
        raise ReportFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    if path.suffix == ".json":
        try:
            return [json.loads(data)]
        except RecursionError:
            raise ReportFileError(f"{path}: nested too deeply") from None
        except ValueError as error:  # includes invalid UTF-8 and integers beyond 4 300 digits
            raise ReportFileError(f"{path}: not valid JSON: {error}") from error
    try:
        return load_yaml_documents(data, REPORT_YAML_LIMITS)
    except YamlLimitError as error:
        raise ReportFileError(f"{path}: {error}") from error


def _items(document: Any) -> list[Any]:
    """A ``kind: List`` (or ``PolicyReportList``...) expands to its items; anything else is one document."""
    if isinstance(document, dict) and str(document.get("kind", "")).endswith("List"):
        items = document.get("items")
        return items if isinstance(items, list) else []
    return [document]
