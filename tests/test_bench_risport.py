"""bench/risport's summary: the RisPort70 walk's ratios against each SNMP side, from medians."""

from __future__ import annotations

import pytest

from bench.risport.run import (
    NETSNMP,
    RISPORT,
    RISPORT_COLD,
    SNMP,
    Sample,
    ratios_per_run,
    summarize,
)


def sample(run: int, side: str, wall: float, cpu: float, requests: int, out: int) -> Sample:
    return Sample(run, side, wall, cpu, requests, out, 100, 0.5)


SAMPLES = [
    *(sample(run, RISPORT, 4.0 + run, 2.0, 21, 30_000_000) for run in (1, 2, 3)),
    *(sample(run, RISPORT_COLD, 5.0 + run, 2.5, 21, 30_000_000) for run in (1, 2, 3)),
    *(sample(run, SNMP, 10.0, 8.0, 4005, 3_000_000) for run in (1, 2, 3)),
    *(sample(run, NETSNMP, 8.0, 0.4, 16007, 3_500_000) for run in (1, 2, 3)),
]


def test_the_rows_are_medians_in_a_fixed_order_with_ratios_for_risport_only() -> None:
    rows = {row.side: row for row in summarize(SAMPLES[::-1])}
    assert list(rows) == [RISPORT, RISPORT_COLD, SNMP, NETSNMP]
    warm = rows[RISPORT]
    assert warm.wall_seconds == 6.0  # the median of 5, 6, 7
    assert warm.wall_vs_snmp == pytest.approx(0.6)
    assert warm.cpu_vs_snmp == pytest.approx(0.25)
    assert warm.wall_vs_netsnmp == pytest.approx(0.75)
    assert warm.cpu_vs_netsnmp == pytest.approx(5.0)
    assert rows[RISPORT_COLD].wall_vs_snmp == pytest.approx(0.7)
    assert rows[SNMP].wall_vs_snmp is None
    assert rows[NETSNMP].cpu_vs_netsnmp is None


def test_each_runs_ratios_are_kept_for_the_warm_walk() -> None:
    ratios = ratios_per_run(SAMPLES)
    assert ratios[f"wall_seconds vs {SNMP}"] == [0.5, 0.6, 0.7]
    assert ratios[f"requests vs {NETSNMP}"] == [round(21 / 16007, 3)] * 3
    assert ratios[f"bytes_out vs {SNMP}"] == [10.0] * 3
    assert not any(RISPORT_COLD in name for name in ratios)


def test_without_an_snmp_side_there_is_no_ratio() -> None:
    rows = summarize([s for s in SAMPLES if s.side in (RISPORT, RISPORT_COLD)])
    assert all(row.wall_vs_snmp is None and row.cpu_vs_netsnmp is None for row in rows)
