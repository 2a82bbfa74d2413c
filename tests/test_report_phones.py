"""The `check --phones` rows from verdicts (pure): which phones, `when`, and the two formats."""

from __future__ import annotations

import csv
import io
import json

from exporter.impact import Basis, Missing, PhoneVerdict, Verdict
from exporter.report.phones import COLUMNS, phone_lines, render_phones
from exporter.results import TlsVersion


def verdict(
    name: str, judged: Verdict, *, node: str = "pub", basis: Basis = Basis.CONFIG
) -> PhoneVerdict:
    return PhoneVerdict(
        node=node,
        name=name,
        model="Cisco 7962",
        firmware="SCCP42.9-4-2SR3-1S",
        max_tls="1.0",
        verdict=judged,
        missing=Missing.CAPABILITY_UNKNOWN if judged is Verdict.UNKNOWN else None,
        basis=basis,
        reason="ok" if basis is Basis.CONFIG else "not_read",
        required=TlsVersion.TLS1_2,
    )


def test_broken_now_first_then_only_the_what_if_adds() -> None:
    now = [
        verdict("SEP2", Verdict.AT_RISK),
        verdict("SEP1", Verdict.FINE),
        verdict("SEP3", Verdict.COVERED),
        verdict("SEP4", Verdict.UNKNOWN),
    ]
    then = [
        verdict("SEP2", Verdict.AT_RISK),
        verdict("SEP1", Verdict.AT_RISK),
        verdict("SEP3", Verdict.COVERED),
        verdict("SEP4", Verdict.UNKNOWN),
    ]
    lines = phone_lines("lab", now, then)
    assert [(line.name, line.when) for line in lines] == [("SEP1", "what-if"), ("SEP2", "now")]
    assert lines[0].reason.startswith("speaks at most TLS 1.0; in the what-if: ")
    assert [line.name for line in phone_lines("lab", now, None)] == ["SEP2"]


def test_an_inferred_row_names_the_node_and_why_no_file_was_read() -> None:
    (line,) = phone_lines("lab", [verdict("SEP1", Verdict.AT_RISK, basis=Basis.INFERENCE)], None)
    assert line.basis == "inference"
    assert "registered to pub, whose TVS/Tomcat require TLS 1.2" in line.reason
    assert "not_read" in line.reason


def test_csv_and_json_carry_the_same_rows() -> None:
    lines = phone_lines("lab", [verdict("SEP1", Verdict.AT_RISK)], None)
    table = list(csv.reader(io.StringIO(render_phones(lines, "csv"))))
    assert tuple(table[0]) == COLUMNS
    objects = json.loads(render_phones(lines, "json"))
    assert [dict(zip(COLUMNS, row, strict=True)) for row in table[1:]] == objects
    assert render_phones([], "csv") == ",".join(COLUMNS) + "\r\n"
    assert json.loads(render_phones([], "json")) == []
