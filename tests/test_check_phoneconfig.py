"""`check` with the phoneconfig probe on: the per-phone basis in the report, the what-if on the
same per-phone verdict, and the exit codes issue 13 defined."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.cli import main
from exporter.lab import Lab
from exporter.lab.tftp import DirectoryMode
from tests.test_check import DECLARED, SCHEMA


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


def config_file(lab: Lab, path: Path, *, declare: bool = True) -> Path:
    document = lab.exporter_config(interval=10, timeout=8)
    document["probes"]["phoneconfig"] = {"enabled": True, "interval": "10s", "timeout": "8s"}
    if declare:
        document["catalogue"] = [DECLARED]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    code = main(["check", "--config.file", str(path), "--format", "json", *extra])
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)
    assert report["exit_code"] == code
    return code, report["clusters"][0]


def http_phones(lab: Lab) -> int:
    files = lab.config_files()
    return sum(
        1
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.status == "registered"
        and p.name.startswith("SEP")
        and files.settings(p.name).directory is not DirectoryMode.SECURE
    )


def test_the_report_says_what_each_verdict_rests_on(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(lab, tmp_path / "check.yml")
    code, cluster = check(path, capsys)
    assert code == 0
    basis = {(line["basis"], line["reason"]): line["phones"] for line in cluster["basis"]}
    sep = sum(
        1
        for node in ("cucm-pub", "cucm-sub1")
        for p in lab.phones(node)
        if p.status == "registered" and p.name.startswith("SEP")
    )
    assert basis[("config", "ok")] == sep
    assert cluster["covered"] == http_phones(lab)
    assert any(
        line.startswith(f"Per phone: {sep} registered phones") for line in cluster["verdict"]
    )

    code, cluster = check(path, capsys, "--assume-min-version", "1.2")
    assert code == 1
    assert cluster["at_risk_if_assumed"] > 0
    assert cluster["covered_if_assumed"] == http_phones(lab)
    # Without the phones' files, the same what-if counts the covered phones as at risk.
    document = yaml.safe_load(path.read_text())
    document["probes"]["phoneconfig"]["enabled"] = False
    path.write_text(yaml.safe_dump(document))
    _, inferred = check(path, capsys, "--assume-min-version", "1.2")
    assert inferred["basis"] == [
        {"basis": "inference", "reason": "not_read", "phones": basis_total(cluster)}
    ]
    assert inferred["at_risk_if_assumed"] == cluster["at_risk_if_assumed"] + http_phones(lab)


def basis_total(cluster: Any) -> int:
    return sum(line["phones"] for line in cluster["basis"])


def test_missing_facts_still_exit_3(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, cluster = check(config_file(lab, tmp_path / "check.yml", declare=False), capsys)
    assert code == 3
    assert not cluster["complete"]
