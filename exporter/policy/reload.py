"""Keep the policy set in force current with its files, never replacing a good set with a bad one.

Changes are detected by polling a fingerprint of the sources (paths, resolved targets, inodes, sizes and
mtimes), which also catches a ConfigMap volume update: the kubelet swaps the ``..data`` symlink atomically,
so the visible files resolve to new inodes. Polling works on every filesystem and needs no dependency.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.metrics import ServiceMetrics
from exporter.policy.loader import (
    LOADABLE_KINDS,
    PolicyLoadError,
    load_policy_files,
    policy_files,
    rule_count,
)

if TYPE_CHECKING:
    from exporter.policy.loader import LoadedPolicy

logger = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, str, int, int, int], ...]


@dataclass(frozen=True)
class PolicySet:
    """The policies in force, a version over all of them (a cache key), and when they were loaded (Unix
    time)."""

    policies: tuple[LoadedPolicy, ...]
    version: str
    loaded_at: float

    @classmethod
    def of(cls, policies: Sequence[LoadedPolicy], loaded_at: float) -> PolicySet:
        """A set of ``policies`` whose version changes whenever any policy's does."""
        versions = sorted(f"{p.kind}/{p.namespace}/{p.name}@{p.version}" for p in policies)
        digest = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:32]
        return cls(tuple(policies), digest, loaded_at)


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """What changes whenever a policy source changes (content swapped, added, removed, symlink retargeted).
    Raises PolicyLoadError when a path is missing."""
    entries = []
    for file in policy_files(paths):
        try:
            stat = file.stat()
        except OSError as error:
            raise PolicyLoadError(f"cannot read: {error.strerror}", source=str(file)) from None
        entries.append((str(file), os.path.realpath(file), stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class PolicyReloader:
    """Loads the policies from ``paths`` at start, then reloads them when their files change.

    A failed reload keeps the last good set in force, logs the error (naming file, policy, rule and field),
    increments ``policy_load_errors`` and sets ``policy_last_load_success`` to 0. A successful one swaps the
    set atomically (readers call :meth:`current` per request) and updates ``policies_loaded``.

    A file that held policies and now holds none (empty, ``null``, only ``---``) is refused the same way:
    a half-written file or an emptied ConfigMap key would otherwise disarm the webhook without a sound.
    Removing policies deliberately means deleting their file (or ConfigMap key), or editing it to hold
    other policies.
    """

    def __init__(self, paths: Sequence[Path], metrics: ServiceMetrics, interval: float = 2.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.paths = tuple(paths)
        self.metrics = metrics
        self.interval = interval
        self._current: PolicySet | None = None
        self._seen: Fingerprint | None = None
        self._last_failure: tuple[Fingerprint | None, str] | None = None
        # How many policies each file held in the set in force: a file that drops to none is refused.
        self._held: dict[Path, int] = {}

    def current(self) -> PolicySet:
        """The set in force. Raises RuntimeError before :meth:`load_initial` succeeded."""
        if self._current is None:
            raise RuntimeError("policies not loaded yet: call load_initial() first")
        return self._current

    def load_initial(self) -> PolicySet:
        """Load the set at startup. Raises :class:`PolicyLoadError`: without valid policies the webhook
        must not start (it would admit everything)."""
        try:
            seen = fingerprint(self.paths)
            by_file = load_policy_files(self.paths)
        except PolicyLoadError:
            self._record_failure()
            raise
        return self._install(by_file, seen)

    def check_once(self) -> bool:
        """Reload if the sources changed since the last attempt; True when a new set was installed.

        A broken change is reported (logged and counted) once, not on every poll, and retried as soon as
        the files change again.
        """
        try:
            seen = fingerprint(self.paths)
        except PolicyLoadError as error:
            self._reject(error, None)
            return False
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            by_file = load_policy_files(self.paths)
            self._refuse_emptied(by_file)
        except PolicyLoadError as error:
            self._reject(error, seen)
            return False
        self._install(by_file, seen)
        return True

    def _refuse_emptied(self, by_file: Sequence[tuple[Path, Sequence[LoadedPolicy]]]) -> None:
        """Raise PolicyLoadError when a file that held policies in the set in force now holds none."""
        for file, policies in by_file:
            held = self._held.get(file, 0)
            if held and not policies:
                raise PolicyLoadError(
                    f"holds no policy any more (empty, null or only '---') but held {held}; refusing to "
                    "drop them, as a half-written file or an emptied ConfigMap key would disarm the webhook. "
                    "To remove these policies, delete the file (or the ConfigMap key)",
                    source=str(file),
                )

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled (file reads happen off the event loop). An
        unexpected error is logged and polling goes on: the set in force stays valid either way."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.check_once)
            except Exception:
                logger.exception("policy reload check failed; keeping the last good policy set")
                self._record_failure()  # counted, so the load-error alert fires

    def _reject(self, error: PolicyLoadError, seen: Fingerprint | None) -> None:
        failure = (seen, str(error))
        if failure == self._last_failure:
            return
        self._last_failure = failure
        self._record_failure()
        logger.error(
            "policy reload rejected; keeping the last good policy set",
            extra={
                "error": str(error),
                "policy_set_version": self._current.version if self._current else None,
            },
        )

    def _record_failure(self) -> None:
        self.metrics.policy_load_errors.inc()
        self.metrics.policy_last_load_success.set(0)

    def _install(
        self, by_file: Sequence[tuple[Path, Sequence[LoadedPolicy]]], seen: Fingerprint
    ) -> PolicySet:
        policies = [policy for _file, found in by_file for policy in found]
        policy_set = PolicySet.of(policies, time.time())
        self._current = policy_set
        self._seen = seen
        self._held = {file: len(found) for file, found in by_file}
        self._last_failure = None
        for kind in LOADABLE_KINDS:
            self.metrics.policies_loaded.labels(kind).set(sum(1 for p in policies if p.kind == kind))
        self.metrics.policy_last_load_success.set(1)
        logger.info(
            "policy set loaded",
            extra={
                "policies": len(policies),
                "rules": sum(map(rule_count, policies)),
                "policy_set_version": policy_set.version,
            },
        )
        if not policies:
            logger.warning("no policies loaded: every image is admitted without verification")
        return policy_set
