"""Settings per probe (`probes:`): what every scheduled probe has, then one model per probe.

A new probe's settings: a `ScheduledProbeConfig` subclass here (or in a module of its own in
this package if it grows), a field in `ProbesConfig`, an export in `exporter/config/__init__.py`
and its fields in config/example.yml (tests/test_config.py checks the example documents them).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from exporter.config.base import Strict
from exporter.config.secrets import ExistingFile
from exporter.config.types import (
    ConfiguredTlsVersion,
    Duration,
    Name,
    PortNumber,
    PositiveDuration,
    nonempty_distinct,
    within,
)
from exporter.results import DirectoryRoute, TlsVersion

__all__ = [
    "ALL_TLS_VERSIONS",
    "DEFAULT_TLS_PORTS",
    "DirectoryProbeConfig",
    "PhoneConfigProbeConfig",
    "PortConfig",
    "ProbesConfig",
    "RisportProbeConfig",
    "ScheduledProbeConfig",
    "SnmpProbeConfig",
    "TlsProbeConfig",
]


class PortConfig(Strict):
    """A TLS port to sweep and the CUCM service behind it (used as the `service` label)."""

    port: PortNumber
    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]


# CUCM's own listeners that `set tls min-version` governs (reference/tls-probing.md §5):
# Tomcat HTTPS serves the secure directory, TVS validates its certificate for legacy phones.
DEFAULT_TLS_PORTS = (PortConfig(port=8443, service="tomcat"), PortConfig(port=2445, service="tvs"))
ALL_TLS_VERSIONS = tuple(TlsVersion)


class ScheduledProbeConfig(Strict):
    """Settings every scheduled probe has: a run must end (timeout) and its start must wander
    (jitter) within one interval, so runs of one target never overlap."""

    enabled: bool = True
    interval: PositiveDuration = 60.0
    timeout: PositiveDuration = 20.0
    jitter: Duration = 5.0

    _fit_interval = within("timeout", "jitter", limit="interval", inclusive=False)


class TlsProbeConfig(ScheduledProbeConfig):
    """Pinned-version handshakes per node and port."""

    handshake_timeout: PositiveDuration = 3.0
    concurrency: int = Field(default=4, ge=1, le=64)
    versions: tuple[ConfiguredTlsVersion, ...] = ALL_TLS_VERSIONS
    ports: tuple[PortConfig, ...] = DEFAULT_TLS_PORTS
    ca_file: ExistingFile | None = None

    _fit_timeout = within("handshake_timeout", limit="timeout", inclusive=True)

    @field_validator("versions")
    @classmethod
    def _check_versions(cls, value: tuple[TlsVersion, ...]) -> tuple[TlsVersion, ...]:
        return nonempty_distinct(value, "versions", "TLS version")

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, value: tuple[PortConfig, ...]) -> tuple[PortConfig, ...]:
        if not value:
            raise ValueError("ports must list at least one port")
        numbers = [p.port for p in value]
        if len(set(numbers)) != len(numbers):
            raise ValueError("ports must not repeat")
        return value


# Only fixed, harmless search values are ever sent: these JSPs once had an unauthenticated
# SQL injection in f, l and n (CVE-2011-1610, reference/cucm-peers.md §3.1).
QueryValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9 .'-]{0,32}$")]
QueryParam = Literal["f", "l", "n"]  # first name, last name, number


def _default_query() -> dict[QueryParam, str]:
    return {"l": "a"}


class DirectoryProbeConfig(ScheduledProbeConfig):
    """The directory chain xmldirectory.jsp -> xmldirectoryinput.jsp -> xmldirectorylist.jsp."""

    routes: tuple[DirectoryRoute, ...] = tuple(DirectoryRoute)
    request_timeout: PositiveDuration = 5.0
    # A non-empty canary: with "Enable All User Search" off, an empty search finds nobody.
    query: dict[QueryParam, QueryValue] = Field(default_factory=_default_query)
    min_entries: int = Field(default=1, ge=0)
    max_pages: int = Field(default=3, ge=1, le=100)
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    legacy_max_version: ConfiguredTlsVersion = TlsVersion.TLS1_0
    # Follow page URLs naming another host or port (a page could send us anywhere: SSRF).
    allow_off_node_next_hops: bool = False

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: tuple[DirectoryRoute, ...]) -> tuple[DirectoryRoute, ...]:
        return nonempty_distinct(value, "routes", "route")

    _fit_timeout = within("request_timeout", limit="timeout", inclusive=True)

    @model_validator(mode="after")
    def _canary_can_find_someone(self) -> Self:
        if not any(self.query.values()) and self.min_entries > 0:
            raise ValueError(
                "query needs a non-empty value (e.g. l: a): an empty search finds nobody when "
                "CUCM's 'Enable All User Search' is off"
            )
        return self


class SnmpProbeConfig(ScheduledProbeConfig):
    """CISCO-CCM-MIB on every node that has SNMP credentials (its own or its cluster's).

    Cisco's agent throttles ("1 second to retrieve 1 row") and allows ten concurrent queries:
    hence a long interval, small GETBULKs, and one request in flight per node.
    """

    interval: PositiveDuration = 300.0
    timeout: PositiveDuration = 120.0
    jitter: Duration = 30.0
    port: PortNumber = 161
    request_timeout: PositiveDuration = 5.0
    retries: int = Field(default=1, ge=0, le=5)
    max_repetitions: int = Field(default=5, ge=1, le=100)
    # A walk reads at most this many phone rows: an agent claiming or serving more is a
    # bad_response, however much it keeps sending (a hostile agent cannot grow our memory).
    max_rows: int = Field(default=20_000, ge=1, le=1_000_000)

    _fit_timeout = within("request_timeout", limit="timeout", inclusive=True)


class RisportProbeConfig(ScheduledProbeConfig):
    """RisPort70 selectCmDeviceExt, once per cluster, within a request budget.

    CUCM allows about 15 RisPort requests a minute for the whole cluster, shared with every
    other client (RTMT, other monitoring); the default spends well under half of that. A walk
    that needs more pages than the budget allows continues on the next run.
    """

    interval: Duration = 300.0
    timeout: Duration = 60.0
    jitter: Duration = 30.0
    port: PortNumber = 8443
    requests_per_minute: int = Field(default=6, ge=1, le=15)
    page_size: int = Field(default=1000, ge=1, le=1000)  # MaxReturnedDevices: 1000 at most
    request_timeout: PositiveDuration = 15.0
    backoff: Duration = 120.0  # no request for this long after the rate-limit fault
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=4096, le=256 * 1024 * 1024)
    ca_file: ExistingFile | None = None  # verify CUCM's certificate with it (else: the system's)
    verify: bool = True  # the application user's password goes over this connection
    # RisPort model code -> name; tried before the bundled data/risport_models.yaml.
    models: dict[
        Annotated[int, Field(ge=0)], Annotated[str, Field(min_length=1, max_length=64)]
    ] = Field(default_factory=dict)

    _fit_timeout = within("request_timeout", limit="timeout", inclusive=True)


# --- phone configuration files (issue 16): one block, so a merge can move it whole ----------


class PhoneConfigProbeConfig(ScheduledProbeConfig):
    """Each registered phone's SEP<MAC>.cnf.xml from the TFTP service over HTTP (6970).

    Off by default: it reads one file per phone. Files are fetched when a phone appears or its
    registration or firmware changes, and otherwise once per `refresh` (a full pass), at most
    `max_fetches` a run with `concurrency` requests in flight per TFTP node.
    """

    enabled: bool = False
    interval: PositiveDuration = 300.0
    timeout: PositiveDuration = 120.0
    jitter: Duration = 30.0
    tftp_nodes: tuple[Name, ...] = ()  # the nodes that run the TFTP service; () = every node
    port: PortNumber = 6970
    refresh: PositiveDuration = 86400.0
    request_timeout: PositiveDuration = 5.0
    concurrency: int = Field(default=4, ge=1, le=32)
    max_fetches: int = Field(default=2000, ge=1, le=100_000)
    max_file_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * 1024 * 1024)
    max_list_bytes: int = Field(default=32 * 1024 * 1024, ge=4096, le=256 * 1024 * 1024)
    use_cache_list: bool = True  # ConfigFileCacheList.txt tells which files changed


# --- end of the phone configuration block ---------------------------------------------------


class ProbesConfig(Strict):
    """One field per probe; a new probe adds its own here."""

    tls: TlsProbeConfig = TlsProbeConfig()
    directory: DirectoryProbeConfig = DirectoryProbeConfig()
    snmp: SnmpProbeConfig = SnmpProbeConfig()
    risport: RisportProbeConfig = RisportProbeConfig()
    phoneconfig: PhoneConfigProbeConfig = PhoneConfigProbeConfig()
