"""The configuration file: a strict, typed model whose every error names its path.

Defaults live here and nowhere else. `load_config` reads YAML, resolves secrets (inline,
`${ENV_VAR}` or `*_file`), checks cross-field rules, and raises `ConfigError` carrying every
problem at once, each prefixed with its path (`clusters[0].nodes[2].host: ...`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.results import DirectoryRoute, TlsVersion

__all__ = [
    "CatalogueEntry",
    "ClusterConfig",
    "ConfigError",
    "DirectoryProbeConfig",
    "ExporterConfig",
    "FirmwareRule",
    "NodeConfig",
    "PhoneConfigProbeConfig",
    "PortConfig",
    "ScheduledProbeConfig",
    "SnmpCredentials",
    "SnmpProbeConfig",
    "TlsProbeConfig",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """The configuration is unusable; `problems` lists every reason, each naming its path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --- scalar types ------------------------------------------------------------------------

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_duration(value: object) -> float:
    """Accept Prometheus-style durations ("500ms", "1m30s") or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 1m or 500ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION.sub("", value) == "":
        seconds = sum(
            float(m["value"]) * _UNIT_SECONDS[m["unit"]] for m in _DURATION.finditer(value)
        )
    else:
        raise ValueError(f"expected a duration such as 30s, 1m or 500ms, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(_parse_duration)]


def _parse_tls_version(value: object) -> object:
    # YAML reads `1.0` as a float; CUCM's CLI and our labels use the text "1.0".
    if isinstance(value, float):
        return str(value)  # 1.0 -> "1.0"; 1.25 stays "1.25" and is rejected
    if isinstance(value, str) and value.upper().startswith("TLS"):
        return value[3:].strip().lstrip("v")
    return value


ConfiguredTlsVersion = Annotated[TlsVersion, BeforeValidator(_parse_tls_version)]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=_NAME_PATTERN, max_length=63)]
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


def _check_host(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOST.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
    return value


Host = Annotated[str, BeforeValidator(_check_host)]


# --- secrets -----------------------------------------------------------------------------

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: object) -> object:
    """Replace `${VAR}` in an inline secret; an unset variable is an error, never ''."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    expanded = _ENV_REFERENCE.sub(substitute, value)
    if "${" in value and "${" in expanded:
        raise ValueError("only ${NAME} references are supported (no defaults, no nesting)")
    if not expanded:
        raise ValueError(
            "must not be empty" if expanded == value else f"{value} expands to nothing"
        )
    return expanded


def _resolve_path(value: object, info: ValidationInfo) -> object:
    """Relative paths are relative to the directory of the config file."""
    if not isinstance(value, str | Path):
        return value
    base = (info.context or {}).get("base_dir", Path.cwd())
    return Path(base) / Path(value).expanduser()


def _read_secret_file(value: object, info: ValidationInfo) -> object:
    path = _resolve_path(value, info)
    if not isinstance(path, Path):
        return path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


