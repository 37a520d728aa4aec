"""The main event loop's pulse: how late it runs, and whether it runs at all.

Admission reviews, report watches and report writes share one event loop, so anything that holds it (a
long computation, a thread keeping the GIL) delays all of them. A timer due every :data:`INTERVAL`
records how late it fired in ``trustwatch_event_loop_lag_seconds`` and the time of its last beat. The
status server, which runs on a thread of its own so that probes and scrapes are answered however busy the
main loop is, reads that time: ``/healthz`` fails only when the loop has not beaten for
:data:`STALL_LIMIT` seconds, so the kubelet restarts a wedged process but not a busy one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import Histogram

INTERVAL = 0.25
# Longer than any admission deadline (at most 30 s is allowed by the API server, 10 s by default): a loop
# silent this long has missed every review in flight.
STALL_LIMIT = 30.0


class LoopHeartbeat:
    """Beats on the loop it runs on; :meth:`silence` may be read from any thread."""

    def __init__(self, lag: Histogram, clock: Callable[[], float] = time.monotonic) -> None:
        self._lag = lag
        self._clock = clock
        self._last_beat = clock()

    def silence(self) -> float:
        """Seconds since the loop last beat (or since this heartbeat was created)."""
        return self._clock() - self._last_beat

    async def run(self) -> None:
        """Beat every :data:`INTERVAL` seconds until cancelled."""
        while True:
            due = self._clock() + INTERVAL
            await asyncio.sleep(INTERVAL)
            now = self._clock()
            self._lag.observe(max(0.0, now - due))
            self._last_beat = now
