"""What load, soak and the attacks share: the lab's settings, the daemon's config, its log."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.labserver import LabInfo, lab_process
from bench.processes import Daemon

MISSED = "was missed by"  # APScheduler: the loop was too busy to start the run in time
OVERRAN = "overran its deadline"  # the exporter's guard cancelled a probe
SELF_METRICS = ("process_resident_memory_bytes", "process_open_fds", "cucm_exporter_asyncio_tasks")


def add_lab_arguments(
    parser: argparse.ArgumentParser, *, duration: float, warmup: float, clusters: int = 10
) -> None:
    """The lab's and the daemon's settings, how long to measure, and the scrape timeout."""
    parser.add_argument("--duration", type=float, default=duration, help="measuring time, s")
    parser.add_argument("--warmup", type=float, default=warmup, help="s before measuring")
    parser.add_argument("--scrape-timeout", type=float, default=10.0, help="per scrape, s")
    parser.add_argument("--clusters", type=int, default=clusters)
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


def daemon_at(base: Path, log_level: str = "info") -> Daemon:
    """The daemon on `base`-exporter.yml (the lab writes it), logging to `base`-daemon.log."""
    return Daemon(Path(f"{base}-exporter.yml"), Path(f"{base}-daemon.log"), log_level)


@contextlib.contextmanager
def lab_and_daemon(
    args: argparse.Namespace, daemon: Daemon, *, list_phones: bool = False
) -> Iterator[LabInfo]:
    """The lab, writing the daemon's config, then the daemon; both stopped at the end."""
    with lab_process(
        args.clusters,
        args.nodes,
        daemon.config,
        interval=args.interval,
        timeout=args.timeout,
        list_phones=list_phones,
    ) as lab:
        tune_config(lab.config, args.max_concurrent_probes, args.jitter)
        with daemon:
            yield lab
