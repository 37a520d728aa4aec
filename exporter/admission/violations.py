"""Blocked requests as Kubernetes Events, not as report results.

A denied request never created anything, so a PolicyReport (which describes resources that exist) has no
place for it. Kyverno records blocked requests as ``PolicyViolation`` Events; trustwatch does the same:
the engine hands each denial to :class:`ViolationRecorder` (never blocks, never raises), and a background
task creates the Events through a backend (:mod:`exporter.admission.violations_kube`). A full queue drops
Events rather than slowing admission; the denial is still counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

# Kubernetes rejects Event messages longer than this.
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Violation:
    """One blocked request: which policy blocked what, and why (rule -> message)."""

    policy: str
    policy_namespace: str | None  # a namespaced policy's namespace; None for a cluster-wide one
    resource_kind: str
    resource_namespace: str
    resource_name: str
    rules: Mapping[str, str]
    timestamp: float
    # ClusterPolicy, Policy, ImageValidatingPolicy or NamespacedImageValidatingPolicy
    policy_kind: str = "ClusterPolicy"

    def message(self) -> str:
        """Kyverno's wording: ``Deployment prod/unsigned: [rule] fail (blocked); reason``."""
        where = f"{self.resource_namespace}/" if self.resource_namespace else ""
        parts = [f"[{rule}] fail (blocked); {reason}" for rule, reason in self.rules.items()]
        text = f"{self.resource_kind} {where}{self.resource_name}: " + " ".join(parts)
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class ViolationBackend(Protocol):
    """Somewhere Events go. ``record`` is blocking and runs in a worker thread."""

    def record(self, violation: Violation) -> None: ...


class ViolationRecorder:
    """A bounded queue of violations and the task that records them as Events."""

    def __init__(self, backend: ViolationBackend, queue_size: int = 1000) -> None:
        self._backend = backend
        self._queue: deque[Violation] = deque()
        self._queue_size = queue_size
        self._wakeup = asyncio.Event()

    def submit(self, violation: Violation) -> None:
        if len(self._queue) >= self._queue_size:
            log.debug("event queue full; PolicyViolation event dropped", extra={"policy": violation.policy})
            return
        self._queue.append(violation)
        self._wakeup.set()

    async def run(self) -> None:
        """Record queued violations until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._queue:
            violation = self._queue.popleft()
            try:
                await asyncio.to_thread(self._backend.record, violation)
            except Exception as exc:
                log.warning(
                    "could not record a PolicyViolation event",
                    extra={"policy": violation.policy, "error": str(exc)},
                )
