"""The SNMP probe's network seam, and its pysnmp adapter.

`SnmpSession` is all the walk logic in `exporter.probes.snmp` needs (two requests and a count);
`PysnmpSession` implements it over pysnmp's command generators, and a recording fake does in
the unit tests (tests/test_snmp_walk.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
from collections.abc import Sequence
from typing import Any, Protocol

from pyasn1.type import univ
from pysnmp.entity import config as snmp_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_NONE,
    USM_PRIV_CFB128_AES,
    USM_PRIV_NONE,
    CommunityData,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio.lcd import CommandGeneratorLcdConfigurator
from pysnmp.proto import errind, rfc1902

from exporter.config import SnmpCredentials, SnmpProbeConfig
from exporter.results import SnmpOutcome

__all__ = [
    "Oid",
    "PysnmpSession",
    "SnmpEngine",
    "SnmpError",
    "SnmpSession",
    "fingerprint",
    "open_session",
]

Oid = tuple[int, ...]

_AUTH_FAILURES = (
    errind.WrongDigest,
    errind.UnknownUserName,
    errind.DecryptionError,
    errind.UnknownSecurityName,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.UnsupportedSecurityLevel,
    errind.NotInTimeWindow,
)


class SnmpError(Exception):
    def __init__(self, outcome: SnmpOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class SnmpSession(Protocol):
    """The network seam: what the probe needs from an SNMP client."""

    requests: int

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]: ...

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]: ...


class PysnmpSession:
    """SnmpSession over pysnmp's native command generators, on the daemon's one engine.

    Not hlapi's get_cmd/bulk_cmd: those resolve every request OID in pysnmp's MIB view and
    re-configure the target each time, about half of the client's CPU per request in a walk
    whose OIDs are always new (bench/README.md, "SNMP phone-table walk").

    The target's row in the engine's SNMP-TARGET-MIB exists only while the session is open:
    a row is ~18 KB of pysnmp objects, 18 MB at a thousand nodes if each node kept one between
    its polls (bench/README.md, "Scale"). `close()` removes it.
    """

    def __init__(self, engine: SnmpEngine, auth: Any, target: UdpTransportTarget) -> None:
        self._engine = engine
        self._target_name = f"cucm-exporter-{next(_TARGET_NUMBERS)}"
        snmp_config.add_target_address(
            engine, self._target_name, target.TRANSPORT_DOMAIN, target.transport_address,
            _parameters(engine, auth, target), target.timeout * 100, target.retries,
            target.tagList,
        )  # fmt: skip
        self.requests = 0

    def close(self) -> None:
        """Forget the target. Retries of a request still pending do not need it (pysnmp keeps
        their transport details), so this is safe even when a deadline cut the poll short."""
        snmp_config.delete_target_address(self._engine, self._target_name)

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        self.requests += 1
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        cmdgen.GetCommandGenerator().send_varbinds(
            self._engine, self._target_name, None, b"", _varbinds(oids), _settle, future
        )
        return _check(await future)

    async def bulk(self, oids: Sequence[Oid], max_repetitions: int) -> list[tuple[Oid, Any]]:
        self.requests += 1
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        # SingleRun: one request, one answer (BulkCommandGenerator would walk on by itself).
        cmdgen.BulkCommandGeneratorSingleRun().send_varbinds(
            self._engine, self._target_name, None, b"", 0, max_repetitions,
            _varbinds(oids), _settle, future,
        )  # fmt: skip
        return _check(await future)


_LCD = CommandGeneratorLcdConfigurator()
_TARGET_NUMBERS = itertools.count(1)
_PARAMETERS_CONTEXT = "cucm_exporter_target_parameters"


def _parameters(engine: SnmpEngine, auth: Any, target: UdpTransportTarget) -> str:
    """The engine's target parameters for `auth`, with the community or v3 user and the UDP
    transport installed on first use (by pysnmp's own configurator, which knows every v3
    option); only the target addresses are ours to add and remove."""
    known: dict[tuple[Any, ...], str] = engine.get_user_context(_PARAMETERS_CONTEXT) or {}
    key = (auth.securityName, auth.security_level, auth.message_processing_model)  # as pysnmp's
    if key not in known:
        address, parameters = _LCD.configure(engine, auth, target, b"")
        snmp_config.delete_target_address(engine, address)  # the configurator's own: unused
        known[key] = parameters
        engine.set_user_context(**{_PARAMETERS_CONTEXT: known})
    return known[key]


_NULL = univ.Null("")


def _varbinds(oids: Sequence[Oid]) -> list[tuple[Any, Any]]:
    return [(rfc1902.ObjectName(oid), _NULL) for oid in oids]


def _settle(
    engine: Any,
    handle: Any,
    indication: Any,
    status: Any,
    index: Any,
    varbinds: Any,
    future: asyncio.Future[tuple[Any, Any, Any, Any]],
) -> None:
    if not future.done():  # the probe's deadline may have given up on it already
        future.set_result((indication, status, index, varbinds))


def _check(reply: tuple[Any, Any, Any, Any]) -> list[tuple[Oid, Any]]:
    indication, status, index, varbinds = reply
    if indication:
        if isinstance(indication, errind.RequestTimedOut):
            raise SnmpError(SnmpOutcome.TIMEOUT, "no SNMP response before the timeout")
        if isinstance(indication, _AUTH_FAILURES):
            raise SnmpError(SnmpOutcome.AUTH_ERROR, f"SNMPv3 security: {indication}")
        raise SnmpError(SnmpOutcome.BAD_RESPONSE, str(indication))
    if status:
        raise SnmpError(SnmpOutcome.AGENT_ERROR, f"agent error {status.prettyPrint()} at {index}")
    return [(tuple(name), value) for name, value in varbinds]


async def open_session(
    engine: SnmpEngine,
    address: str,
    port: int,
    credentials: SnmpCredentials,
    settings: SnmpProbeConfig,
) -> PysnmpSession:
    """A session to one agent on `engine`; a name that does not resolve is a DNS_ERROR."""
    try:
        target = await UdpTransportTarget.create(
            (address, port), timeout=settings.request_timeout, retries=settings.retries
        )
    except (PySnmpError, socket.gaierror) as error:
        raise SnmpError(SnmpOutcome.DNS_ERROR, f"cannot resolve {address}: {error}") from None
    return PysnmpSession(engine, _auth(credentials), target)


def _auth(credentials: SnmpCredentials) -> CommunityData | UsmUserData:
    if credentials.version == "2c":
        community = credentials.community_value
        assert community is not None  # the config model guarantees it
        return CommunityData(community.get_secret_value(), mpModel=1)
    auth, priv = credentials.auth_value, credentials.priv_value
    auth_protocol = {"SHA": USM_AUTH_HMAC96_SHA, "SHA256": USM_AUTH_HMAC192_SHA256}
    return UsmUserData(
        credentials.username or "",
        authKey=auth.get_secret_value() if auth else None,
        privKey=priv.get_secret_value() if priv else None,
        authProtocol=auth_protocol.get(credentials.auth_protocol or "", USM_AUTH_NONE),
        privProtocol=USM_PRIV_CFB128_AES if priv else USM_PRIV_NONE,
    )


def fingerprint(credentials: SnmpCredentials) -> str:
    """A stable key for a set of credentials that reveals nothing about them."""
    parts = [
        credentials.version,
        credentials.username or "",
        credentials.auth_protocol or "",
        credentials.priv_protocol or "",
        *(s.get_secret_value() if s else "" for s in (
            credentials.community_value, credentials.auth_value, credentials.priv_value,
        )),
    ]  # fmt: skip
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
