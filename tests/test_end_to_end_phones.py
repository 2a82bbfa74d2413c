"""Issue 16's "done when", end to end: lab (steered through its control API, as in the demo) ->
exporter with the phoneconfig probe -> real Prometheus (bundled rules) -> real Alertmanager
(bundled routing) -> a webhook; then `check --phones csv` against the same lab.

After `lab set-tls cucm-pub 1.2` the paging alert fires for the broken phones only (the phones
on the HTTP workaround are not counted); once the lab subscribes cucm-pub's broken phones to the
HTTP directory service, cucm-pub's alert resolves within two phoneconfig runs while the covered
count rises, and `check --phones csv` lists exactly the phones still broken (cucm-sub1's: their
TVS list names cucm-pub too)."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.lab import Lab
from exporter.lab.cli import main as lab_main
from exporter.lab.cli import start_control
from exporter.lab.tls import unused_port
from tests.stack import Stack
from tests.test_end_to_end import grafana_substitute
from tests.test_grafana import OVERVIEW, load

PAGING = "CucmLegacyPhonesDirectoryAtRisk"
LOST = "CucmPhonesDirectoryCoverageLost"


@contextmanager
def control_api(lab: Lab) -> Iterator[str]:
    """The lab's control API on a loop of its own (its handlers block on the lab's loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lab-control", daemon=True)
    thread.start()
    port = unused_port()
    runner = asyncio.run_coroutine_threadsafe(start_control(lab, "127.0.0.1", port), loop).result(
        30
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def phones_stack(tmp_path: Path) -> Iterator[tuple[Lab, Stack, str]]:
    """A lab and stack of the test's own: the raised node pages after the test (`for:`)."""
    with Lab(restart_downtime=0.2) as lab, control_api(lab) as control:
        running = Stack(lab, tmp_path, phoneconfig=True)
        try:
            yield lab, running, control
        finally:
            running.close()


def value(stack: Stack, expression: str) -> float | None:
    result = stack.query(expression)
    return float(result[0]["value"][1]) if result else None


def by_node(stack: Stack, state: str) -> dict[str, int]:
    query = f'sum by (node) (cucm_phones_directory_state{{cluster="lab",state="{state}"}})'
    return {r["metric"]["node"]: int(float(r["value"][1])) for r in stack.query(query)}


def phones_csv(stack: Stack) -> tuple[int, list[dict[str, str]]]:
    """`check --phones csv` against the stack's lab, with the exporter's configuration but room
    for a whole round: one round must read every phone's file (the daemon's short test timeout
    leaves a file or two to its next run, which a single round has not got)."""
    document = yaml.safe_load(stack.config_file.read_text())
    for probe in document["probes"].values():
        probe.update(interval="30s", timeout="20s")
    config = stack.directory / "check.yml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["check", "--config.file", str(config), "--phones", "csv"])
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {row["basis"] for row in rows} <= {"config"}, rows
    return code, rows


def test_the_alert_pages_for_broken_phones_only_and_resolves_once_they_are_covered(
    phones_stack: tuple[Lab, Stack, str],
) -> None:
    _, stack, control = phones_stack
    # Healthy first, judged from the phones' own files: nothing broken, the lab's out-of-the-box
    # workaround phones (two per node) covered.
    stack.wait_for(
        lambda: (
            value(stack, 'sum(cucm_phones_verdict_basis{basis="config"})') is not None
            and value(stack, "sum(cucm_phones_directory_at_risk)") == 0
            and sum(by_node(stack, "covered").values()) == 4
        ),
        60,
        "a healthy start judged from the configuration files",
    )
    covered_before = by_node(stack, "covered")

    assert lab_main(["set-tls", "cucm-pub", "1.2", "--control", control]) == 0
    stack.wait_for(
        lambda: (
            {a["labels"]["node"] for a in stack.webhook.alerts(PAGING) if a["status"] == "firing"}
            == {"cucm-pub", "cucm-sub1"}
        ),
        60,
        f"{PAGING} for both nodes (cucm-sub1's phones list cucm-pub as a TVS)",
    )
    broken = by_node(stack, "at_risk")
    code, rows = phones_csv(stack)
    assert code == 1
    listed = {row["name"]: row["node"] for row in rows}
    # The page counts the broken phones only: the covered ones on the same node are not in it.
    for node, count in broken.items():
        firing = [
            a
            for a in stack.webhook.alerts(PAGING)
            if a["status"] == "firing" and a["labels"]["node"] == node
        ]
        assert firing[-1]["annotations"]["summary"].startswith(
            f"{count} registered phones on {node} (lab)"
        )
        assert count == sum(1 for at in listed.values() if at == node)
        assert covered_before[node] > 0
    assert by_node(stack, "covered") == covered_before

    # The operator subscribes cucm-pub's broken phones to the HTTP directory service.
    subscribe = sorted(name for name, node in listed.items() if node == "cucm-pub")
    assert subscribe
    changed = time.time()
    command = ["phone-config", *subscribe, "--directory", "http_service", "--control", control]
    assert lab_main(command) == 0
    stack.wait_for(
        lambda: value(stack, 'sum(cucm_phones_directory_at_risk{node="cucm-pub"})') == 0,
        60,
        "cucm-pub's broken phones to be covered",
    )
    # Within two intervals: at most two phoneconfig runs of each TFTP node ended since the
    # change (the one under way may have read the cache list before it).
    window = f"{max(1, int(time.time() - changed) + 1)}s"
    runs = stack.query(
        f'changes(cucm_probe_last_run_timestamp_seconds{{probe="phoneconfig"}}[{window}])'
    )
    assert runs
    assert all(float(r["value"][1]) <= 2 for r in runs), runs
    stack.wait_for(
        lambda: any(
            a["status"] == "resolved" and a["labels"]["node"] == "cucm-pub"
            for a in stack.webhook.alerts(PAGING)
        ),
        60,
        f"{PAGING} to resolve for cucm-pub",
    )
    covered_after = by_node(stack, "covered")
    assert covered_after["cucm-pub"] == covered_before["cucm-pub"] + len(subscribe)
    assert covered_after["cucm-sub1"] == covered_before["cucm-sub1"]
    assert stack.webhook.alerts(LOST) == []  # coverage rose: nothing was lost
    print(f"resolved {time.time() - changed:.1f}s after the subscription")

    # The list to act on: exactly the phones still broken (cucm-sub1's).
    code, rows = phones_csv(stack)
    assert code == 1
    still = {row["name"]: row["node"] for row in rows}
    assert still == {name: node for name, node in listed.items() if node == "cucm-sub1"}
    assert {row["when"] for row in rows} == {"now"}
    assert value(stack, "sum(cucm_phones_directory_at_risk)") == len(still)

    # The dashboard's coverage panel shows the same: broken, covered, fine per node.
    panel = next(p for p in load(OVERVIEW)["panels"] if p["title"].startswith("Coverage per node"))
    shown = {
        target["refId"]: {
            r["metric"]["node"]: int(float(r["value"][1]))
            for r in stack.query(grafana_substitute(target["expr"]))
        }
        for target in panel["targets"]
    }
    assert shown["A"] == {"cucm-pub": 0, "cucm-sub1": len(still)}
    assert shown["B"] == covered_after
    assert shown["C"] == by_node(stack, "fine")
