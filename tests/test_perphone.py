"""Per-phone verdicts from the phones' own configuration files: the rules on their own, then
the whole path against the lab (TLS sweep, directory probe, SNMP inventory, TFTP files)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.catalogue import load_catalogue
from exporter.config import ExporterConfig, parse_config
from exporter.impact import Basis, ClusterPhones, Missing, Verdict, cluster_phones
from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.tftp import ConfigFault, DirectoryMode
from exporter.metrics.collector import CucmCollector
from exporter.perphone import NodePolicy, judge_phone
from exporter.probes import BUILTIN_PROBES, ProbeRunner
from exporter.probes.cnfxml import BUILTIN_DIRECTORY, PhoneConfig
from exporter.results import TlsVersion
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.conftest import promtool_check_metrics

V10, V12, V13 = TlsVersion.TLS1_0, TlsVersion.TLS1_2, TlsVersion.TLS1_3
CATALOGUE = load_catalogue()
LEGACY = CATALOGUE.lookup("Cisco 7962", "SCCP42.9-4-2SR3-1S")
MODERN = CATALOGUE.lookup("Cisco 8845", "sip8845_65.14-1-1-0001-125")
ALIASES = {"pub.x": "pub", "sub.x": "sub", "10.0.0.1": "pub"}
SECURE = "https://pub.x:8443/ccmcip/xmldirectory.jsp"
HTTP_SERVICE = "http://pub.x:8080/ccmcip/xmldirectoryinput.jsp"


def config(
    *,
    secure: str = SECURE,
    services: tuple[str, ...] = (BUILTIN_DIRECTORY,),
    tvs: tuple[str, ...] = ("pub.x", "sub.x"),
) -> PhoneConfig:
    return PhoneConfig(
        directory_url="http://pub.x:8080/ccmcip/xmldirectory.jsp",
        secure_directory_url=secure,
        directory_services=services,
        tvs=tvs,
        cm_group=("pub.x", "sub.x"),
        load="SCCP42.9-4-2SR3-1S",
    )


def policies(pub: TlsVersion, sub: TlsVersion, http: bool | None = True) -> dict[str, NodePolicy]:
    return {"pub": NodePolicy(pub, pub, http), "sub": NodePolicy(sub, sub, http)}


def test_the_strictest_tvs_the_phone_may_pick_decides() -> None:
    # Registered to pub (still 1.0), but its TVS list holds sub (1.2): it may pick sub.
    assert judge_phone(LEGACY, config(), ALIASES, policies(V10, V12)) == (Verdict.AT_RISK, None)
    only_pub = config(tvs=("10.0.0.1",))
    assert judge_phone(LEGACY, only_pub, ALIASES, policies(V10, V12)) == (Verdict.FINE, None)
    # The directory itself is on pub's Tomcat: pub's policy counts even when its TVS is not
    # in the list.
    only_sub = config(tvs=("sub.x",))
    assert judge_phone(LEGACY, only_sub, ALIASES, policies(V12, V10)) == (Verdict.AT_RISK, None)


def test_a_working_http_directory_covers_a_legacy_phone() -> None:
    subscribed = config(services=(BUILTIN_DIRECTORY, HTTP_SERVICE))
    assert judge_phone(LEGACY, subscribed, ALIASES, policies(V12, V12)) == (Verdict.COVERED, None)
    # Covered before the change too: the count does not move when the policy does.
    assert judge_phone(LEGACY, subscribed, ALIASES, policies(V10, V10)) == (Verdict.COVERED, None)
    plain = config(secure="")  # no secure URL: the phone falls back to directoryURL over HTTP
    assert judge_phone(LEGACY, plain, ALIASES, policies(V12, V12)) == (Verdict.COVERED, None)
    # The HTTP route broke: the secure path decides again.
    broken = policies(V12, V12, http=False)
    assert judge_phone(LEGACY, subscribed, ALIASES, broken) == (Verdict.AT_RISK, None)
    assert judge_phone(LEGACY, plain, ALIASES, broken) == (Verdict.AT_RISK, None)
    assert judge_phone(LEGACY, subscribed, ALIASES, policies(V10, V10, http=False)) == (
        Verdict.FINE,
        None,
    )
    unseen = policies(V12, V12, http=None)
    assert judge_phone(LEGACY, plain, ALIASES, unseen) == (
        Verdict.UNKNOWN,
        Missing.HTTP_ROUTE_UNKNOWN,
    )


def test_a_modern_phone_is_fine_unless_cut_off() -> None:
    subscribed = config(services=(BUILTIN_DIRECTORY, HTTP_SERVICE))
    assert judge_phone(MODERN, config(), ALIASES, policies(V12, V12)) == (Verdict.FINE, None)
    assert judge_phone(MODERN, subscribed, ALIASES, policies(V12, V12)) == (Verdict.FINE, None)
    assert judge_phone(MODERN, config(), ALIASES, policies(V13, V13)) == (Verdict.AT_RISK, None)
    assert judge_phone(MODERN, subscribed, ALIASES, policies(V13, V13)) == (
        Verdict.COVERED,
        None,
    )


def test_what_cannot_be_judged_says_why() -> None:
    stranger = config(tvs=("tvs.elsewhere",))
    assert judge_phone(LEGACY, stranger, ALIASES, policies(V12, V12)) == (
        Verdict.UNKNOWN,
        Missing.CONFIG_NODE_UNKNOWN,
    )
    no_policy = {"pub": NodePolicy(V12, V12, True)}  # sub's TLS sweep never ran
    assert judge_phone(LEGACY, config(), ALIASES, no_policy) == (
        Verdict.UNKNOWN,
        Missing.TLS_POLICY_UNKNOWN,
    )
    unknown_model = CATALOGUE.lookup("Cisco Webex Desk Pro", "RoomOS 11.5")
    assert judge_phone(unknown_model, config(), ALIASES, policies(V12, V12))[0] is Verdict.UNKNOWN
    soft = CATALOGUE.lookup("Cisco Unified Client Services Framework", "")
    assert judge_phone(soft, config(), ALIASES, policies(V12, V12))[0] is Verdict.NO_DIRECTORY


# --- against the lab ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


def lab_config(lab: Lab) -> ExporterConfig:
    data = lab.exporter_config(interval=30.0, timeout=20.0)
    data["probes"]["phoneconfig"] = {"enabled": True, "interval": "30s", "timeout": "20s"}
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


class Cluster:
    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        self.store = ResultStore()
        self.runner = ProbeRunner(latest=self.store.snapshot)

    async def poll(
        self, probes: tuple[str, ...] = ("tls", "directory", "snmp", "phoneconfig")
    ) -> ClusterPhones:
        cluster = self.config.clusters[0]
        for probe in probes:
            for node in cluster.nodes:
                self.store.put(await self.runner.run(self.config, cluster, node, probe))
        return self.summary()

    def summary(self, assume: dict[str, TlsVersion] | None = None) -> ClusterPhones:
        cluster = self.config.clusters[0]
        specs = {spec.name: spec for spec in BUILTIN_PROBES}
        names = [n.name for n in cluster.nodes]
        return cluster_phones(self.store.snapshot(), specs, CATALOGUE, names, assume)


@pytest.fixture
async def watched(lab: Lab) -> AsyncIterator[Cluster]:
    cluster = Cluster(lab_config(lab))
    yield cluster
    await cluster.runner.aclose()


def by_state(summary: ClusterPhones) -> Counter[str]:
    counts: Counter[str] = Counter()
    for (_, _, _, verdict, _), n in summary.verdicts.items():
        counts[verdict.value] += n
    return counts


def http_configured(lab: Lab) -> set[str]:
    files = lab.config_files()
    return {
        p.name
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.status == "registered"
        and p.name.startswith("SEP")
        and files.settings(p.name).directory is not DirectoryMode.SECURE
    }


def by_basis(summary: ClusterPhones) -> Counter[tuple[Basis, str]]:
    counts: Counter[tuple[Basis, str]] = Counter()
    for (_, basis, reason), n in summary.basis.items():
        counts[(basis, reason)] += n
    return counts


def only_the_unknown_model_is_missing(summary: ClusterPhones) -> bool:
    """The lab registers one Webex Desk Pro per node, a model no catalogue entry knows."""
    return all(set(f.missing) == {Missing.CAPABILITY_UNKNOWN} for f in summary.facts.values())


def registered_sep(lab: Lab) -> list[tuple[str, str, str]]:
    return [
        (p.name, p.product, p.active_load)
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.status == "registered" and p.name.startswith("SEP")
    ]


def cut_off_at_1_2(lab: Lab) -> set[str]:
    """Registered phones the catalogue says a TLS 1.2 minimum cuts off (the truth to expect)."""
    return {
        name
        for name, product, load in registered_sep(lab)
        if CATALOGUE.lookup(product, load).cut_off(V12) is True
    }


async def test_the_lab_cluster_judged_phone_by_phone(lab: Lab, watched: Cluster) -> None:
    files = lab.config_files()
    workaround = http_configured(lab)
    legacy = cut_off_at_1_2(lab)
    assert workaround < legacy  # the lab's HTTP phones are 7962s

    today = await watched.poll()
    assert only_the_unknown_model_is_missing(today)
    basis = by_basis(today)
    assert basis[(Basis.CONFIG, "ok")] == len(registered_sep(lab))
    assert basis[(Basis.INFERENCE, "not_read")] > 0  # the soft clients have no SEP file
    assert by_state(today)["at_risk"] == 0  # everything accepts TLS 1.0
    assert by_state(today)["covered"] == len(workaround)
    # The what-if of check: the same per-phone verdict under an assumed minimum.
    what_if = watched.summary({"cucm-pub": V12, "cucm-sub1": V12})
    assert by_state(what_if)["at_risk"] == len(legacy - workaround)
    assert by_state(what_if)["covered"] == len(workaround)

    lab.set_tls_policy("cucm-pub", "1.2")
    changed: set[str] = set()
    try:
        after = await watched.poll(("tls", "directory"))
        # Phones registered to cucm-sub1 list cucm-pub's TVS too: they are cut off as well,
        # which the registration-based inference cannot see.
        at_risk_by_node = {node: n for (node, _), n in after.at_risk.items() if n}
        assert set(at_risk_by_node) == {"cucm-pub", "cucm-sub1"}
        assert by_state(after)["at_risk"] == len(legacy - workaround)
        inferred = cluster_phones(
            {k: r for k, r in watched.store.snapshot().items() if k[2] != "phoneconfig"},
            {spec.name: spec for spec in BUILTIN_PROBES},
            CATALOGUE,
            ["cucm-pub", "cucm-sub1"],
        )
        assert sum(n for (node, _), n in inferred.at_risk.items() if node == "cucm-sub1") == 0

        # The operator subscribes the broken phones to the HTTP directory service.
        changed = legacy - workaround
        for name in changed:
            files.configure(name, directory=DirectoryMode.HTTP_SERVICE)
        fixed = await watched.poll(("snmp", "phoneconfig"))
        assert by_state(fixed)["at_risk"] == 0
        assert by_state(fixed)["covered"] == len(legacy)
        assert sum(fixed.at_risk.values()) == 0
        assert fixed.at_risk  # the judged models stay listed at 0, so the alert resolves

        # cucm-pub's HTTP directory breaks: its phones are no longer covered.
        lab.set_directory_fault("cucm-pub", DirectoryFault.HTTP_500)
        broken = await watched.poll(("directory",))
        pub_phones = {p.name for p in lab.phones("cucm-pub") if p.status == "registered"}
        assert by_state(broken)["covered"] == len(legacy - pub_phones)
        assert by_state(broken)["at_risk"] == len(legacy & pub_phones)
    finally:
        lab.set_directory_fault("cucm-pub", DirectoryFault.NONE)
        for name in changed:
            files.configure(name, directory=DirectoryMode.SECURE)
        lab.set_tls_policy("cucm-pub", "1.0")


async def test_unreadable_files_fall_back_to_the_inference_and_say_why(
    lab: Lab, watched: Cluster
) -> None:
    files = lab.config_files()
    name = sorted(cut_off_at_1_2(lab) - http_configured(lab))[0]
    files.configure(name, fault=ConfigFault.ENCRYPTED)
    try:
        summary = await watched.poll()
        basis = by_basis(summary)
        assert basis[(Basis.INFERENCE, "encrypted")] == 1
        # The inference still judges it, labelled as one: nothing new is missing.
        assert only_the_unknown_model_is_missing(summary)
    finally:
        files.configure(name, fault=ConfigFault.NONE)


async def test_metrics_count_by_state_and_basis_never_by_phone(lab: Lab, watched: Cluster) -> None:
    await watched.poll()
    registry = CollectorRegistry()
    registry.register(CucmCollector(watched.store, ExporterState(watched.config, time.time())))
    exposition = generate_latest(registry)
    promtool_check_metrics(exposition)
    covered = sum(
        s.value
        for family in registry.collect()
        if family.name == "cucm_phones_directory_state"
        for s in family.samples
        if s.labels["state"] == "covered"
    )
    assert covered == len(http_configured(lab))
    basis = [
        s
        for family in registry.collect()
        if family.name == "cucm_phones_verdict_basis"
        for s in family.samples
    ]
    assert {(s.labels["basis"], s.labels["reason"]) for s in basis} == {
        ("config", "ok"),
        ("inference", "not_read"),
    }
    # No label carries a device name: cardinality does not grow with phones.
    assert b"SEP001B2C" not in exposition  # the lab's device names
