"""`cucm-directory-exporter check`: the change-window report against the lab in each state."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from exporter.cli import main
from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "check-report.schema.json").read_text()
)


@pytest.fixture(scope="module")
def check_lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as lab:
        yield lab


@pytest.fixture
def config_file(check_lab: Lab, tmp_path: Path) -> Iterator[Path]:
    yield check_lab.write_exporter_config(tmp_path / "check.yml", interval=10, timeout=8)
    check_lab.set_directory_fault("cucm-pub", DirectoryFault.NONE)
    for node in ("cucm-pub", "cucm-sub1"):
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
        return subprocess.run(
            [sys.executable, "-m", "exporter", "check", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

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
