"""The processes a run starts (the lab and the exporter daemon), each stopped on exit.

Both run apart from the benchmark, so every figure read from /proc holds one of them alone.
Both get SIGTERM if the benchmark dies, even by SIGKILL (which no `finally` survives), through
PR_SET_PDEATHSIG; start them from the main thread, since the signal follows the thread. The
shared parts are in bench/processes.py; here is what load and soak add to them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench import processes
from bench.report import git

# What runs as the daemon: the shipped entry point, or an experiment that patches it first.
VARIANTS = {
    "shipped": [str(processes.DAEMON)],
    "cached": [sys.executable, "-m", "bench.load_soak.cached_daemon"],
}
LAB_START_TIMEOUT = 180.0  # 100 nodes start in a few seconds; leave room for a busy machine


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """The lab's and the daemon's settings, the same for load and soak."""
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--interval", type=float, default=10.0, help="probe interval, s")
    parser.add_argument("--timeout", type=float, default=5.0, help="probe timeout, s")
    parser.add_argument(
        "--jitter",
        type=float,
        default=5.0,
        help="probe jitter, s (the exporter's default for tls and directory; 0 runs every job "
        "of a probe type at the same instant)",
    )
    parser.add_argument(
        "--max-concurrent-probes",
        type=int,
        help="scheduler.max_concurrent_probes in the daemon's config (default: the exporter's)",
    )


# --- the lab -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabInfo:
    pid: int
    config: Path  # the exporter config the lab wrote: every node, all three probes
    control: str  # the control API's base URL
    topology: dict[str, list[str]]  # cluster -> node names (unique across the lab)
    phones: dict[str, list[str]]  # node -> the device names it started with
    start_seconds: float

    @property
    def nodes(self) -> list[tuple[str, str]]:
        """(cluster, node) in a fixed order: cluster by cluster."""
        return [(cluster, node) for cluster, names in self.topology.items() for node in names]


def lab_process(
    clusters: int, nodes: int, interval: float, timeout: float, config_out: Path
) -> contextlib.AbstractContextManager[LabInfo]:
    """`bench.load_soak.labserver` in its own process; closing its stdin stops it."""
    options = [f"--clusters={clusters}", f"--nodes={nodes}"]
    options += [f"--interval={interval:g}", f"--timeout={timeout:g}", f"--config-out={config_out}"]
    return processes.lab_process("bench.load_soak.labserver", options, LabInfo, LAB_START_TIMEOUT)


# --- the daemon ----------------------------------------------------------------------------


class Daemon(processes.Daemon):
    """The daemon at `log_level`, as shipped or as an experiment (`VARIANTS`)."""

    def __init__(
        self, config: Path, log: Path, log_level: str = "info", variant: str = "shipped"
    ) -> None:
        super().__init__(config, log, VARIANTS[variant], [f"--log.level={log_level}"])


def git_state() -> dict[str, str]:
    """The commit the daemon runs from, and whether exporter/ differs from it (the tree is
    shared: others commit while a run goes on)."""
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "exporter_changes": git("status", "--short", "--", "exporter").strip() or "none",
    }


def tune_config(config: Path, max_concurrent_probes: int | None, jitter: float) -> None:
    """Adjust the exporter config the lab wrote: the probes' jitter (the lab writes 0 s, which
    runs every job of a probe type at the same instant), and `scheduler.max_concurrent_probes`
    (None: the exporter's default)."""
    document = yaml.safe_load(config.read_text())
    for probe in document["probes"].values():
        probe["jitter"] = f"{jitter:g}s"
    if max_concurrent_probes is not None:
        document["scheduler"] = {"max_concurrent_probes": max_concurrent_probes}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
