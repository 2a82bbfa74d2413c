"""A classified outcome that changes is logged once, at info, as fields a log parser can select
on; a repeat is debug. Against the lab: a directory route that breaks while the probe still
"succeeds" (it measured) must not go unsaid."""

from __future__ import annotations

import json
import logging

import pytest

from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.logsetup import formatter
from exporter.scheduler import ProbeScheduler
from exporter.store import ResultStore
from tests.conftest import config_for


def outcome_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "exporter.scheduler" and "outcome" in str(fields_of(r).get("event", ""))
    ]


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    """The fields our structlog loggers hand to the standard library with a record."""
    return dict(record.msg) if isinstance(record.msg, dict) else {}


async def test_a_route_that_breaks_is_logged_once_with_its_fields(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(lab)
    scheduler = ProbeScheduler(ResultStore())
    scheduler.apply(config)
    key = ("lab", "cucm-pub", "directory")
    caplog.set_level(logging.DEBUG, logger="exporter.scheduler")
    try:
        await scheduler.run_once(key)
        await scheduler.run_once(key)
        lab.set_directory_fault("cucm-pub", DirectoryFault.HTTP_500)
        await scheduler.run_once(key)
        await scheduler.run_once(key)
    finally:
        lab.set_directory_fault("cucm-pub", DirectoryFault.NONE)
        await scheduler.stop()

    records = outcome_records(caplog)
    assert [r.levelno for r in records] == [
        logging.INFO,
        logging.DEBUG,
        logging.INFO,
        logging.DEBUG,
    ]
    change = records[2]
    fields = fields_of(change)
    assert (fields["node"], fields["probe"], fields["success"]) == ("cucm-pub", "directory", True)
    assert "http http_error" in str(fields["outcome"])
    assert "http ok" in str(fields["previous"])

    # The formatters print them as fields of their own, not inside msg.
    logfmt = formatter("logfmt").format(change)
    assert logfmt.startswith("ts=20")
    assert ' level=info logger=exporter.scheduler msg="probe outcome changed" ' in logfmt
    assert " node=cucm-pub " in logfmt
    assert " success=true " in logfmt
    as_json = json.loads(formatter("json").format(change))
    assert (as_json["node"], as_json["probe"], as_json["msg"], as_json["success"]) == (
        "cucm-pub",
        "directory",
        "probe outcome changed",
        True,
    )
    assert as_json["ts"].endswith("Z")
