"""The catalogue and the impact join: pure logic, checked family by family."""

from __future__ import annotations

import pytest

from exporter.catalogue import bundled_entries, load_catalogue, load_version
from exporter.config import CatalogueEntry, FirmwareRule
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

# (ccmProductName, active load) -> (family, max_tls): one or more models of every bundled
# family, on new and old firmware where the family has a firmware rule.
FAMILIES = [
    ("Cisco 7962", "SCCP42.9-4-2SR3-1S", "79xx", "1.0"),
    ("Cisco 7941G-GE", "SCCP41.9-4-2SR3-1S", "79xx", "1.0"),
    ("Cisco 7925", "CP7925G-1.4.8SR1", "79xx", "1.0"),
    ("Cisco 6921", "SCCP69xx.9-4-1-3SR3", "69xx", "1.0"),
    ("Cisco 8945", "SCCP894x.9-4-2SR3-1", "89xx", "1.0"),
    ("Cisco 8961", "sip8961.9-4-2SR4-1", "89xx", "1.0"),
    ("Cisco 9971", "sip9971.9-4-2SR4-1", "99xx", "1.0"),
    ("Cisco 9951", "sip9951.9-4-2SR4-1", "99xx", "1.0"),
    ("Cisco 3905", "SIP3905.9-4-1SR3", "39xx", "1.0"),
    ("Cisco IP Communicator", "CIPC-8-6-6-0", "IP Communicator", "1.0"),
    ("Cisco 8831", "sip8831.10-3-1SR7", "8831", "1.0"),
    ("Cisco DX650", "sipdx650.10-2-5-211", "DX650", "1.0"),
    ("Cisco 8821", "sip8821.11-0-6SR2-1", "8821", "1.2"),
    ("Cisco 8821-EX", "sip8821.10-3-1-16", "8821", "1.0"),
    ("Cisco 7841", "sip78xx.14-1-1-0001-125", "78xx", "1.2"),
    ("Cisco 7821", "sip78xx.11-0-1-11", "78xx", "1.0"),
    ("Cisco 8845", "sip8845_65.14-1-1-0001-125", "88xx", "1.2"),
    ("Cisco 8851NR", "sip88xx.12-0-1-11", "88xx", "1.2"),
    ("Cisco 8851", "sip88xx.10-3-2-16", "88xx", "1.0"),
    ("Cisco 8841", "garbled", "88xx", "unknown"),  # firmware rule, unreadable load: no guess
    ("Cisco DX80", "ce-9.8.1", "DX70/DX80", "1.2"),
    ("Cisco Unified Client Services Framework", "", "Jabber", "1.2"),
    ("Cisco Dual Mode for iPhone", "", "Jabber", "1.2"),
    ("Cisco Webex Desk Pro", "RoomOS 11.5", "unknown", "unknown"),
    ("", "", "unknown", "unknown"),
]


@pytest.mark.parametrize(("product", "load", "family", "max_tls"), FAMILIES)
def test_every_family_of_the_catalogue(product: str, load: str, family: str, max_tls: str) -> None:
    capability = load_catalogue().lookup(product, load)
    assert (capability.family, capability.max_tls_label) == (family, max_tls)
    assert capability.source


def test_every_bundled_entry_is_exercised() -> None:
    assert {e.family for e in bundled_entries()} <= {row[2] for row in FAMILIES}


def test_configured_entries_come_first() -> None:
    override = CatalogueEntry(
        family="lab-7962", match=r"^7962$", max_tls=V12, source="tested in our lab"
    )
    catalogue = load_catalogue([override])
    assert catalogue.lookup("Cisco 7962", "").max_tls is V12
    assert catalogue.lookup("Cisco 7942", "").max_tls is V10  # the bundled rule still applies


def test_a_configured_firmware_rule() -> None:
    entry = CatalogueEntry(
        family="x", match="^X1$", max_tls=V12, firmware=FirmwareRule(min_load="12.5", below=V10)
    )
    catalogue = load_catalogue([entry])
    assert catalogue.lookup("Cisco X1", "sipx.12-1-1-1").max_tls is V10
    assert catalogue.lookup("Cisco X1", "sipx.12-5-1-1").max_tls is V12


@pytest.mark.parametrize(
    ("load", "version"),
    [
        ("SCCP45.9-4-2SR3-1S", (9, 4)),
        ("sip88xx.14-0-1-0101-29", (14, 0)),
        ("cmterm-7942_7962-sip.9-4-2SR3-1", (9, 4)),
        ("", None),
    ],
)
def test_load_versions(load: str, version: tuple[int, int] | None) -> None:
    assert load_version(load) == version


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
