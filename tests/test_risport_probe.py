"""The RisPort70 probe against the lab's real RisPort server (HTTPS, SOAP, paging, budget)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.catalogue import load_catalogue
from exporter.config import ExporterConfig, parse_config
from exporter.impact import Missing, cluster_phones
from exporter.lab import Lab
from exporter.lab.risport import LAB_RISPORT_PASSWORD, RisportFault
from exporter.probes import BUILTIN_PROBES, ProbeRunner, ProbeSpec
from exporter.probes.risport import RisportProbe, bundled_models
from exporter.probes.risport_budget import BudgetBook
from exporter.probes.risport_result import RisportOutcome, RisportProbeResult
from exporter.results import ProbeRun
from tests.conftest import risport_config_data

EXTRA_PHONES = 2300  # the lab's ~70 plus these: three pages of 1000


class FakeClock:
    """One clock for the lab's rate limit, the probe's budget and the runner's deadlines."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        running.add_phones("cucm-sub1", "Cisco 7962", "SCCP42.9-4-2SR3-1S", EXTRA_PHONES)
        yield running


@pytest.fixture
def clock(lab: Lab) -> Iterator[FakeClock]:
    fake = FakeClock()
    service = lab.risport["lab"]
    service.set_clock(fake)
    service.set_fault(RisportFault.NONE)
    yield fake
    service.set_fault(RisportFault.NONE)


def risport_config(
    lab: Lab, inventory: str = "risport", password: str = LAB_RISPORT_PASSWORD, **settings: Any
) -> ExporterConfig:
    data = risport_config_data(lab, inventory, password, **settings)
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


def specs_with(probe: RisportProbe) -> tuple[ProbeSpec, ...]:
    """The built-in specs, with the risport probe built from `probe`'s budgets and clock."""
    import dataclasses

    book, sleep = probe._budgets, probe._sleep
    return tuple(
        dataclasses.replace(spec, build=lambda: RisportProbe(book, sleep=sleep))
        if spec.name == "risport"
        else spec
        for spec in BUILTIN_PROBES
    )


async def run_risport(
    runner: ProbeRunner, config: ExporterConfig, node: str = "cucm-pub"
) -> ProbeRun:
    cluster = config.clusters[0]
    target = next(n for n in cluster.nodes if n.name == node)
    return await runner.run(config, cluster, target, "risport")


def runner_for(clock: FakeClock, book: BudgetBook | None = None) -> ProbeRunner:
    book = book or BudgetBook(clock)
    return ProbeRunner(specs_with(RisportProbe(book, sleep=clock.sleep)), clock=clock)


def result_of(run: ProbeRun) -> RisportProbeResult:
    assert isinstance(run.result, RisportProbeResult), run.reason
    return run.result


# --- the inventory ----------------------------------------------------------------------


async def test_the_inventory_is_the_labs_phone_table_each_device_once(
    lab: Lab, clock: FakeClock
) -> None:
    runner = runner_for(clock)
    before = lab.risport["lab"].requests
    result = result_of(await run_risport(runner, risport_config(lab)))
    assert result.outcome is RisportOutcome.OK
    total = len(lab.risport["lab"].devices())
    assert result.pages == result.requests == total // 1000 + 1 == 3
    assert lab.risport["lab"].requests - before == 3
    assert result.phones is not None
    assert set(result.phones) == {"cucm-pub", "cucm-sub1"}
    seen = Counter(row.name for rows in result.phones.values() for row in rows)
    assert len(seen) == total
    assert set(seen.values()) == {1}
    # Each node's registered rows are the lab's SNMP rows registered there, same model names.
    for node in ("cucm-pub", "cucm-sub1"):
        snmp = {
            (p.name, p.product, p.active_load) for p in lab.phones(node) if p.status == "registered"
        }
        risport = {
            (r.name, r.product, r.active_load)
            for r in result.phones[node]
            if r.status == "registered"
        }
        assert risport == snmp
    await runner.aclose()


async def test_an_unmapped_model_code_is_unknown_and_the_config_can_name_it(
    lab: Lab, clock: FakeClock
) -> None:
    names = lab.add_phones("cucm-pub", "Cisco Future 9999", "sip9999.1-0", 2)
    try:
        runner = runner_for(clock)
        result = result_of(await run_risport(runner, risport_config(lab)))
        assert result.phones is not None
        rows = {r.name: r for r in result.phones["cucm-pub"]}
        assert {rows[n].product for n in names} == {""}  # unknown, never guessed
        assert result.unmapped_models == 2
        clock.now += 120
        configured = risport_config(lab, models={65000: "Cisco Future 9999"})
        result = result_of(await run_risport(runner, configured))
        assert result.phones is not None
        rows = {r.name: r for r in result.phones["cucm-pub"]}
        assert {rows[n].product for n in names} == {"Cisco Future 9999"}
        assert result.unmapped_models == 0
        await runner.aclose()
    finally:
        for name in names:
            lab.set_phone_status(name, "unregistered")


