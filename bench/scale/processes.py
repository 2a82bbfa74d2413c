"""The processes the scale benchmark starts: the lab and the exporter daemon, each stopped on exit.

Both run apart from this process, so each figure read from /proc holds one of them alone, and
both get SIGTERM if this process dies, even by SIGKILL (which no `finally` survives); see
bench/processes.py, which starts them.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import processes

LAB_START_TIMEOUT = 120.0  # 1,000 nodes start in ~7 s; leave room for a busy machine


# --- the lab -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabInfo:
    config: Path  # the exporter config the lab wrote: every node, all three probes
    control: str  # the control API's base URL
    nodes: int
    phones_per_node: int
    start_seconds: float
    max_rss_mb: float
    pid: int

    def base_config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.config.read_text())
        return loaded


def lab_process(
    clusters: int, nodes: int, phones: int, directory: Path
) -> contextlib.AbstractContextManager[LabInfo]:
    """`bench.scale.labserver` in its own process; closing its stdin stops it."""
    options = [f"--clusters={clusters}", f"--nodes={nodes}", f"--phones={phones}"]
    options.append(f"--config-out={directory / f'scale-lab-{phones}.yml'}")
    return processes.lab_process("bench.scale.labserver", options, LabInfo, LAB_START_TIMEOUT)


# --- the daemon --------------------------------------------------------------------------------


class Daemon(processes.Daemon):
    """The daemon, with what the scale parts read from it: scrapes, CPU, memory, idleness."""

    def get(
        self, path: str, accept: str | None = None, accept_encoding: str | None = None
    ) -> tuple[int, bytes]:
        """One GET on a fresh connection (as a Prometheus scrape after a restart would); the
        body as it came over the wire (gzipped if `accept_encoding` asked for it)."""
        headers = {"Accept": accept or "", "Accept-Encoding": accept_encoding or ""}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers={k: v for k, v in headers.items() if v})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        return processes.cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return processes.memory_mb(self.pid)

    def wait_idle(
        self, quiet_cpu: float = 0.02, window: float = 1.0, limit: float = 300.0
    ) -> float:
        """Block until the daemon used at most `quiet_cpu` CPU seconds in `window` seconds.

        Reading /proc costs the daemon nothing, unlike a scrape, so this is how a benchmark
        waits for a round of probes to end without disturbing its CPU figure. Returns the CPU
        reading at the end of the quiet window.
        """
        deadline = time.monotonic() + limit
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - before <= quiet_cpu:
                return now
            before = now
        raise TimeoutError(f"the daemon was still busy after {limit:g}s")


def write_config(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
