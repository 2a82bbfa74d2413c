"""The configuration file: a strict, typed model whose every error names its path.

Defaults live here and nowhere else. `load_config` reads YAML, resolves secrets (inline,
`${ENV_VAR}` or `*_file`), checks cross-field rules, and raises `ConfigError` carrying every
problem at once, each prefixed with its path (`clusters[0].nodes[2].host: ...`).

Layout: `base` (strict model base, YAML loader, bounded file reading, error format), `types`
(durations, hosts, "within" validator), `secrets`, `credentials` (SNMP, RisPort70), `probes`
(one settings model per probe, `ProbesConfig`), `catalogue`, `targets` (clusters, nodes),
`model` (the whole file), `load`. The web config (exporter/webconfig.py) reuses `base`.
"""

from exporter.config.base import ConfigError
from exporter.config.catalogue import CatalogueEntry, FirmwareRule
from exporter.config.credentials import RisportCredentials, SnmpCredentials
from exporter.config.load import load_config, load_config_async, parse_config
from exporter.config.model import ExporterConfig, ProbeEndpointConfig, SchedulerConfig
from exporter.config.probes import (
    ALL_TLS_VERSIONS,
    DEFAULT_TLS_PORTS,
    DirectoryProbeConfig,
    PhoneConfigProbeConfig,
    PortConfig,
    ProbesConfig,
    RisportProbeConfig,
    ScheduledProbeConfig,
    SnmpProbeConfig,
    TlsProbeConfig,
)
from exporter.config.targets import ClusterConfig, NodeConfig

__all__ = [
    "ALL_TLS_VERSIONS",
    "DEFAULT_TLS_PORTS",
    "CatalogueEntry",
    "ClusterConfig",
    "ConfigError",
    "DirectoryProbeConfig",
    "ExporterConfig",
    "FirmwareRule",
    "NodeConfig",
    "PhoneConfigProbeConfig",
    "PortConfig",
    "ProbeEndpointConfig",
    "ProbesConfig",
    "RisportCredentials",
    "RisportProbeConfig",
    "ScheduledProbeConfig",
    "SchedulerConfig",
    "SnmpCredentials",
    "SnmpProbeConfig",
    "TlsProbeConfig",
    "load_config",
    "load_config_async",
    "parse_config",
]