InlineSecret = Annotated[SecretStr, BeforeValidator(_expand_env)]
SecretFile = Annotated[SecretStr, BeforeValidator(_read_secret_file)]
ExistingFile = Annotated[Path, BeforeValidator(_resolve_path)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SnmpCredentials(_Strict):
    """SNMP v2c community or v3 USM user. Secret values never print (pydantic SecretStr)."""

    version: Literal["2c", "3"]
    community: InlineSecret | None = None
    community_file: SecretFile | None = None
    username: str | None = None
    auth_protocol: Literal["SHA", "SHA256"] | None = None
    auth_password: InlineSecret | None = None
    auth_password_file: SecretFile | None = None
    priv_protocol: Literal["AES", "AES128"] | None = None
    priv_password: InlineSecret | None = None
    priv_password_file: SecretFile | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("version"), int | float):
            data = {**data, "version": "3" if data["version"] == 3 else str(data["version"])}
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> Self:
        pairs = {
            "community": (self.community, self.community_file),
            "auth_password": (self.auth_password, self.auth_password_file),
            "priv_password": (self.priv_password, self.priv_password_file),
        }
        for name, (inline, from_file) in pairs.items():
            if inline is not None and from_file is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
        if self.version == "2c":
            if self.community_value is None:
                raise ValueError("SNMP v2c needs community or community_file")
            v3_only = [
                name
                for name in ("username", "auth_protocol", "priv_protocol")
                if getattr(self, name) is not None
            ]
            if v3_only or self.auth_value is not None or self.priv_value is not None:
                raise ValueError("SNMP v2c takes only community or community_file")
            return self
        if self.community_value is not None:
            raise ValueError("SNMP v3 does not use a community")
        if not self.username:
            raise ValueError("SNMP v3 needs username")
        if (self.auth_protocol is None) != (self.auth_value is None):
            raise ValueError("SNMP v3 auth_protocol and auth_password go together")
        if (self.priv_protocol is None) != (self.priv_value is None):
            raise ValueError("SNMP v3 priv_protocol and priv_password go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError("SNMP v3 privacy needs authentication (authPriv)")
        for name, secret in (
            ("auth_password", self.auth_value),
            ("priv_password", self.priv_value),
        ):
            if secret is not None and len(secret.get_secret_value()) < 8:
                raise ValueError(f"SNMP v3 {name} must be at least 8 characters (RFC 3414)")
        return self

    @property
    def community_value(self) -> SecretStr | None:
        return self.community or self.community_file

    @property
    def auth_value(self) -> SecretStr | None:
        return self.auth_password or self.auth_password_file

    @property
    def priv_value(self) -> SecretStr | None:
        return self.priv_password or self.priv_password_file


# --- probes ------------------------------------------------------------------------------


PortNumber = Annotated[int, Field(ge=1, le=65535)]


class PortConfig(_Strict):
    """A TLS port to sweep and the CUCM service behind it (used as the `service` label)."""

    port: PortNumber
    service: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]


# CUCM's own listeners that `set tls min-version` governs (reference/tls-probing.md §5):
# Tomcat HTTPS serves the secure directory, TVS validates its certificate for legacy phones.
DEFAULT_TLS_PORTS = (PortConfig(port=8443, service="tomcat"), PortConfig(port=2445, service="tvs"))
ALL_TLS_VERSIONS = tuple(TlsVersion)


class ScheduledProbeConfig(_Strict):
    """Settings every scheduled probe has."""

    enabled: bool = True
    interval: Duration = 60.0
    timeout: Duration = 20.0
    jitter: Duration = 5.0

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"{info.field_name} must be positive")
        return value

    @field_validator("timeout", "jitter")
    @classmethod
    def _below_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")  # absent when interval itself was invalid
        if interval is not None and value >= interval:
            raise ValueError(
                f"{info.field_name} ({value:g}s) must be below interval ({interval:g}s)"
            )
        return value


