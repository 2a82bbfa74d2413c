"""Each cluster's phone summary for /metrics, recomputed only when its runs changed, and
off the event loop when the cluster is large.

`exporter.impact.cluster_phones` is the computation; this holds its results between scrapes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.catalogue import Catalogue
from exporter.impact import ClusterPhones, Inputs, inputs_of, summarize_runs
from exporter.probes.spec import Key, ProbeSpec
from exporter.results import ProbeRun

__all__ = ["OFFLOAD_ROWS", "PhoneSummaries"]

# A scrape spends at most about this many phone rows' worth of summaries on the event loop
# (~25 ms on this 2-core machine); the rest is computed on a worker thread. At 100,000 phones
# the summaries take about two seconds of CPU (bench/README.md, "Per-phone configuration at
# scale"), and /metrics must not wait on them with the loop blocked.
OFFLOAD_ROWS = 2000

# One worker for every collector: summaries queue rather than compete for the two cores.
_worker: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _worker
    if _worker is None:
        _worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="phone-summaries")
    return _worker


@dataclass(frozen=True)
class _Held:
    inputs: Inputs
    summary: ClusterPhones


@dataclass(frozen=True)
class _Job:
    inputs: Inputs
    future: concurrent.futures.Future[ClusterPhones]


class PhoneSummaries:
    """`cluster_phones` per cluster, recomputed only when a run it was computed from changed.

    It holds the runs it used (not their ids, which a freed object's successor can reuse), so
    an unchanged cluster costs a comparison by identity per scrape, not O(phones). One is made
    per configuration, so removed clusters go with the configuration they were in.

    Between two `begin` calls (a scrape), summaries of up to `offload_rows` phone rows in all
    are computed at once; past that, a changed cluster is recomputed on a worker thread, off
    the event loop (the runs are frozen, the catalogue's cache is thread-safe). Until the new
    summary is ready, `of` answers with the last one (of this configuration, or, just after a
    reload, of the `previous` one), and `settle` lets a scrape wait for it without blocking
    the loop. A cluster with no summary yet to show is computed at once.
    """

    def __init__(
        self,
        specs: Mapping[str, ProbeSpec],
        catalogue: Catalogue,
        *,
        offload_rows: int = OFFLOAD_ROWS,
        previous: PhoneSummaries | None = None,
    ) -> None:
        self._specs = specs
        self._catalogue = catalogue
        self._offload_rows = offload_rows
        self._held: dict[str, _Held] = {}
        self._jobs: dict[str, _Job] = {}
        self._spent = 0  # phone rows summarized on the loop since `begin`
        # What the previous configuration showed, shown while this one's is being computed.
        self._stale: dict[str, _Held] = dict(previous._held) if previous is not None else {}

    def of(
        self, cluster: str, runs: Mapping[Key, ProbeRun], nodes: Iterable[str] = ()
    ) -> ClusterPhones:
        inputs = inputs_of(runs, self._specs, nodes)
        held = self._finished(cluster) or self._held.get(cluster)
        if held is not None and _same(held.inputs, inputs):
            return held.summary
        shown = held or self._stale.get(cluster)
        rows = _rows(inputs, self._specs)
        if shown is None or self._spent + rows <= self._offload_rows or not _in_loop():
            self._spent += rows
            summary = summarize_runs(inputs, self._specs, self._catalogue)
            self._held[cluster] = _Held(inputs, summary)
            return summary
        if cluster not in self._jobs:
            future = _executor().submit(summarize_runs, inputs, self._specs, self._catalogue)
            self._jobs[cluster] = _Job(inputs, future)
        return shown.summary  # the last one, until the worker has the new one

    def begin(self) -> None:
        """A new scrape: its budget of summaries computed on the loop starts afresh."""
        self._spent = 0

    async def settle(self) -> None:
        """Wait, without blocking the loop, for the summaries being computed (the caller
        bounds the wait)."""
        pending = [asyncio.wrap_future(job.future) for job in self._jobs.values()]
        if pending:
            done, _ = await asyncio.wait(pending)
            for future in done:
                future.exception()  # seen here; `of` raises it, as a computation at once would

    def _finished(self, cluster: str) -> _Held | None:
        job = self._jobs.get(cluster)
        if job is None or not job.future.done():
            return None
        del self._jobs[cluster]
        held = _Held(job.inputs, job.future.result())  # a failure raises here, as at once
        self._held[cluster] = held
        self._stale.pop(cluster, None)
        return held


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _rows(inputs: Inputs, specs: Mapping[str, ProbeSpec]) -> int:
    """How many phone rows the inventory runs carry: the summary's cost, counted cheaply."""
    total = 0
    for (_, _, probe), run in inputs.used:
        spec = specs.get(probe)
        if spec is not None and spec.carries_phones:
            total += sum(len(rows) for rows in (spec.phones_by_node(run) or {}).values())
    return total


def _same(a: Inputs, b: Inputs) -> bool:
    return (
        a.nodes == b.nodes
        and len(a.used) == len(b.used)
        and all(x[1] is y[1] for x, y in zip(a.used, b.used, strict=True))
    )
