"""Credentials a node (or its whole cluster) gives a probe: SNMP v2c or v3, a RisPort70 user.

Every secret uses `InlineSecret` / `SecretFile`, so its values never print and `*_file` is
read safely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, model_validator

from exporter.config.base import Strict
from exporter.config.secrets import InlineSecret, SecretFile
from exporter.config.types import Name

__all__ = ["InventorySource", "RisportCredentials", "SnmpCredentials", "check_inventory"]


class SnmpCredentials(Strict):
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


# Where a cluster's phone inventory comes from; with both, RisPort counts and SNMP is
# cross-checked.
InventorySource = Literal["snmp", "risport", "both"]


class RisportCredentials(Strict):
    """A cluster's RisPort70 access: an application user with the roles "Standard CCM Admin
    Users" and "Standard SERVICEABILITY", and the node to ask (default: the first node).
    The password never prints (SecretStr): inline, `${ENV_VAR}`, or `password_file`."""

    username: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^:\s]+$")]
    password: InlineSecret | None = None
    password_file: SecretFile | None = None
    node: Name | None = None

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set password or password_file (one of them)")
        return self

    @property
    def password_value(self) -> SecretStr:
        value = self.password or self.password_file
        assert value is not None  # the validator saw to it
        return value


def check_inventory(
    inventory: InventorySource, risport: RisportCredentials | None, nodes: Sequence[str]
) -> None:
    """The cluster-level rules of the inventory choice (ClusterConfig calls this)."""
    if inventory != "snmp" and risport is None:
        raise ValueError(f"inventory {inventory} needs risport (username and password)")
    if risport is not None and risport.node is not None and risport.node not in nodes:
        raise ValueError(f"risport.node {risport.node!r} is not a node of this cluster")
