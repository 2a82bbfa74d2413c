"""Hostile and broken peers: every probe ends classified within its deadline, memory stays
bounded, and the daemon keeps answering scrapes while it probes them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.lab.snmp import AgentFault
from exporter.lab.tls import PortFault
from exporter.probes.directory import probe_directory
from exporter.results import DirectoryOutcome
from exporter.timing import Deadline
from tests.conftest import get_text, start_daemon, stop_process
from tests.test_daemon import wait_for
from tests.test_directory_probe import config_of

INTERVAL, TIMEOUT = 3.0, 2.0
MARGIN = 1.0  # the probe's own deadline plus a little for the event loop and the guard


@pytest.fixture(scope="module")
def hostile_lab() -> Iterator[Lab]:
    with Lab({"hostile": ("a", "b")}, restart_downtime=0.0) as lab:
        lab.set_port_fault("a", 2445, PortFault.STALL)  # accepts TCP, never speaks
        lab.set_port_fault("a", 8443, PortFault.GARBAGE)  # not TLS
        lab.set_directory_fault("a", DirectoryFault.TRICKLE)  # a byte every 0.1 s
        lab.set_snmp_fault("a", AgentFault.SILENT)
        lab.set_port_fault("b", 2445, PortFault.RESET)
        lab.set_directory_fault("b", DirectoryFault.OVERSIZED)  # 100 MiB
        lab.set_snmp_fault("b", AgentFault.GARBAGE)
        yield lab


async def test_a_trickled_page_times_out_within_the_deadline(hostile_lab: Lab) -> None:
    config = config_of(hostile_lab, routes=["http"], request_timeout="1s", timeout="2s")
    node = next(n for n in config.clusters[0].nodes if n.name == "a")
    started = time.monotonic()
    result = await probe_directory(node, config.probes.directory, Deadline.after(2.0))
    elapsed = time.monotonic() - started
    assert result.routes[0].outcome is DirectoryOutcome.TIMEOUT
    assert elapsed < 2.0 + MARGIN


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
    assert match
    return int(match[1])


def test_the_daemon_keeps_serving_while_its_peers_misbehave(
    hostile_lab: Lab, tmp_path: Path
) -> None:
    config = hostile_lab.write_exporter_config(
        tmp_path / "hostile.yml", interval=INTERVAL, timeout=TIMEOUT
    )
    process, port = start_daemon(config, tmp_path / "daemon.log")
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: get_text(metrics) is not None, 15, "the daemon")
        # Scrape all through two rounds of probing: every scrape must be answered promptly
        # (a 2 s client timeout) however long the probes of broken peers take.
        deadline = time.monotonic() + 2 * INTERVAL + TIMEOUT
        scrapes = 0
        while time.monotonic() < deadline:
            assert get_text(metrics, timeout=2.0) is not None, "a scrape failed while probing"
            scrapes += 1
            time.sleep(0.1)
        assert scrapes > 20
        text = get_text(metrics)
        assert text is not None
        runs = _probe_runs(text)
        assert {(node, probe) for node, probe, _, _ in runs} == {
            (node, probe) for node in ("a", "b") for probe in ("tls", "directory", "snmp")
        }
        for node, probe, success, duration in runs:
            assert duration < TIMEOUT + MARGIN, f"{node}/{probe} took {duration:.2f}s"
            if probe != "directory":  # the directory probe "succeeds" once the node answered
                assert success == 0.0, f"{node}/{probe} should have failed"
        results = {
            (s.labels["node"], s.labels["route"], s.labels["result"])
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "cucm_directory_result"
        }
        assert ("a", "http", "timeout") in results  # trickled past the deadline
        assert ("b", "http", "bad_content") in results  # larger than max_response_bytes
        assert not any(result == "ok" for _, _, result in results)
        assert "internal_error" not in (tmp_path / "daemon.log").read_text()
        assert "deadline_exceeded" not in (tmp_path / "daemon.log").read_text()
        # 100 MiB offered, 1 MiB read: the daemon stays small.
        assert rss_kib(process.pid) < 200 * 1024
    finally:
        stop_process(process)


def _probe_runs(text: str) -> list[tuple[str, str, float, float]]:
    success: dict[tuple[str, str], float] = {}
    duration: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("node", ""), sample.labels.get("probe", ""))
            if sample.name == "cucm_probe_success":
                success[key] = sample.value
            elif sample.name == "cucm_probe_duration_seconds":
                duration[key] = sample.value
    return [
        (node, probe, success[(node, probe)], duration[(node, probe)]) for node, probe in success
    ]
