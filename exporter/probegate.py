"""How much of the nodes /probe may spend: reuse, coalescing and a cap (issue 14, finding 3).

Without it one client drove 870 TLS handshakes a second at a configured node. Per target
(cluster, node, module, port):
- a result younger than `min_interval` is answered again, the scheduled one included (a
  configured node probed on schedule is never probed again on demand within the interval);
- identical requests in flight share one probe;
- at most `max_concurrent` probes run for /probe at once; beyond, `ProbeBusy` (503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from exporter.config import ProbeEndpointConfig
from exporter.results import ProbeRun

__all__ = ["GateKey", "ProbeBusy", "ProbeGate"]

_KEPT = 1024  # on-demand results kept at most (ad hoc targets could otherwise grow it)

Latest = Callable[[], Mapping[tuple[str, str, str], ProbeRun]]


class GateKey(NamedTuple):
    cluster: str
    node: str
    module: str
    port: int | None


class ProbeBusy(Exception):
    """Too many /probe probes in flight; try again in `retry_after` seconds."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"{limit} probes are running for /probe already (probe_endpoint.max_concurrent): "
            "try again shortly"
        )
        self.retry_after = retry_after


class ProbeGate:
    def __init__(self, latest: Latest | None = None, clock: Callable[[], float] = time.time):
        self._latest = latest
        self._clock = clock
        self._recent: dict[GateKey, ProbeRun] = {}
        self._running: dict[GateKey, asyncio.Task[ProbeRun]] = {}
        self.started = self.reused = self.refused = 0

    async def run(
        self,
        key: GateKey,
        policy: ProbeEndpointConfig,
        *,
        scheduled: bool,  # the scheduled result of this node and module answers it too
        probe: Callable[[], Awaitable[ProbeRun]],
    ) -> ProbeRun:
        fresh = self._fresh(key, policy.min_interval, scheduled)
        if fresh is not None:
            self.reused += 1
            return fresh
        task = self._running.get(key)
        if task is None:
            if len(self._running) >= policy.max_concurrent:
                self.refused += 1
                raise ProbeBusy(policy.max_concurrent, retry_after=max(1, int(policy.min_interval)))
            task = asyncio.ensure_future(probe())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
            self.started += 1
        else:
            self.reused += 1
        # Shielded: one client hanging up must not cancel the probe others wait for.
        return await asyncio.shield(task)

    def _fresh(self, key: GateKey, min_interval: float, scheduled: bool) -> ProbeRun | None:
        if min_interval <= 0:
            return None
        oldest = self._clock() - min_interval
        candidates = [self._recent.get(key)]
        if scheduled and self._latest is not None:
            candidates.append(self._latest().get((key.cluster, key.node, key.module)))
        runs = [run for run in candidates if run is not None and run.started >= oldest]
        return max(runs, key=lambda run: run.started) if runs else None

    def _finished(self, key: GateKey, task: asyncio.Task[ProbeRun]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._recent[key] = task.result()
        if len(self._recent) > _KEPT:  # drop the oldest half
            for old in sorted(self._recent, key=lambda k: self._recent[k].started)[: _KEPT // 2]:
                del self._recent[old]