class TlsProbeConfig(ScheduledProbeConfig):
    """Pinned-version handshakes per node and port."""

    handshake_timeout: Duration = 3.0
    concurrency: int = Field(default=4, ge=1, le=64)
    versions: tuple[ConfiguredTlsVersion, ...] = ALL_TLS_VERSIONS
    ports: tuple[PortConfig, ...] = DEFAULT_TLS_PORTS
    ca_file: ExistingFile | None = None

    @field_validator("handshake_timeout")
    @classmethod
    def _within_timeout(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("timeout")  # absent when timeout itself was invalid
        if value <= 0:
            raise ValueError("handshake_timeout must be positive")
        if timeout is not None and value > timeout:
            raise ValueError(
                f"handshake_timeout ({value:g}s) must be at most timeout ({timeout:g}s)"
            )
        return value

    @field_validator("versions")
    @classmethod
    def _check_versions(cls, value: tuple[TlsVersion, ...]) -> tuple[TlsVersion, ...]:
        if not value:
            raise ValueError("versions must name at least one TLS version")
        if len(set(value)) != len(value):
            raise ValueError("versions must not repeat")
        return value

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, value: tuple[PortConfig, ...]) -> tuple[PortConfig, ...]:
        if not value:
            raise ValueError("ports must list at least one port")
        numbers = [p.port for p in value]
        if len(set(numbers)) != len(numbers):
            raise ValueError("ports must not repeat")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
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
    request_timeout: Duration = 5.0
    # A non-empty canary: with "Enable All User Search" off, an empty search finds nobody.
    query: dict[QueryParam, QueryValue] = Field(default_factory=_default_query)
    min_entries: int = Field(default=1, ge=0)
    max_pages: int = Field(default=3, ge=1, le=100)
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    legacy_max_version: ConfiguredTlsVersion = TlsVersion.TLS1_0

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: tuple[DirectoryRoute, ...]) -> tuple[DirectoryRoute, ...]:
        if not value:
            raise ValueError("routes must name at least one route")
        if len(set(value)) != len(value):
            raise ValueError("routes must not repeat")
        return value

    @field_validator("request_timeout")
    @classmethod
    def _within_timeout(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("timeout")  # absent when timeout itself was invalid
        if value <= 0:
            raise ValueError("request_timeout must be positive")
        if timeout is not None and value > timeout:
            raise ValueError(f"request_timeout ({value:g}s) must be at most timeout ({timeout:g}s)")
        return value

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

    interval: Duration = 300.0
    timeout: Duration = 120.0
    jitter: Duration = 30.0
    port: PortNumber = 161
    request_timeout: Duration = 5.0
    retries: int = Field(default=1, ge=0, le=5)
    max_repetitions: int = Field(default=5, ge=1, le=100)

    @field_validator("request_timeout")
    @classmethod
    def _request_within_timeout(cls, value: float, info: ValidationInfo) -> float:
        timeout = info.data.get("timeout")
        if value <= 0:
            raise ValueError("request_timeout must be positive")
        if timeout is not None and value > timeout:
            raise ValueError(f"request_timeout ({value:g}s) must be at most timeout ({timeout:g}s)")
        return value


# --- phone configuration files (issue 16): one block, so a merge can move it whole ----------


class PhoneConfigProbeConfig(ScheduledProbeConfig):
    """Each registered phone's SEP<MAC>.cnf.xml from the TFTP service over HTTP (6970).

    Off by default: it reads one file per phone. Files are fetched when a phone appears or its
    registration or firmware changes, and otherwise once per `refresh` (a full pass), at most
    `max_fetches` a run with `concurrency` requests in flight per TFTP node.
    """

    enabled: bool = False
    interval: Duration = 300.0
    timeout: Duration = 120.0
    jitter: Duration = 30.0
    tftp_nodes: tuple[Name, ...] = ()  # the nodes that run the TFTP service; () = every node
    port: PortNumber = 6970
    refresh: Duration = 86400.0
    request_timeout: Duration = 5.0
    concurrency: int = Field(default=4, ge=1, le=32)
    max_fetches: int = Field(default=2000, ge=1, le=100_000)
    max_file_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * 1024 * 1024)
    max_list_bytes: int = Field(default=32 * 1024 * 1024, ge=4096, le=256 * 1024 * 1024)
    use_cache_list: bool = True  # ConfigFileCacheList.txt tells which files changed

    @field_validator("request_timeout", "refresh")
    @classmethod
    def _positive_duration(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"{info.field_name} must be positive")
        return value


# --- end of the phone configuration block ---------------------------------------------------


class ProbesConfig(_Strict):
    tls: TlsProbeConfig = TlsProbeConfig()
    directory: DirectoryProbeConfig = DirectoryProbeConfig()
    snmp: SnmpProbeConfig = SnmpProbeConfig()
    phoneconfig: PhoneConfigProbeConfig = PhoneConfigProbeConfig()


class FirmwareRule(_Strict):
    """Below `min_load` the phone only reaches `below`, a conservative assumption.

    `min_load` has as many dotted parts as the source states ("12.0", "11.0.2" for 11.0(2));
    only that many parts of the active load are compared. `load_match`, when set, is a regular
    expression the active load must match, with a group `version` to read (parts separated by
    any of "-._"); a load it does not match is unreadable for this rule.
    """

    min_load: Annotated[str, Field(pattern=r"^\d+(\.\d+){1,3}$")]
    below: ConfiguredTlsVersion
    load_match: str | None = None

    @property
    def min_load_tuple(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.min_load.split("."))

    @field_validator("load_match")
    @classmethod
    def _valid_load_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        if "version" not in pattern.groupindex:
            raise ValueError("needs a group named 'version', e.g. (?P<version>...)")
        return value