def test_the_bundled_map_names_models_as_cucm_does() -> None:
    models = bundled_models()
    assert models[437] == "Cisco 7975"
    assert models[36224] == "Cisco 8845"
    assert models[36336] == "Cisco 8875"
    assert models[36337] == "Cisco 8875NR"


async def test_phones_at_risk_are_the_same_from_risport_as_from_snmp(
    lab: Lab, clock: FakeClock
) -> None:
    lab.set_tls_policy("cucm-pub", "1.2")
    try:
        summaries = {}
        for inventory in ("snmp", "risport"):
            config = risport_config(lab, inventory)
            runner = runner_for(clock)
            runs = {}
            cluster = config.clusters[0]
            for node in cluster.nodes:
                for spec in runner.specs.values():
                    if spec.enabled(config) and spec.applies_to(cluster, node):
                        run = await runner.run(config, cluster, node, spec.name)
                        runs[(cluster.name, node.name, spec.name)] = run
            await runner.aclose()
            probes = {key[2] for key in runs}
            assert ("risport" in probes) is (inventory == "risport")
            assert ("snmp" in probes) is (inventory == "snmp")
            summaries[inventory] = cluster_phones(
                runs,
                runner.specs,
                load_catalogue(config.catalogue),
                [n.name for n in cluster.nodes],
            )
            clock.now += 120
        assert summaries["risport"].at_risk == summaries["snmp"].at_risk
        assert summaries["risport"].at_risk[("cucm-pub", "Cisco 7962")] > 0
        assert summaries["risport"].sources == ("risport",)
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")


# --- failures, classified --------------------------------------------------------------


async def test_bad_credentials_are_auth_failed(lab: Lab, clock: FakeClock) -> None:
    runner = runner_for(clock)
    run = await run_risport(runner, risport_config(lab, password="not-the-password"))
    assert run.reason == "auth_failed"
    assert "HTTP 401" in result_of(run).detail
    await runner.aclose()


async def test_the_rate_limit_fault_backs_off_without_another_request(
    lab: Lab, clock: FakeClock
) -> None:
    lab.risport["lab"].set_fault(RisportFault.RATE_LIMITED)
    runner = runner_for(clock)
    config = risport_config(lab, backoff="120s")
    result = result_of(await run_risport(runner, config))
    assert result.outcome is RisportOutcome.RATE_LIMITED
    assert (result.requests, result.faults) == (1, 1)
    lab.risport["lab"].set_fault(RisportFault.NONE)
    before = lab.risport["lab"].requests
    clock.now += 60
    assert result_of(await run_risport(runner, config)).outcome is RisportOutcome.BACKING_OFF
    assert lab.risport["lab"].requests == before  # nothing sent while backing off
    clock.now += 61
    assert result_of(await run_risport(runner, config)).outcome is RisportOutcome.OK
    await runner.aclose()


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (RisportFault.GARBAGE, RisportOutcome.BAD_RESPONSE),
        (RisportFault.TRUNCATED, RisportOutcome.BAD_RESPONSE),
        (RisportFault.ENTITY_BOMB, RisportOutcome.BAD_RESPONSE),
        (RisportFault.OVERSIZED, RisportOutcome.OVERSIZED),
        (RisportFault.STALL, RisportOutcome.TIMEOUT),
    ],
)
async def test_hostile_answers_are_classified_within_the_deadline(
    lab: Lab, clock: FakeClock, fault: RisportFault, outcome: RisportOutcome
) -> None:
    lab.risport["lab"].set_fault(fault)
    # Real time here: the stall must be cut by the request timeout, not by the test.
    probe = RisportProbe(BudgetBook())
    runner = ProbeRunner(specs_with(probe))
    config = risport_config(
        lab, request_timeout="2s", timeout="5s", max_response_bytes=4 * 1024 * 1024
    )
    run = await run_risport(runner, config)
    assert run.reason == outcome.value, result_of(run).detail
    assert run.duration_seconds < 5 + 1  # inside the probe's own deadline
    await runner.aclose()


