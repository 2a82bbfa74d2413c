"""`check --phones csv|json` against the lab: exactly the phones broken now or in the what-if,
one row each, from the verdicts the report counts; on stdout only, never in the logs."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from exporter.catalogue import DirectoryUse, load_catalogue
from exporter.cli import main
from exporter.lab import Lab
from exporter.lab.tftp import DirectoryMode
from exporter.report.phones import COLUMNS
from exporter.results import TlsVersion
from tests.test_check_phoneconfig import config_file

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "docs" / "check-phones.schema.json").read_text()
)

NODES = ("cucm-pub", "cucm-sub1")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.0) as running:
        yield running


def legacy_on_tvs(lab: Lab) -> dict[str, str]:
    """Registered SEP phones that cannot speak TLS 1.2 and use the secure directory (through
    TVS), by the lab's own tables: phone -> the node it is registered to. The lab's files list
    every node of the cluster as TVS, so raising any one node cuts all of them off."""
    catalogue = load_catalogue(())
    files = lab.config_files()
    found = {}
    for node in NODES:
        for phone in lab.phones(node):
            capability = catalogue.lookup(phone.product, phone.active_load)
            if (
                phone.status == "registered"
                and phone.name.startswith("SEP")
                and capability.directory not in (DirectoryUse.NONE, DirectoryUse.OTHER)
                and capability.max_tls is not None
                and capability.cut_off(TlsVersion.TLS1_2)
                and files.settings(phone.name).directory is DirectoryMode.SECURE
            ):
                found[phone.name] = node
    return found


def phones(
    path: Path, capsys: pytest.CaptureFixture[str], output: str, *extra: str
) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["check", "--config.file", str(path), "--phones", output, *extra])
    captured = capsys.readouterr()
    if output == "json":
        rows = json.loads(captured.out)
        jsonschema.validate(rows, SCHEMA)
    else:
        assert captured.out.startswith(",".join(COLUMNS) + "\r\n")
        rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert all(tuple(row) == COLUMNS for row in rows)
    assert tuple(SCHEMA["items"]["required"]) == COLUMNS
    return code, rows, captured.err


def report(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    main(["check", "--config.file", str(path), "--format", "json", *extra])
    return json.loads(capsys.readouterr().out)["clusters"][0]


def test_nothing_broken_is_an_empty_list_and_the_what_if_lists_who_would_be(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(lab, tmp_path / "check.yml")
    code, rows, _ = phones(path, capsys, "json")
    assert (code, rows) == (0, [])

    code, rows, _ = phones(path, capsys, "csv", "--assume-min-version", "cucm-pub=1.2")
    assert code == 1
    expected = legacy_on_tvs(lab)
    assert {row["name"]: row["node"] for row in rows} == expected
    assert {row["when"] for row in rows} == {"what-if"}
    assert {row["basis"] for row in rows} == {"config"}
    assert all(row["cluster"] == "lab" and row["firmware"] and row["reason"] for row in rows)
    # The same verdicts as the report's counts.
    counted = report(path, capsys, "--assume-min-version", "cucm-pub=1.2")
    assert counted["at_risk_if_assumed"] == len(rows)


def test_phones_broken_now_and_those_the_workaround_took_off_the_list(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(lab, tmp_path / "check.yml")
    lab.set_tls_policy("cucm-pub", "1.2")
    subscribed = sorted(legacy_on_tvs(lab))[::2]
    try:
        before = legacy_on_tvs(lab)
        code, rows, _ = phones(path, capsys, "json")
        assert code == 1
        assert {row["name"] for row in rows} == set(before)
        assert {row["when"] for row in rows} == {"now"}
        row = next(r for r in rows if r["model"] == "Cisco 7962")
        assert row["max_tls"] == "1.0"
        assert row["firmware"] == "SCCP42.9-4-2SR3-1S"

        for name in subscribed:
            lab.config_files().configure(name, directory=DirectoryMode.HTTP_SERVICE)
        code, rows, _ = phones(path, capsys, "csv")
        assert code == 1
        assert {row["name"] for row in rows} == set(before) - set(subscribed)
        assert report(path, capsys)["at_risk"] == len(rows)
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")
        for name in subscribed:
            lab.config_files().configure(name, directory=DirectoryMode.SECURE)


def test_without_configuration_files_the_rows_say_they_are_inferred(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(lab, tmp_path / "check.yml")
    text = path.read_text().replace("enabled: true", "enabled: false")
    path.write_text(text)
    code, rows, _ = phones(path, capsys, "json", "--assume-min-version", "cucm-sub1=1.2")
    assert code == 1
    assert rows
    assert {(row["node"], row["basis"], row["when"]) for row in rows} == {
        ("cucm-sub1", "inference", "what-if")
    }
    assert all("TLS 1.2" in row["reason"] and "not_read" in row["reason"] for row in rows)


def test_the_list_never_reaches_the_logs(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = config_file(lab, tmp_path / "check.yml")
    with caplog.at_level(logging.DEBUG):
        _, rows, err = phones(
            path, capsys, "csv", "--assume-min-version", "1.2", "--log.level", "debug"
        )
    assert rows
    logged = err + "\n".join(record.getMessage() for record in caplog.records)
    assert not [row["name"] for row in rows if row["name"] in logged]
