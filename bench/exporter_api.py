"""Everything bench/ uses of the exporter and its lab, imported in this one place.

A refactor of the product that moves or renames one of these names touches this file and no
other benchmark module (tests/test_bench_layout.py keeps it that way).
"""

from __future__ import annotations

from exporter.catalogue import load_catalogue
from exporter.config import (
    NodeConfig,
    SnmpCredentials,
    SnmpProbeConfig,
    TlsProbeConfig,
    parse_config,
)
from exporter.impact import cluster_phones, summarize
from exporter.lab import Lab
from exporter.lab.cli import start_control
from exporter.lab.directory import DirectoryFault
from exporter.lab.node import LAB_COMMUNITY
from exporter.lab.risport import risport_exporter_config
from exporter.lab.snmp import (
    DEFAULT_MIX,
    AgentFault,
    CcmAgent,
    LabPhone,
    generate_phones,
    start_agent,
    stop_agent,
)
from exporter.lab.tftp import DirectoryMode, render_config
from exporter.lab.tls import VERSIONS, PortFault, unused_port
from exporter.perphone import NodePolicy, PhoneInputs
from exporter.phone_summaries import PhoneSummaries
from exporter.phonetable import PhoneTable
from exporter.probes import BUILTIN_PROBES, ProbeRunner
from exporter.probes.cnfxml import parse_phone_config
from exporter.probes.phoneconfig_pass import shared_basis
from exporter.probes.phoneconfig_result import (
    ConfigReason,
    PhoneConfigEntry,
    PhoneConfigProbeResult,
    TftpOutcome,
)
from exporter.probes.risport import RisportProbe
from exporter.probes.risport_budget import BudgetBook
from exporter.probes.risport_result import RisportOutcome, RisportProbeResult
from exporter.probes.snmp import (
    PHONE_COLUMNS,
    PRODUCT_NAMES,
    SCALARS,
    PysnmpSession,
    SnmpProbe,
    SnmpSession,
)
from exporter.probes.spec import Target
from exporter.probes.tls import open_tls, pinned_context, probe_tls
from exporter.results import (
    Handshake,
    HandshakeOutcome,
    PhoneRow,
    PortResult,
    ProbeRun,
    SnmpOutcome,
    SnmpProbeResult,
    TlsProbeResult,
    TlsVersion,
)
from exporter.store import ResultStore
from exporter.timing import Deadline

__all__ = [
    "BUILTIN_PROBES",
    "DEFAULT_MIX",
    "LAB_COMMUNITY",
    "PHONE_COLUMNS",
    "PRODUCT_NAMES",
    "SCALARS",
    "VERSIONS",
    "AgentFault",
    "BudgetBook",
    "CcmAgent",
    "ConfigReason",
    "Deadline",
    "DirectoryFault",
    "DirectoryMode",
    "Handshake",
    "HandshakeOutcome",
    "Lab",
    "LabPhone",
    "NodeConfig",
    "NodePolicy",
    "PhoneConfigEntry",
    "PhoneConfigProbeResult",
    "PhoneInputs",
    "PhoneRow",
    "PhoneSummaries",
    "PhoneTable",
    "PortFault",
    "PortResult",
    "ProbeRun",
    "ProbeRunner",
    "PysnmpSession",
    "ResultStore",
    "RisportOutcome",
    "RisportProbe",
    "RisportProbeResult",
    "SnmpCredentials",
    "SnmpOutcome",
    "SnmpProbe",
    "SnmpProbeConfig",
    "SnmpProbeResult",
    "SnmpSession",
    "Target",
    "TftpOutcome",
    "TlsProbeConfig",
    "TlsProbeResult",
    "TlsVersion",
    "cluster_phones",
    "generate_phones",
    "load_catalogue",
    "open_tls",
    "parse_config",
    "parse_phone_config",
    "pinned_context",
    "probe_tls",
    "render_config",
    "risport_exporter_config",
    "shared_basis",
    "start_agent",
    "start_control",
    "stop_agent",
    "summarize",
    "unused_port",
]
