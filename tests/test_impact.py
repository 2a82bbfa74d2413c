"""The impact join: pure logic (the catalogue itself is in test_catalogue.py)."""

from __future__ import annotations

from exporter.catalogue import load_catalogue
from exporter.impact import dedupe, required_version, summarize
from exporter.results import (
    Handshake,
    HandshakeOutcome,
    PhoneRow,
    PortResult,
    TlsProbeResult,
    TlsVersion,
)

V10, V12 = TlsVersion.TLS1_0, TlsVersion.TLS1_2


def row(name: str, status: str = "registered", product: str = "Cisco 7962") -> PhoneRow:
    return PhoneRow(name, status, product, "SCCP42.9-4-2SR3-1S")


def test_dedupe_prefers_the_registered_row() -> None:
    inventories = {
        "pub": [row("SEP1", "unregistered"), row("SEP2")],
        "sub": [row("SEP1"), row("SEP3", "rejected")],
    }
    kept = dedupe(inventories)
    assert {(n, r.name, r.status) for n, rows in kept.items() for r in rows} == {
        ("pub", "SEP2", "registered"),
        ("sub", "SEP1", "registered"),
        ("sub", "SEP3", "rejected"),
    }


def test_dedupe_keeps_the_first_of_two_unregistered_rows() -> None:
    kept = dedupe({"pub": [row("SEP1", "unregistered")], "sub": [row("SEP1", "unregistered")]})
    assert [r.name for r in kept["pub"]] == ["SEP1"]
    assert kept["sub"] == []


def port(service: str, accepted: tuple[TlsVersion, ...]) -> PortResult:
    pinned = tuple(
        Handshake(
            v,
            HandshakeOutcome.ACCEPTED
            if v in accepted
            else HandshakeOutcome.REJECTED_PROTOCOL_VERSION,
            0.01,
            negotiated=v if v in accepted else None,
        )
        for v in TlsVersion
    )
    modern = Handshake(None, HandshakeOutcome.ACCEPTED, 0.01, negotiated=V12)
    return PortResult(2445 if service == "tvs" else 8443, service, pinned, modern)


def test_the_required_version_is_the_stricter_of_tvs_and_tomcat() -> None:
    half_done = TlsProbeResult((port("tomcat", (V10, V12)), port("tvs", (V12,))))
    assert required_version(half_done) is V12
    legacy = TlsProbeResult((port("tomcat", (V10,)), port("tvs", (V10, V12))))
    assert required_version(legacy) is V10
    other_ports_only = TlsProbeResult((port("sip", (V12,)),))
    assert required_version(other_ports_only) is None


def test_at_risk_counts_registered_phones_below_the_requirement() -> None:
    inventories = {
        "pub": [
            row("SEP1"),
            row("SEP2"),
            row("SEP3", "unregistered"),  # not registered: cannot lose the directory now
            PhoneRow("SEP4", "registered", "Cisco 7841", "sip78xx.14-1-1-0001-125"),
            PhoneRow("SEP5", "registered", "Cisco Webex Desk Pro", "x"),  # unknown: never guessed
        ],
        "sub": [row("SEP6")],
    }
    summary = summarize(inventories, {"pub": V12, "sub": V10}, load_catalogue())
    assert summary.at_risk == {
        ("pub", "Cisco 7962"): 2,
        ("pub", "Cisco 7841"): 0,
        ("sub", "Cisco 7962"): 0,
    }
    assert summary.phones[("pub", "Cisco 7962", "registered", "1.0")] == 2
    assert summary.phones[("pub", "Cisco 7962", "unregistered", "1.0")] == 1
    assert summary.phones[("pub", "Cisco Webex Desk Pro", "registered", "unknown")] == 1
    assert summary.required == {"pub": V12, "sub": V10}


def test_no_tls_verdict_means_no_risk_figure() -> None:
    summary = summarize({"pub": [row("SEP1")]}, {"pub": None}, load_catalogue())
    assert summary.at_risk == {}
    assert summary.phones == {("pub", "Cisco 7962", "registered", "1.0"): 1}