async def test_a_node_risport_cannot_reach_is_missing_not_empty(lab: Lab, clock: FakeClock) -> None:
    lab.risport["lab"].set_fault(RisportFault.NODE_NOT_RESPONDING)
    runner = runner_for(clock)
    config = risport_config(lab)
    run = await run_risport(runner, config)
    result = result_of(run)
    assert result.outcome is RisportOutcome.NODE_NOT_RESPONDING
    assert result.not_responding == ("cucm-sub1",)
    assert result.phones is not None
    assert "cucm-sub1" not in result.phones
    summary = cluster_phones(
        {("lab", "cucm-pub", "risport"): run},
        runner.specs,
        load_catalogue(()),
        ["cucm-pub", "cucm-sub1"],
    )
    assert Missing.INVENTORY_FAILED in summary.facts["cucm-sub1"].missing
    await runner.aclose()


# --- the budget -------------------------------------------------------------------------


async def test_a_simulated_hour_of_scheduled_and_on_demand_runs_never_exceeds_the_budget(
    lab: Lab, clock: FakeClock
) -> None:
    """Two runners (the scheduler's and /probe's) share the cluster's budget, as in the
    daemon; the lab counts every request on the same accelerated clock."""
    service = lab.risport["lab"]
    start, spent_before = clock.now, len(service.times)
    book = BudgetBook(clock)
    scheduled, on_demand = runner_for(clock, book), runner_for(clock, book)
    # Pages of 100: the budget, not parsing, is what this test spends its time on.
    config = risport_config(
        lab, requests_per_minute=4, interval="60s", timeout="50s", page_size=100
    )
    results = []
    while clock.now < start + 3600:
        results.append(result_of(await run_risport(scheduled, config)))
        for _ in range(3):  # someone keeps hitting /probe?module=risport
            results.append(result_of(await run_risport(on_demand, config)))
            clock.now += 5
        clock.now += 15
    times = service.times[spent_before:]
    busiest = max(sum(1 for t in times if s <= t < s + 60) for s in times)
    assert busiest <= 4  # the budget: never more in any minute
    assert service.faults == 0 or all(r.faults == 0 for r in results)
    assert not any(r.outcome is RisportOutcome.RATE_LIMITED for r in results)
    assert len(times) >= 4 * 50  # and it was really spent, not idle
    assert sum(r.outcome is RisportOutcome.OK for r in results) > 10
    await scheduled.aclose()
    await on_demand.aclose()


async def test_a_walk_larger_than_one_runs_budget_continues_on_the_next_run(
    lab: Lab, clock: FakeClock
) -> None:
    runner = runner_for(clock)
    config = risport_config(lab, requests_per_minute=2, timeout="20s", request_timeout="3s")
    first = result_of(await run_risport(runner, config))
    assert first.outcome is RisportOutcome.WALK_IN_PROGRESS
    assert first.phones is None
    assert first.requests == 2
    clock.now += 300
    second = result_of(await run_risport(runner, config))
    assert second.outcome is RisportOutcome.OK
    assert second.requests == 1
    assert second.devices == len(lab.risport["lab"].devices())
    await runner.aclose()


# --- both sources -------------------------------------------------------------------------


async def test_with_both_risport_counts_and_snmp_is_cross_checked(
    lab: Lab, clock: FakeClock
) -> None:
    from exporter.report import build_report

    lab.risport["lab"].set_fault(RisportFault.HIDE_SOFT_CLIENTS_FROM_SNMP)
    config = risport_config(lab, "both")
    runner = runner_for(clock)
    cluster = config.clusters[0]
    runs = []
    for node in cluster.nodes:
        for name in ("snmp", "risport"):
            if runner.specs[name].applies_to(cluster, node):
                runs.append(await runner.run(config, cluster, node, name))
    await runner.aclose()
    keyed = {(r.cluster, r.node, r.probe): r for r in runs}
    summary = cluster_phones(keyed, runner.specs, load_catalogue(()), ["cucm-pub", "cucm-sub1"])
    assert summary.sources == ("risport", "snmp")
    disagree = {c.node: c for c in summary.cross_check if not c.agree}
    assert set(disagree) == {"cucm-pub", "cucm-sub1"}
    assert disagree["cucm-pub"].only_in_primary == 3  # the soft clients
    assert disagree["cucm-pub"].only_in_other == 0
    report = build_report(config, runs, load_catalogue(()), specs=runner.specs.values())
    lines = report.clusters[0].inventory
    assert "phone inventory from risport, cross-checked with snmp" in lines
    assert any(line.startswith("inventory sources disagree on cucm-pub") for line in lines)


# --- secrets ---------------------------------------------------------------------------


