"""`cucm-directory-exporter check`: the change-window report against the lab in each state."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

import exporter
from exporter.cli import main
from exporter.config import ExporterConfig, load_config
from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.snmp import AgentFault
from exporter.lab.tls import PortFault
from exporter.metrics.collector import CucmCollector
from exporter.probes import ProbeRunner
from exporter.state import ExporterState
from exporter.store import ResultStore
from tests.conftest import run_exporter

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "check-report.schema.json").read_text()
)


@pytest.fixture(scope="module")
def check_lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as lab:
        yield lab


# The lab's mix has one model no catalogue knows (a Webex Desk Pro): an operator who wants an
# all-clear declares it, as the README says. Without this entry no verdict is complete.
DECLARED = {
    "family": "RoomOS",
    "match": "^Webex Desk Pro$",
    "max_tls": "1.2",
    "source": "declared by the operator (RoomOS 11 speaks TLS 1.2)",
}


def write_config(lab: Lab, path: Path, *, declare: bool = True, snmp: bool = True) -> Path:
    document = lab.exporter_config(interval=10, timeout=8)
    if declare:
        document["catalogue"] = [DECLARED]
    if not snmp:  # the README's smallest config: no inventory source at all
        for cluster in document["clusters"]:
            del cluster["snmp"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def config_file(check_lab: Lab, tmp_path: Path) -> Iterator[Path]:
    yield write_config(check_lab, tmp_path / "check.yml")
    check_lab.set_directory_fault("cucm-pub", DirectoryFault.NONE)
    for node in ("cucm-pub", "cucm-sub1"):
        check_lab.set_snmp_fault(node, AgentFault.NONE)
        check_lab.set_port_fault(node, 2445, PortFault.NONE)
        if check_lab.node(node).min_version != "1.0":
            check_lab.set_tls_policy(node, "1.0", "1.2")


def check_json(
    config_file: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--config.file", str(config_file), "--format", "json", *extra])
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)  # the documented schema is the real one
    assert report["exit_code"] == code
    return code, report


def node_of(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in report["clusters"][0]["nodes"] if n["name"] == name)


def test_all_fine(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_json(config_file, capsys)
    cluster = report["clusters"][0]
    assert code == 0
    assert (cluster["at_risk"], cluster["nodes_agree"]) == (0, True)
    assert (cluster["complete"], cluster["not_judged"], report["complete"]) == (True, 0, True)
    assert cluster["verdict"] == [
        "Nothing at risk: every registered phone can reach the HTTPS directory."
    ]
    pub = node_of(report, "cucm-pub")
    assert pub["required_tls"] == "1.0"
    assert [p["accepted"] for p in pub["ports"]] == [["1.0", "1.1", "1.2"]] * 2
    assert {r["route"]: r["result"] for r in pub["routes"]} == {
        "http": "ok",
        "https": "ok",
        "https_legacy": "ok",
    }
    assert pub["http_route_works"] is True
    models = {p["model"]: p for p in pub["phones"]}
    assert models["Cisco 7962"] == {
        "model": "Cisco 7962",
        "max_tls": "1.0",
        "registered": 8,
        "at_risk": 0,
        "at_risk_if_assumed": None,
        "not_judged": 0,
        "no_directory": 0,
    }


def test_minimum_raised_with_legacy_phones_registered(
    check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_lab.set_tls_policy("cucm-pub", "1.2")
    check_lab.set_tls_policy("cucm-sub1", "1.2")
    code, report = check_json(config_file, capsys)
    cluster = report["clusters"][0]
    assert code == 1
    assert cluster["at_risk"] == 46  # 23 legacy phones on each node
    assert cluster["nodes_agree"] is True
    verdict = "\n".join(cluster["verdict"])
    assert "46 registered phones cannot use the HTTPS directory now" in verdict
    assert "Option 1, replace them: Cisco 7962 x16, Cisco 7942 x8, Cisco 6921 x6" in verdict
    assert (
        "http://cucm-pub.lab.test:8080/ccmcip/xmldirectoryinput.jsp, subscribed by the legacy "
        "phones of cucm-pub; it works end to end and stays on HTTP." in verdict
    )
    assert "Option 3, revert: `set tls min-version 1.0` on every node" in verdict
    legacy = {r["route"]: r for r in node_of(report, "cucm-pub")["routes"]}["https_legacy"]
    assert (legacy["result"], legacy["failed_step"]) == ("tls_version_rejected", "tvs")


def test_nodes_disagreeing(
    check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_lab.set_tls_policy("cucm-sub1", "1.2")
    code, report = check_json(config_file, capsys)
    cluster = report["clusters"][0]
    assert code == 1
    assert cluster["nodes_agree"] is False
    assert cluster["at_risk"] == 23
    assert cluster["verdict"][0].startswith(
        "The nodes disagree (cucm-pub requires TLS 1.0, cucm-sub1 requires TLS 1.2)"
    )


def test_http_route_broken(
    check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_lab.set_directory_fault("cucm-pub", DirectoryFault.NEXT_HOP_HTTPS)
    code, report = check_json(config_file, capsys)
    assert code == 1  # no phone at risk, but the workaround is broken
    assert report["clusters"][0]["at_risk"] == 0
    pub = node_of(report, "cucm-pub")
    assert pub["http_route_works"] is False
    assert any(
        line.startswith("cucm-pub: the http directory route fails (next_hop_not_http at input)")
        for line in report["clusters"][0]["verdict"]
    )


def test_what_if(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_json(config_file, capsys, "--assume-min-version", "1.2")
    cluster = report["clusters"][0]
    assert code == 1  # nothing is at risk today, but it would be
    assert (cluster["at_risk"], cluster["at_risk_if_assumed"]) == (0, 46)
    assert report["assumed_min_version"] == "1.2"
    assert (
        "46 registered phones would lose the directory if every node required TLS 1.2"
        in (cluster["verdict"][0])
    )
    code, report = check_json(config_file, capsys, "--assume-min-version", "1.0")
    assert code == 0
    assert report["clusters"][0]["verdict"] == [
        "Requiring TLS 1.0 everywhere would cut no registered phone off the directory."
    ]


def test_text_report(check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_lab.set_tls_policy("cucm-pub", "1.2")
    assert main(["check", "--config.file", str(config_file)]) == 1
    text = capsys.readouterr().out
    for heading in ("Cluster lab", "TLS versions accepted", "Corporate directory routes",
                    "Registered phones", "Verdict"):  # fmt: skip
        assert heading in text
    assert "tls_version_rejected" in text
    assert "23 registered phones cannot use the HTTPS directory now" in text


def test_bad_config_and_usage_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("clusters: []\n")

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return run_exporter("check", *args)

    config = check("--config.file", str(bad))
    assert config.returncode == 2
    assert config.stderr.splitlines() == [
        f"error: {bad}: the configuration is not valid:",
        "  clusters: Tuple should have at least 1 item after validation, not 0",
    ]
    usage = check("--assume-min-version", "2.0")
    assert usage.returncode == 2
    assert "argument --assume-min-version: invalid choice: '2.0'" in usage.stderr
    assert "Traceback" not in config.stderr + usage.stderr


# --- completeness: never an all-clear without the facts for it ---------------------------


def missing_facts(report: dict[str, Any]) -> dict[str, list[str]]:
    return {
        node["name"]: [m["fact"] for m in node["missing"]]
        for node in report["clusters"][0]["nodes"]
    }


def test_report_says_when_and_by_what(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report = check_json(config_file, capsys)
    assert report["exporter_version"] == exporter.__version__
    made = datetime.fromisoformat(report["generated_at"])
    assert made.tzinfo is not None
    assert abs((datetime.now(UTC) - made).total_seconds()) < 300


def test_no_inventory_configured_is_not_an_all_clear(
    check_lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(check_lab, tmp_path / "no-snmp.yml", snmp=False)
    code, report = check_json(config, capsys)
    cluster = report["clusters"][0]
    assert code == 3
    assert (report["complete"], cluster["complete"], cluster["at_risk"]) == (False, False, 0)
    assert missing_facts(report) == {
        "cucm-pub": ["inventory_not_configured"],
        "cucm-sub1": ["inventory_not_configured"],
    }
    verdict = "\n".join(cluster["verdict"])
    assert "Nothing at risk" not in verdict
    assert "cannot say that nothing is at risk" in verdict
    # The what-if cannot count phones it has no inventory of either.
    code, report = check_json(config, capsys, "--assume-min-version", "1.2")
    assert code == 3
    verdict = "\n".join(report["clusters"][0]["verdict"])
    assert "would cut no registered phone" not in verdict
    assert "could not be fully judged" in verdict


def test_silent_snmp_agents_are_not_an_all_clear(
    check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for node in ("cucm-pub", "cucm-sub1"):
        check_lab.set_snmp_fault(node, AgentFault.SILENT)
    code, report = check_json(config_file, capsys, "--assume-min-version", "1.2")
    assert code == 3
    assert missing_facts(report) == {
        "cucm-pub": ["inventory_failed"],
        "cucm-sub1": ["inventory_failed"],
    }
    pub = node_of(report, "cucm-pub")
    assert pub["missing"][0]["reason"] == "snmp: timeout"
    assert report["clusters"][0]["at_risk_if_assumed"] == 0  # nothing counted, nothing claimed


def test_unreachable_tvs_leaves_the_risk_unjudged_but_the_what_if_answers(
    check_lab: Lab, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for node in ("cucm-pub", "cucm-sub1"):
        check_lab.set_port_fault(node, 2445, PortFault.STALL)
    code, report = check_json(config_file, capsys)
    cluster = report["clusters"][0]
    assert code == 3
    assert missing_facts(report) == {
        "cucm-pub": ["tls_policy_unknown"],
        "cucm-sub1": ["tls_policy_unknown"],
    }
    # Every registered phone with a TVS/ccmcip directory is unjudged; devices without one are
    # never at risk and counted apart.
    assert cluster["at_risk"] == 0
    assert cluster["not_judged"] + cluster["no_directory"] == 2 * 37
    assert cluster["not_judged"] > 0
    # The what-if replaces the node's minimum, so it needs no reading of today's.
    code, report = check_json(config_file, capsys, "--assume-min-version", "1.2")
    assert code == 1
    assert report["clusters"][0]["at_risk_if_assumed"] == 46


def test_a_model_without_a_catalogue_entry_is_named_and_not_judged(
    check_lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(check_lab, tmp_path / "undeclared.yml", declare=False)
    code, report = check_json(config, capsys)
    assert code == 3
    assert missing_facts(report)["cucm-pub"] == ["capability_unknown"]
    desk = {p["model"]: p for p in node_of(report, "cucm-pub")["phones"]}["Cisco Webex Desk Pro"]
    assert (desk["max_tls"], desk["registered"], desk["not_judged"]) == ("unknown", 1, 1)
    assert any(
        line.startswith("cucm-pub: not judged: Cisco Webex Desk Pro (max TLS unknown) x1")
        for line in report["clusters"][0]["verdict"]
    )


def test_incomplete_text_report(
    check_lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(check_lab, tmp_path / "no-snmp.yml", snmp=False)
    assert main(["check", "--config.file", str(config)]) == 3
    text = capsys.readouterr().out
    assert "Incomplete: some facts are missing" in text
    assert "not judged (inventory_not_configured)" in text
    assert "Nothing at risk" not in text


def test_exit_codes_are_in_the_help() -> None:
    done = run_exporter("check", "--help")
    assert done.returncode == 0
    for line in ("0  every fact was there", "1  phones at risk", "2  bad configuration",
                 "3  nothing at risk among what could be judged"):  # fmt: skip
        assert line in done.stdout


# --- the what-if per node, and TLS 1.3 ---------------------------------------------------


def test_what_if_for_one_node(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_json(config_file, capsys, "--assume-min-version", "cucm-pub=1.2")
    cluster = report["clusters"][0]
    assert code == 1
    assert (report["assumed_min_version"], report["assumed_node_min_versions"]) == (
        None,
        {"cucm-pub": "1.2"},
    )
    assert cluster["at_risk_if_assumed"] == 23
    assert sum(p["at_risk_if_assumed"] for p in node_of(report, "cucm-sub1")["phones"]) == 0
    assert "23 registered phones would lose the directory if cucm-pub required TLS 1.2" in (
        "\n".join(cluster["verdict"])
    )
    # A node's own entry beats the one for every node.
    code, report = check_json(
        config_file, capsys, "--assume-min-version", "1.2", "--assume-min-version", "cucm-sub1=1.0"
    )
    assert report["clusters"][0]["at_risk_if_assumed"] == 23
    assert sum(p["at_risk_if_assumed"] for p in node_of(report, "cucm-pub")["phones"]) == 23


def test_what_if_names_an_unknown_node(tmp_path: Path, check_lab: Lab) -> None:
    config = write_config(check_lab, tmp_path / "c.yml")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "check",
            "--config.file",
            str(config),
            "--assume-min-version",
            "cucm-nope=1.2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no configured node named 'cucm-nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_what_if_tls_1_3_cuts_off_the_tls_1_2_phones(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check_json(config_file, capsys, "--assume-min-version", "1.3")
    assert code == 1
    lines = {(p["model"], p["max_tls"]): p for p in node_of(report, "cucm-pub")["phones"]}
    for model in ("Cisco 7841", "Cisco 8845"):  # 78xx and 88xx on TLS 1.2 firmware
        line = lines[(model, "1.2")]
        assert line["at_risk_if_assumed"] == line["registered"] > 0


# --- one computation: text, JSON, /metrics and the what-if agree ------------------------


def test_a_model_on_two_firmware_levels_is_counted_once_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Lab(restart_downtime=0.0) as lab:
        # The mix has one 8851 on 10.3 (TLS 1.0); four more on 14.1 speak TLS 1.2.
        lab.add_phones("cucm-pub", "Cisco 8851", "sip88xx.14-1-1-0001-125", 4)
        config = write_config(lab, tmp_path / "firmware.yml")
        _, what_if = check_json(config, capsys, "--assume-min-version", "cucm-pub=1.2")
        lab.set_tls_policy("cucm-pub", "1.2")
        _, report = check_json(config, capsys)
        assert main(["check", "--config.file", str(config)]) == 1
        text = capsys.readouterr().out
        metrics = metrics_at_risk(load_config(config), lab)

    lines = {(p["model"], p["max_tls"]): p for p in node_of(report, "cucm-pub")["phones"]}
    old, new = lines[("Cisco 8851", "1.0")], lines[("Cisco 8851", "1.2")]
    assert (old["registered"], old["at_risk"], new["registered"], new["at_risk"]) == (1, 1, 4, 0)
    json_total = report["clusters"][0]["at_risk"]
    assert json_total == sum(p["at_risk"] for p in node_of(report, "cucm-pub")["phones"]) == 23
    assert f"{json_total} registered phones cannot use the HTTPS directory now" in text
    assert metrics == {"Cisco 8851": 1.0, "total": 23.0}
    assert what_if["clusters"][0]["at_risk_if_assumed"] == json_total


def metrics_at_risk(config: ExporterConfig, lab: Lab) -> dict[str, float]:
    """What /metrics says for the publisher, from one round of real probes."""

    async def collect() -> dict[str, float]:
        store = ResultStore()
        runner = ProbeRunner()
        try:
            for cluster in config.clusters:
                for node in cluster.nodes:
                    for probe in ("tls", "snmp"):
                        store.put(await runner.run(config, cluster, node, probe))
        finally:
            await runner.aclose()
        registry = CollectorRegistry()
        registry.register(CucmCollector(store, ExporterState(config, time.time())))
        samples = [
            s
            for family in registry.collect()
            if family.name == "cucm_phones_directory_at_risk"
            for s in family.samples
            if s.labels["node"] == "cucm-pub"
        ]
        by_model = {s.labels["model"]: s.value for s in samples}
        return {"Cisco 8851": by_model["Cisco 8851"], "total": sum(by_model.values())}

    return asyncio.run(collect())


def test_piped_text_keeps_its_lines_and_says_each_node(check_lab: Lab, config_file: Path) -> None:
    check_lab.set_tls_policy("cucm-pub", "1.2")
    done = run_exporter(
        "check",
        "--config.file",
        str(config_file),
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"},
    )
    assert done.returncode == 1
    verdict = done.stdout.split("Verdict\n", 1)[1].splitlines()
    option_2 = [line for line in verdict if "Option 2, the HTTP directory" in line]
    assert len(option_2) == 1
    assert option_2[0].startswith("  - Option 2")
    assert option_2[0].rstrip().endswith("it works end to end and stays on HTTP.")
    assert all(line.startswith("  - ") for line in verdict if line.strip())
    progress = sorted(line.split(":")[0] for line in done.stderr.splitlines() if "probed" in line)
    assert progress == ["probed lab/cucm-pub", "probed lab/cucm-sub1"]
