"""The phone catalogue: every bundled rule, on real load-name formats, and what it may claim."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import SecretStr, ValidationError

from exporter.catalogue import (
    REASON_UNKNOWN_DIRECTORY,
    REASON_UNKNOWN_MODEL,
    REASON_UNREADABLE_LOAD,
    Capability,
    DirectoryUse,
    bundled_entries,
    load_catalogue,
    load_version,
)
from exporter.config import (
    CatalogueEntry,
    FirmwareRule,
    NodeConfig,
    SnmpCredentials,
    SnmpProbeConfig,
)
from exporter.lab import Lab
from exporter.lab.cluster import LAB_COMMUNITY
from exporter.probes.snmp import SnmpProbe
from exporter.results import SnmpOutcome, TlsVersion
from exporter.timing import Deadline

V10, V11, V12, V13 = TlsVersion.TLS1_0, TlsVersion.TLS1_1, TlsVersion.TLS1_2, TlsVersion.TLS1_3
TVS, NONE, OTHER, UNKNOWN = (
    DirectoryUse.TVS_HTTPS,
    DirectoryUse.NONE,
    DirectoryUse.OTHER,
    DirectoryUse.UNKNOWN,
)

# (model as CUCM names it, active load as the inventory reports it) ->
# (family, max_tls, directory, assumption): every bundled rule, on new and old firmware where
# the rule has a firmware condition. Load names are in the formats Cisco ships them.
FAMILIES = [
    ("Cisco 6901", "SCCP6901.9-3-1SR2-2", "6901/6911", "1.0", NONE, False),
    ("Cisco 6911", "SIP6911.9-3-1SR2-2", "6901/6911", "1.0", NONE, False),
    ("Cisco 7940", "P00308010200", "7940/7960", "1.0", UNKNOWN, False),
    ("Cisco 7960", "P0S3-08-12-00", "7940/7960", "1.0", UNKNOWN, False),
    ("Cisco 7962", "SCCP42.9-4-2SR3-1S", "79xx", "1.0", TVS, False),
    ("Cisco 7941G-GE", "SCCP41.9-4-2SR3-1S", "79xx", "1.0", TVS, False),
    ("Cisco 7975", "SCCP75.9-4-2SR4-3S", "79xx", "1.0", TVS, False),
    ("Cisco 7925", "CP7925G-1.4.8SR1", "79xx", "1.0", TVS, False),
    ("Cisco 6921", "SCCP69xx.9-4-1-3SR3", "69xx", "1.0", TVS, False),
    ("Cisco 6945", "SCCP6945.9-4-1-3SR3", "69xx", "1.0", TVS, False),
    ("Cisco 8945", "SCCP894x.9-4-2SR3-1", "89xx", "1.0", TVS, False),
    ("Cisco 8961", "sip8961.9-4-2SR4-1", "89xx", "1.0", TVS, False),
    ("Cisco 9971", "sip9971.9-4-2SR4-1", "99xx", "1.0", TVS, False),
    ("Cisco 9951", "sip9951.9-4-2SR4-1", "99xx", "1.0", TVS, False),
    ("Cisco 3905", "SIP3905.9-4-1SR3", "39xx", "1.0", TVS, False),
    ("Cisco IP Communicator", "CIPC-8-6-6-0", "IP Communicator", "1.0", TVS, False),
    ("Cisco 8831", "sip8831.10-3-1SR7", "8831", "1.0", TVS, True),
    ("Cisco DX650", "sipdx650.10-2-5-211", "DX650", "1.0", TVS, True),
    ("Cisco 8821", "sip8821.11-0-6SR2-4", "8821", "1.2", TVS, False),
    ("Cisco 8821", "sip8821.11-0-2SR1-3", "8821", "1.2", TVS, False),
    ("Cisco 8821", "sip8821.11-0-1-16", "8821", "1.0", TVS, True),  # 11.0(1) < 11.0(2)
    ("Cisco 8821-EX", "sip8821.10-3-1-16", "8821", "1.0", TVS, True),
    ("Cisco 7841", "sip78xx.14-2-1-0001-14", "78xx", "1.2", TVS, False),
    ("Cisco 7811", "sip78xx.12-7-1-0001-393", "78xx", "1.2", TVS, False),
    ("Cisco 7832", "sip7832.14-1-1-0001-125", "78xx", "1.2", TVS, False),
    ("Cisco 7821", "sip78xx.11-0-1-11", "78xx", "1.0", TVS, True),
    ("Cisco 8875", "PHONEOS-8875.2-3-1-0001-26", "8875", "1.3", TVS, False),
    ("Cisco 8875NR", "PHONEOS-8875.2-0-1-0001-16", "8875", "1.3", TVS, False),
    ("Cisco 8845", "sip8845_65.14-1-1-0001-125", "88xx", "1.2", TVS, False),
    ("Cisco 8851NR", "sip88xx.12-0-1-11", "88xx", "1.2", TVS, False),
    ("Cisco 8832NR", "sip8832.14-1-1-0001-125", "88xx", "1.2", TVS, False),
    ("Cisco 8851", "sip88xx.11-0-1MN-13", "88xx", "1.0", TVS, True),
    ("Cisco 8851", "sip88xx.10-3-2-16", "88xx", "1.0", TVS, True),
    ("Cisco 8851NS", "sip88xx.14-2-1-0001-14", "88xx NS", "1.2", TVS, False),
    ("Cisco 8811NS", "sip88xx.14-2-1-0001-14", "88xx NS", "1.2", TVS, False),
    ("Cisco 8841NS", "sip88xx.11-7-1-17", "88xx NS", "1.0", TVS, True),
    ("Cisco 9841", "PHONEOS-9841.5-0-1-0005-62", "98xx", "1.3", TVS, False),
    ("Cisco 9851", "PHONEOS-9851.4-1-1-0101-76", "98xx", "1.3", TVS, False),
    ("Cisco 9861", "PHONEOS-9861.5-0-1-0005-62", "98xx", "1.3", TVS, False),
    ("Cisco 9871NR", "PHONEOS-9871.4-1-1-0101-76", "98xx", "1.3", TVS, False),
    ("Cisco DX80", "ce-9.8.1", "DX70/DX80", "1.2", TVS, False),
    ("Cisco TelePresence DX70", "ce9.1.3", "DX70/DX80", "1.2", TVS, False),
    ("Cisco Webex DX80", "s52040ce9_15_3_17", "DX70/DX80", "1.2", TVS, False),
    ("Cisco TelePresence DX80", "ce9.1.2", "DX70/DX80", "1.0", TVS, True),
    ("Cisco Unified Client Services Framework", "", "Jabber", "1.2", OTHER, False),
    ("Cisco Dual Mode for iPhone", "", "Jabber", "1.2", OTHER, False),
    ("Cisco Dual Mode for Android", "", "Jabber", "1.2", OTHER, False),
    ("Cisco Jabber for Tablet", "", "Jabber", "1.2", OTHER, False),
]


@pytest.mark.parametrize(("product", "load", "family", "max_tls", "directory", "assumed"), FAMILIES)
def test_every_family_of_the_catalogue(
    product: str, load: str, family: str, max_tls: str, directory: DirectoryUse, assumed: bool
) -> None:
    capability = load_catalogue().lookup(product, load)
    assert (capability.family, capability.max_tls_label) == (family, max_tls)
    assert (capability.directory, capability.assumption) == (directory, assumed)
    assert capability.source
    # An assumption is labelled as one everywhere it is visible.
    assert (capability.confidence == "assumed") is assumed
    if assumed:
        assert "assum" in capability.source


def test_every_bundled_entry_is_exercised() -> None:
    assert {e.family for e in bundled_entries()} <= {row[2] for row in FAMILIES}


def test_every_bundled_entry_names_its_source_and_confidence() -> None:
    for entry in bundled_entries():
        assert entry.source != "configured", entry.family
        assert len(entry.source) > 20, entry.family
        assert entry.confidence in ("documented", "inferred", "assumed"), entry.family


@pytest.mark.parametrize(
    ("product", "load"),
    [
        ("Cisco Webex Desk Pro", "RoomOS 11.5"),
        ("Cisco 9811", "PHONEOS-9811.5-0-1-0005-62"),  # PhoneOS, but no source covers it
        ("Cisco 8800", "sip88xx.14-2-1-0001-14"),  # the 88xx rule lists its models
        ("Cisco 7800", "sip78xx.14-2-1-0001-14"),
        ("Cisco ATA 190", "ATA190.1-2-2-003"),
        ("", ""),
    ],
)
def test_a_model_no_rule_names_is_unknown(product: str, load: str) -> None:
    capability = load_catalogue().lookup(product, load)
    assert (capability.family, capability.max_tls, capability.directory) == (
        "unknown",
        None,
        UNKNOWN,
    )
    assert capability.reason == REASON_UNKNOWN_MODEL
    assert capability.cut_off(V12) is None


@pytest.mark.parametrize(
    ("product", "load"),
    [
        ("Cisco 8841", "garbled"),
        ("Cisco 7841", ""),
        ("Cisco 8821", "sip8821.11-0"),  # two parts cannot decide against 11.0(2)
        ("Cisco Webex DX80", "sipdx80.10-2-5-215"),  # Android firmware, not CE: not in the matrix
    ],
)
def test_a_firmware_rule_never_guesses_an_unreadable_load(product: str, load: str) -> None:
    capability = load_catalogue().lookup(product, load)
    assert capability.family != "unknown"
    assert capability.max_tls is None
    assert capability.reason == REASON_UNREADABLE_LOAD
    assert capability.cut_off(V12) is None
    assert not capability.assumption


def test_the_8821_rule_compares_the_full_11_0_2_load() -> None:
    lookup = load_catalogue().lookup
    # Major.minor alone (11.0) would call 11.0(1) TLS 1.2-capable: the matrix says 11.0(2).
    assert lookup("Cisco 8821", "sip8821.11-0-1-16").cut_off(V12) is True
    assert lookup("Cisco 8821", "sip8821.11-0-2-13").cut_off(V12) is False
    assert lookup("Cisco 8821-EX", "sip8821.11-0-2SR1-3").cut_off(V12) is False
    assert lookup("Cisco 8821", "sip8821.11-1-1-4").cut_off(V12) is False


def test_phoneos_video_phones_are_not_caught_by_the_88xx_rule() -> None:
    lookup = load_catalogue().lookup
    for product in ("Cisco 8875", "Cisco 8875NR"):
        video = lookup(product, "PHONEOS-8875.2-3-1-0001-26")
        # The 88xx rule would read 2.3 as "older than 12.0" and call it cut off at TLS 1.1.
        assert video.family == "8875"
        assert (video.cut_off(V11), video.cut_off(V12), video.cut_off(V13)) == (
            False,
            False,
            False,
        )


def test_at_tls_1_3_the_tls_1_2_families_are_cut_off() -> None:
    lookup = load_catalogue().lookup
    cut = {
        "Cisco 7841": "sip78xx.14-2-1-0001-14",
        "Cisco 8851": "sip88xx.14-1-1-0001-125",
        "Cisco 8821": "sip8821.11-0-6SR2-4",
    }
    for product, load in cut.items():
        assert lookup(product, load).cut_off(V12) is False, product
        assert lookup(product, load).cut_off(V13) is True, product
    for product, load in {
        "Cisco 9861": "PHONEOS-9861.5-0-1-0005-62",
        "Cisco 8875": "PHONEOS-8875.2-3-1-0001-26",
    }.items():
        assert lookup(product, load).cut_off(V13) is False, product


def test_devices_without_the_tvs_directory_are_never_cut_off() -> None:
    lookup = load_catalogue().lookup
    no_display = lookup("Cisco 6911", "SIP6911.9-3-1SR2-2")
    jabber = lookup("Cisco Unified Client Services Framework", "")
    for device in (no_display, jabber):
        assert device.reason == ""
        assert [device.cut_off(v) for v in TlsVersion] == [False] * len(TlsVersion)
    # Its 69xx neighbours with a display use the directory, and are cut off at TLS 1.1.
    assert lookup("Cisco 6921", "SCCP69xx.9-4-1-3SR3").cut_off(V11) is True


def test_an_unknown_directory_cannot_be_judged() -> None:
    legacy = load_catalogue().lookup("Cisco 7960", "P00308010200")
    assert (legacy.max_tls, legacy.reason) == (V10, REASON_UNKNOWN_DIRECTORY)
    assert legacy.cut_off(V12) is None


@pytest.mark.parametrize(
    ("capability", "required", "expected"),
    [
        (Capability("x", V10, "s"), V10, False),
        (Capability("x", V10, "s"), V11, True),
        (Capability("x", V12, "s"), V12, False),
        (Capability("x", V12, "s"), V13, True),
        (Capability("x", V10, "s", assumption=True, confidence="assumed"), V12, True),
        (Capability("x", None, "s", reason=REASON_UNREADABLE_LOAD), V12, None),
        (Capability("x", V10, "s", directory=NONE), V13, False),
        (Capability("x", None, "s", directory=OTHER), V13, False),
        (Capability("x", V10, "s", directory=UNKNOWN), V12, None),
    ],
)
def test_cut_off(capability: Capability, required: TlsVersion, expected: bool | None) -> None:
    assert capability.cut_off(required) is expected


def test_configured_entries_come_first() -> None:
    override = CatalogueEntry(
        family="lab-7962", match=r"^7962$", max_tls=V12, source="tested in our lab"
    )
    catalogue = load_catalogue([override])
    assert catalogue.lookup("Cisco 7962", "").max_tls is V12
    assert catalogue.lookup("Cisco 7942", "").max_tls is V10  # the bundled rule still applies


def test_a_configured_entry_keeps_its_old_defaults_and_can_set_the_new_fields() -> None:
    plain = CatalogueEntry.model_validate({"family": "x", "match": "^X$", "max_tls": "1.2"})
    assert (plain.directory, plain.confidence, plain.source) == (
        "tvs_https",
        "configured",
        "configured",
    )
    kiosk = CatalogueEntry.model_validate(
        {
            "family": "kiosk",
            "match": "^K1$",
            "max_tls": "1.0",
            "directory": "none",
            "confidence": "assumed",
        }
    )
    capability = load_catalogue([kiosk]).lookup("Cisco K1", "")
    assert (capability.directory, capability.confidence, capability.assumption) == (
        NONE,
        "assumed",
        True,
    )
    assert capability.cut_off(V13) is False


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"directory": "https"}, "directory"),
        ({"confidence": "sure"}, "confidence"),
        ({"firmware": {"min_load": "11", "below": "1.0"}}, "min_load"),
        ({"firmware": {"min_load": "1.2", "below": "1.0", "load_match": "ce(\\d+)"}}, "load_match"),
        ({"firmware": {"min_load": "1.2", "below": "1.0", "load_match": "("}}, "load_match"),
    ],
)
def test_a_bad_entry_names_its_field(entry: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CatalogueEntry.model_validate({"family": "x", "match": "^X$", "max_tls": "1.2", **entry})
    assert field in str(caught.value)


def test_a_configured_firmware_rule() -> None:
    entry = CatalogueEntry(
        family="x", match="^X1$", max_tls=V12, firmware=FirmwareRule(min_load="12.5", below=V10)
    )
    catalogue = load_catalogue([entry])
    assert catalogue.lookup("Cisco X1", "sipx.12-1-1-1").max_tls is V10
    assert catalogue.lookup("Cisco X1", "sipx.12-1-1-1").assumption
    assert catalogue.lookup("Cisco X1", "sipx.12-5-1-1").max_tls is V12


def test_a_configured_firmware_rule_with_three_parts_and_its_own_load_format() -> None:
    rule = FirmwareRule(
        min_load="3.2.1", below=V12, load_match=r"^roomos-(?P<version>\d+(?:\.\d+)+)"
    )
    entry = CatalogueEntry(family="r", match="^R1$", max_tls=V13, firmware=rule)
    lookup = load_catalogue([entry]).lookup
    assert lookup("Cisco R1", "roomos-3.2.0").max_tls is V12
    assert lookup("Cisco R1", "roomos-3.2.1.7").max_tls is V13
    assert lookup("Cisco R1", "roomos-3.10").max_tls is V13  # 3.10 > 3.2, numerically
    assert lookup("Cisco R1", "sipr1.3-2-1-1").reason == REASON_UNREADABLE_LOAD


@pytest.mark.parametrize(
    ("load", "version"),
    [
        ("SCCP45.9-4-2SR3-1S", (9, 4, 2)),
        ("sip88xx.14-0-1-0101-29", (14, 0, 1, 101, 29)),
        ("cmterm-7942_7962-sip.9-4-2SR3-1", (9, 4, 2)),
        ("sip78xx.14-2-1-0001-14", (14, 2, 1, 1, 14)),
        ("sip88xx.11-0-1MN-13", (11, 0, 1)),
        ("sip8821.11-0-2SR1-3", (11, 0, 2)),
        ("sip8845_65.14-1-1-0001-125", (14, 1, 1, 1, 125)),
        ("PHONEOS-8875.2-3-1-0001-26", (2, 3, 1, 1, 26)),
        ("CP7925G-1.4.8SR1", None),
        ("sipx.12", None),
        ("garbled", None),
        ("", None),
    ],
)
def test_load_versions(load: str, version: tuple[int, ...] | None) -> None:
    assert load_version(load) == version


# --- through the lab's SNMP agent ------------------------------------------------------------

# The models issue 13 found misclassified, as a node's phone table reports them (product names
# from ccmProductTypeTable, loads from ccmPhoneActiveLoadID), with what each is after the fix:
# (model, load, count) -> (cut off at TLS 1.2, cut off at TLS 1.3).
ISSUE_MIX: dict[tuple[str, str, int], tuple[bool | None, bool | None]] = {
    ("Cisco 8875", "PHONEOS-8875.2-3-1-0001-26", 2): (False, False),
    ("Cisco 8875NR", "PHONEOS-8875.2-0-1-0001-16", 1): (False, False),
    ("Cisco 8851NS", "sip88xx.14-2-1-0001-14", 1): (False, True),
    ("Cisco 9861", "PHONEOS-9861.5-0-1-0005-62", 1): (False, False),
    ("Cisco 6901", "SCCP6901.9-3-1SR2-2", 2): (False, False),
    ("Cisco 6911", "SIP6911.9-3-1SR2-2", 1): (False, False),
    ("Cisco Unified Client Services Framework", "", 2): (False, False),
    ("Cisco TelePresence DX70", "ce9.8.1", 1): (False, True),
    ("Cisco DX650", "sipdx650.10-2-5-211", 1): (True, True),  # assumed, and labelled so
    ("Cisco 8821", "sip8821.11-0-1-16", 1): (True, True),  # 11.0(1), below 11.0(2)
    ("Cisco 8821", "sip8821.11-0-2SR1-3", 1): (False, True),
}


async def test_the_lab_phone_table_through_the_catalogue() -> None:
    with Lab({"lab": ("pub",)}, restart_downtime=0.0, phone_mix=tuple(ISSUE_MIX)) as lab:
        state = lab.node("pub")
        node = NodeConfig(
            name="pub",
            host=state.address,
            port_map={161: state.ports[161]},
            snmp=SnmpCredentials(version="2c", community=SecretStr(LAB_COMMUNITY)),
        )
        settings = SnmpProbeConfig(
            interval=60, timeout=10, request_timeout=1, retries=0, max_repetitions=5
        )
        probe = SnmpProbe()
        try:
            result = await probe(node, settings, Deadline.after(10))
        finally:
            await probe.aclose()
    assert result.outcome is SnmpOutcome.OK, result.detail
    lookup = load_catalogue().lookup
    seen = Counter(
        (
            row.product,
            row.active_load,
            lookup(row.product, row.active_load).cut_off(V12),
            lookup(row.product, row.active_load).cut_off(V13),
        )
        for row in result.phones or ()
    )
    expected = Counter(
        {(model, load, *verdicts): count for (model, load, count), verdicts in ISSUE_MIX.items()}
    )
    assert seen == expected
