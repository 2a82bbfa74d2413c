"""Probes fetch and return frozen results; they never touch metrics or raise on network faults.

`PROBES` is the one list of probe names: the scheduler, the collector and the landing page all
read it from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from exporter.config import ExporterConfig, NodeConfig, ScheduledProbeConfig
from exporter.probes.directory import probe_directory
from exporter.probes.snmp import SnmpProbe
from exporter.probes.tls import probe_tls
from exporter.results import ProbeResult
from exporter.timing import Deadline


@dataclass(frozen=True)
class ProbeSpec:
    """One kind of probe: where its settings live and the coroutine that runs it."""

    name: str
    settings: Callable[[ExporterConfig], ScheduledProbeConfig]
    run: Callable[[NodeConfig, Any, Deadline], Awaitable[ProbeResult]]
    applies_to: Callable[[NodeConfig], bool] = lambda node: True


PROBES: dict[str, ProbeSpec] = {
    "tls": ProbeSpec("tls", lambda config: config.probes.tls, probe_tls),
    "directory": ProbeSpec("directory", lambda config: config.probes.directory, probe_directory),
    # Only nodes with SNMP credentials (their own or their cluster's) are polled.
    "snmp": ProbeSpec(
        "snmp", lambda config: config.probes.snmp, SnmpProbe(), lambda node: node.snmp is not None
    ),
}