class Fixed:
    """A collector that yields the families it was given."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Any:
        return self.families


async def test_the_password_appears_in_no_result_line_metric_or_log(
    lab: Lab, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from exporter.metrics import Freshness, target_families

    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + LAB_RISPORT_PASSWORD
    texts = []
    for password in (LAB_RISPORT_PASSWORD, wrong):
        config = risport_config(lab, password=password)
        runner = runner_for(clock)
        run = await run_risport(runner, config)
        await runner.aclose()
        spec = runner.specs["risport"]
        registry = CollectorRegistry()
        registry.register(Fixed(target_families([run], [], Freshness({}))))
        texts += [
            generate_latest(registry).decode(),
            "\n".join(spec.describe_run(run)),
            spec.summarize_run(run),
            repr(run),
            repr(config),
            config.model_dump_json(),
        ]
        clock.now += 60
    texts.append(caplog.text)
    for text in texts:
        assert LAB_RISPORT_PASSWORD not in text


async def test_the_probe_is_skipped_where_the_cluster_does_not_use_risport(lab: Lab) -> None:
    from exporter.probes import targets

    assert not [
        j for j in targets(risport_config(lab, "snmp"), BUILTIN_PROBES) if j.spec.name == "risport"
    ]
    jobs = [j.key for j in targets(risport_config(lab, "risport"), BUILTIN_PROBES)]
    assert ("lab", "cucm-pub", "risport") in jobs
    assert ("lab", "cucm-sub1", "risport") not in jobs  # one node answers for the cluster
    assert not [key for key in jobs if key[2] == "snmp"]
    await asyncio.sleep(0)


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "problem"),
    [
        ("inventory: risport", "clusters[0]: inventory risport needs risport"),
        ("{inventory: both, risport: {username: u}}", "clusters[0].risport: set password or"),
        (
            "{risport: {username: u, password: p, password_file: f}}",
            "clusters[0].risport.password_file: cannot read",
        ),
        ("{risport: {username: u, password: p, node: nope}}", "is not a node of this cluster"),
        ("{inventory: sometimes}", "clusters[0].inventory: Input should be"),
    ],
)
def test_config_errors_name_the_field(cluster: str, problem: str, tmp_path: Path) -> None:
    from exporter.config import ConfigError

    if cluster.startswith("inventory"):
        cluster = "{" + cluster + "}"
    merged = cluster[:-1] + ", name: c, nodes: [{name: n, host: h}]}"
    with pytest.raises(ConfigError) as raised:
        parse_config(f"clusters: [{merged}]", base_dir=tmp_path)
    assert any(problem in line for line in raised.value.problems), raised.value.problems


def test_the_password_comes_inline_from_the_environment_or_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIS_PW", "from-env-91")
    (tmp_path / "pw").write_text("from-file-37\n")
    for given, expected in (
        ("password: inline-55", "inline-55"),
        ("password: '${RIS_PW}'", "from-env-91"),
        ("password_file: pw", "from-file-37"),
    ):
        config = parse_config(
            "clusters: [{name: c, inventory: risport, risport: {username: u, "
            + given
            + "}, nodes: [{name: n, host: h}]}]",
            base_dir=tmp_path,
        )
        risport = config.clusters[0].risport
        assert risport is not None
        assert risport.password_value.get_secret_value() == expected
        assert expected not in repr(config)
        assert expected not in config.model_dump_json()


# --- check names the source ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("inventory", "sources", "line"),
    [
        ("snmp", [{"source": "snmp", "role": "primary"}], "phone inventory from snmp"),
        ("risport", [{"source": "risport", "role": "primary"}], "phone inventory from risport"),
        (
            "both",
            [{"source": "risport", "role": "primary"}, {"source": "snmp", "role": "cross_check"}],
            "phone inventory from risport, cross-checked with snmp",
        ),
    ],
)
def test_check_names_the_inventory_source_in_json_and_text(
    lab: Lab,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
    inventory: str,
    sources: list[dict[str, str]],
    line: str,
) -> None:
    import jsonschema

    from exporter.check import run_check
    from tests.test_check import SCHEMA

    config = risport_config(lab, inventory)
    for output_format in ("json", "text"):
        specs = specs_with(RisportProbe(BudgetBook(clock), sleep=clock.sleep))
        run_check(config, output_format=output_format, specs=specs)
        printed = capsys.readouterr().out
        if output_format == "json":
            report = json.loads(printed)
            jsonschema.validate(report, SCHEMA)
            cluster = report["clusters"][0]
            assert cluster["inventory_setting"] == inventory
            assert cluster["inventory_sources"] == sources
            assert line in cluster["inventory"]
        else:
            assert f"  - {line}\n" in printed


def test_check_says_so_when_no_inventory_source_had_rows(lab: Lab) -> None:
    from exporter.report import build_report

    report = build_report(risport_config(lab, "risport"), [], load_catalogue(()))
    cluster = report.clusters[0]
    assert cluster.inventory_setting == "risport"
    assert cluster.inventory_sources == ()
    assert cluster.inventory == (
        "no phone inventory this run (the cluster's inventory setting: risport)",
    )