class CatalogueEntry(_Strict):
    """A phone family and the highest TLS version it can speak (see data/phone_models.yaml)."""

    family: Annotated[str, Field(min_length=1, max_length=64)]
    match: str
    max_tls: ConfiguredTlsVersion
    firmware: FirmwareRule | None = None
    source: str = "configured"
    # How the device reaches its corporate directory; only "tvs_https" can be cut off.
    directory: Literal["tvs_https", "none", "other", "unknown"] = "tvs_https"
    # documented (a source states it), inferred (follows from sources), assumed (a
    # conservative assumption: reported as such), configured (your own entry).
    confidence: Literal["documented", "inferred", "assumed", "configured"] = "configured"

    @field_validator("match")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression: {error}") from None
        return value


class SchedulerConfig(_Strict):
    """Limits that hold across every node and probe."""

    max_concurrent_probes: int = Field(default=16, ge=1, le=1024)


# --- targets -----------------------------------------------------------------------------


class NodeConfig(_Strict):
    """One CUCM node.

    `address` is where to connect (default `host`); `tls_server_name` is the name sent as SNI
    and verified (default `host`). `port_map` sends CUCM's standard ports elsewhere (NAT, port
    forwards, the lab) while labels keep the standard number.
    """

    name: Name
    host: Host
    address: Host | None = None
    tls_server_name: Host | None = None
    port_map: dict[PortNumber, PortNumber] = Field(default_factory=dict)
    snmp: SnmpCredentials | None = None

    @property
    def connect_address(self) -> str:
        return self.address or self.host

    @property
    def server_name(self) -> str:
        return self.tls_server_name or self.host

    def connect_port(self, standard_port: int) -> int:
        return self.port_map.get(standard_port, standard_port)


class ClusterConfig(_Strict):
    """A CUCM cluster. `snmp` applies to every node that does not set its own."""

    name: Name
    nodes: tuple[NodeConfig, ...] = Field(min_length=1)
    snmp: SnmpCredentials | None = None

    @model_validator(mode="after")
    def _inherit_snmp(self) -> Self:
        if self.snmp is None or all(node.snmp is not None for node in self.nodes):
            return self
        nodes = tuple(
            node if node.snmp is not None else node.model_copy(update={"snmp": self.snmp})
            for node in self.nodes
        )
        return self.model_copy(update={"nodes": nodes})

    @field_validator("nodes")
    @classmethod
    def _unique_nodes(cls, nodes: tuple[NodeConfig, ...]) -> tuple[NodeConfig, ...]:
        names = [n.name for n in nodes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"node names must be unique in a cluster: {', '.join(repeated)}")
        return nodes


class ExporterConfig(_Strict):
    """The whole configuration file."""

    scheduler: SchedulerConfig = SchedulerConfig()
    probes: ProbesConfig = ProbesConfig()
    # Tried before the bundled phone catalogue (exporter/data/phone_models.yaml).
    catalogue: tuple[CatalogueEntry, ...] = ()
    clusters: tuple[ClusterConfig, ...] = Field(min_length=1)

    @field_validator("clusters")
    @classmethod
    def _unique_clusters(cls, clusters: tuple[ClusterConfig, ...]) -> tuple[ClusterConfig, ...]:
        names = [c.name for c in clusters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"cluster names must be unique: {', '.join(repeated)}")
        return clusters


# --- loading -----------------------------------------------------------------------------


def load_config(path: Path) -> ExporterConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError([f"{path}: cannot read the config file: {reason}"]) from None
    return parse_config(text, base_dir=path.parent, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error, not "last wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_config(text: str, *, base_dir: Path, source: str = "<config>") -> ExporterConfig:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError([f"{source}: invalid YAML{where}: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping with a clusters list"])
    try:
        return ExporterConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        errors = error.errors(include_url=False)
        raise ConfigError([_describe(e) for e in errors if not _is_echo(e, errors)]) from None


def _is_echo(error: Any, errors: Sequence[Any]) -> bool:
    """pydantic adds "too short" for a list whose items failed; the item errors say it all."""
    loc = tuple(error["loc"])
    return error["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _describe(error: Any) -> str:
    path = _format_path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
    return f"{path or '(top level)'}: {message}"


def _format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += " (key)"  # the mapping key itself is wrong, not its value
        elif part.startswith(("function-", "constrained-")):
            continue  # pydantic's names for validator steps, not config keys
        else:
            path += f".{part}" if path else part
    return path
