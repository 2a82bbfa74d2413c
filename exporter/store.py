"""The latest result per (cluster, node, probe), plus a short history that favours failures."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from exporter.results import ProbeRun

Key = tuple[str, str, str]  # cluster, node, probe (as exporter.probes.Key)


class ResultStore:
    """Written by the scheduler, read by every scrape. Readers get an immutable snapshot, so a
    scrape never waits on a probe and never sees half an update."""

    def __init__(self, history_limit: int = 100) -> None:
        self._lock = threading.Lock()
        self._latest: Mapping[Key, ProbeRun] = MappingProxyType({})
        self._history: deque[ProbeRun] = deque(maxlen=history_limit)
        self._failures: deque[ProbeRun] = deque(maxlen=history_limit)
        self._skipped: Counter[str] = Counter()

    def put(self, run: ProbeRun) -> None:
        key = (run.cluster, run.node, run.probe)
        with self._lock:
            # Copy-on-write: snapshots already handed out stay as they were.
            self._latest = MappingProxyType({**self._latest, key: run})
            self._history.append(run)
            if not run.success:
                self._failures.append(run)

    def retain(self, keys: Iterable[Key]) -> None:
        """Forget results for targets no longer configured (after a reload)."""
        wanted = set(keys)
        with self._lock:
            self._latest = MappingProxyType({k: v for k, v in self._latest.items() if k in wanted})

    def skip(self, key: Key) -> None:
        """A run of `key` came due while the previous one was still running (or waiting for a
        slot): it did not happen."""
        with self._lock:
            self._skipped[key[2]] += 1

    def skipped(self) -> Mapping[str, int]:
        """Runs skipped since start, per probe."""
        with self._lock:
            return dict(self._skipped)

    def snapshot(self) -> Mapping[Key, ProbeRun]:
        return self._latest

    def history(self) -> list[ProbeRun]:
        """Recent runs, newest first; failures are kept longer than successes."""
        with self._lock:
            runs = {id(r): r for r in (*self._failures, *self._history)}
        return sorted(runs.values(), key=lambda r: r.started, reverse=True)
