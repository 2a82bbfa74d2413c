"""How each built-in probe's result reads as text: one line per handshake, route or poll.

These lines are what `/probe?debug=true` prints under "Logs for the probe", what the landing
page shows beside a target, and what `check` and the logs quote. They state classified
outcomes, never raw peer content beyond the detail the probe already bounded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from exporter.results import (
    DirectoryProbeResult,
    Handshake,
    PortResult,
    RouteResult,
    SnmpProbeResult,
    TlsProbeResult,
)

__all__ = ["describe_directory", "describe_snmp", "describe_tls"]


def describe_tls(result: TlsProbeResult) -> Iterator[str]:
    for port in result.ports:
        yield from describe_tls_port(port)


def describe_directory(result: DirectoryProbeResult) -> Iterable[str]:
    return [describe_route(route) for route in result.routes]


def describe_tls_port(port: PortResult) -> Iterator[str]:
    where = f"tls {port.port}/{port.service}"
    for handshake in (*port.pinned, port.modern):
        name = handshake.pinned.label if handshake.pinned else "modern client"
        yield f"{where} {name}: {_handshake(handshake)}"
    certificate = port.certificate
    if certificate is not None:
        yield (
            f"{where} certificate: sha256 {certificate.fingerprint_sha256}, serial "
            f"{certificate.serial}, subject {certificate.subject}, issuer {certificate.issuer}, "
            f"not after {_iso(certificate.not_after)}"
        )
    if port.verified is not None:
        verdict = "verified" if port.verified else f"not verified: {port.verify_error}"
        yield f"{where} certificate {verdict}"


def _handshake(handshake: Handshake) -> str:
    text = f"{handshake.outcome.value} in {handshake.duration_seconds * 1000:.1f}ms"
    if handshake.negotiated is not None:
        text += f", negotiated {handshake.negotiated.label}"
    if handshake.cipher is not None:
        text += f", cipher {handshake.cipher}"
    return text + (f": {handshake.detail}" if handshake.detail else "")


def describe_route(route: RouteResult) -> str:
    text = f"directory {route.route.value}: {route.outcome.value}"
    if route.failed_step is not None:
        text += f" at step {route.failed_step.value}"
    text += (
        f", status {_or_dash(route.status_code)}, entries {_or_dash(route.entries)} "
        f"over {route.pages} pages"
    )
    if route.tls_version is not None:
        text += f", {route.tls_version.label}"
    text += f", {route.duration_seconds:.3f}s"
    return text + (f": {route.detail}" if route.detail else "")


def describe_snmp_line(result: SnmpProbeResult) -> str:
    text = f"snmp: {result.outcome.value}, {result.requests} requests"
    if result.walked:
        text += ", phone table walked"
    elif result.phones is not None:
        text += ", phone table unchanged since its last walk"
    if (scalars := result.scalars) is not None:
        text += (
            f", {scalars.registered} registered, {scalars.unregistered} unregistered, "
            f"{scalars.rejected} rejected phones"
        )
    if result.phones is not None:
        text += f", {len(result.phones)} rows"
    return text + (f": {result.detail}" if result.detail else "")


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_snmp(result: SnmpProbeResult) -> Iterable[str]:
    return [describe_snmp_line(result)]


# --- one line per result: the classified outcomes, for the landing page, logs and summaries --


def summarize_tls(result: TlsProbeResult) -> str:
    """Which versions each port accepts, e.g. "8443/tomcat accepts 1.2, 1.3; 2445/tvs ..."."""
    parts = []
    for port in result.ports:
        verdicts = {h.pinned: port.accepted(h) for h in port.pinned if h.pinned is not None}
        accepted = [version.value for version, ok in verdicts.items() if ok]
        unknown = [version.value for version, ok in verdicts.items() if ok is None]
        text = f"{port.port}/{port.service} accepts {', '.join(accepted) or 'none'}"
        if unknown:
            text += f" ({', '.join(unknown)} not judged)"
        parts.append(text)
    return "; ".join(parts) or "no port probed"


def summarize_directory(result: DirectoryProbeResult) -> str:
    """Each route's classified result, e.g. "http ok, https ok, https_legacy tls_error"."""
    return ", ".join(f"{r.route.value} {r.outcome.value}" for r in result.routes) or "no route"


def summarize_snmp(result: SnmpProbeResult) -> str:
    text = result.outcome.value
    if (scalars := result.scalars) is not None:
        text += f", {scalars.registered} registered phones"
    if result.phones is not None:
        text += f", {len(result.phones)} rows"
    return text
