"""Report backend for runs without a cluster: one YAML file per report in a directory.

The local report source reads the same directory, so audit results show up as metrics exactly as they
would from the API. Several processes may share the directory: each read-merge-write holds an exclusive
``flock`` on a lock file, and files are replaced atomically so a reader never sees half a report.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from exporter.reports.writer import Merge, ReportTarget

LOCK_FILE = ".trustwatch-writer.lock"
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def report_path(directory: Path, target: ReportTarget) -> Path:
    """``<kind>-<namespace>-<name>.yaml`` (no namespace part for cluster-scoped reports), flat in one dir."""
    parts = [target.api.kind.lower(), target.namespace, target.name]
    return directory / ("-".join(part for part in parts if part) + ".yaml")


class LocalReportBackend:
    """Reads and writes report files under ``directory`` (created if missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def update(self, target: ReportTarget, merge: Merge) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = report_path(self.directory, target)
        with open(self.directory / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                document = merge(self._read(path))
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                # libyaml's emitter, so the watcher's libyaml loader reads back exactly what was written.
                tmp.write_text(yaml.dump(document, Dumper=_Dumper, sort_keys=False), encoding="utf-8")
                tmp.replace(path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> Mapping[str, Any] | None:
        """The current report, or None when there is none (or it is unreadable: it is then rewritten)."""
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, yaml.YAMLError):
            return None
        return loaded if isinstance(loaded, Mapping) else None
