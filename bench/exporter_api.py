"""Everything bench/ uses of the exporter and its lab, imported in this one place.

A refactor of the product that moves or renames one of these names touches this file and no
other benchmark module (tests/test_bench_layout.py keeps it that way).
"""

from __future__ import annotations

from exporter.config import (
    NodeConfig,
    SnmpCredentials,
    SnmpProbeConfig,
    TlsProbeConfig,
    parse_config,
)
from exporter.lab import Lab
from exporter.lab.cli import start_control
from exporter.lab.directory import DirectoryFault
from exporter.lab.snmp import (
    DEFAULT_MIX,
    AgentFault,
    CcmAgent,
    LabPhone,
    generate_phones,
    start_agent,
    stop_agent,
)
from exporter.lab.tls import VERSIONS, PortFault, unused_port
from exporter.probes.snmp import (
    PHONE_COLUMNS,
    PRODUCT_NAMES,
    SCALARS,
    PysnmpSession,
    SnmpProbe,
    SnmpSession,
)
from exporter.probes.tls import open_tls, pinned_context, probe_tls
from exporter.results import (
    HandshakeOutcome,
    SnmpOutcome,
    SnmpProbeResult,
    TlsProbeResult,
    TlsVersion,
)
from exporter.timing import Deadline

__all__ = [
    "DEFAULT_MIX",
    "PHONE_COLUMNS",
    "PRODUCT_NAMES",
    "SCALARS",
    "VERSIONS",
    "AgentFault",
    "CcmAgent",
    "Deadline",
    "DirectoryFault",
    "HandshakeOutcome",
    "Lab",
    "LabPhone",
    "NodeConfig",
    "PortFault",
    "PysnmpSession",
    "SnmpCredentials",
    "SnmpOutcome",
    "SnmpProbe",
    "SnmpProbeConfig",
    "SnmpProbeResult",
    "SnmpSession",
    "TlsProbeConfig",
    "TlsProbeResult",
    "TlsVersion",
    "generate_phones",
    "open_tls",
    "parse_config",
    "pinned_context",
    "probe_tls",
    "start_agent",
    "start_control",
    "stop_agent",
    "unused_port",
]
