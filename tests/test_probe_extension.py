"""A probe is a local change: one registered through the public interface alone shows up on
every surface (/metrics, /probe, the landing page, check) without an edit anywhere else."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from exporter.catalogue import load_catalogue
from exporter.check import probe_everything
from exporter.config import ExporterConfig, ScheduledProbeConfig, parse_config
from exporter.daemon import Daemon, Serving
from exporter.probes import BUILTIN_PROBES, OnDemand, ProbeRunner, ProbeSpec, Target
from exporter.report import build_report, render_text
from exporter.server import ListenAddress
from exporter.timing import Deadline
from exporter.webconfig import WebConfig

# Only the new probe runs: the built-in ones are switched off, so nothing leaves loopback.
CONFIG = """
# Probes on demand afresh, and ad hoc hosts too (the defaults: tests/test_probe_policy.py).
probe_endpoint: {allow_adhoc_targets: true, min_interval: 0}
probes:
  tls: {enabled: false}
  directory: {enabled: false}
  snmp: {enabled: false}
clusters:
  - name: c
    nodes:
      - {name: n1, host: 127.0.0.1}
      - {name: n2, host: 127.0.0.2}
"""


@dataclass(frozen=True)
class Heartbeat:
    """The new probe's own frozen result."""

    host: str
    beats: int

    @property
    def success(self) -> bool:
        return self.beats > 0

    @property
    def reason(self) -> str:
        return "ok" if self.success else "silent"


class HeartbeatProbe:
    """A probe with state of its own, built per runner, told which nodes remain."""

    def __init__(self) -> None:
        self.beats: dict[tuple[str, str], int] = {}
        self.retained: list[set[tuple[str, str]]] = []

    async def run(self, target: Target, deadline: Deadline) -> Heartbeat:
        key = (target.cluster.name, target.node.name)
        self.beats[key] = self.beats.get(key, 0) + 1
        return Heartbeat(target.node.host, self.beats[key])

    def retain(self, nodes: Collection[tuple[str, str]]) -> None:
        self.retained.append(set(nodes))
        self.beats = {key: n for key, n in self.beats.items() if key in nodes}

    async def aclose(self) -> None:
        pass


def describe(result: Heartbeat) -> Iterable[str]:
    yield f"heartbeat {result.host}: {result.beats} beats"


HEARTBEAT = ProbeSpec(
    name="heartbeat",
    settings=lambda config: ScheduledProbeConfig(interval=0.5, timeout=0.4, jitter=0.1),
    build=HeartbeatProbe,
    applies_to=lambda cluster, node: node.host != "127.0.0.2",
    needs="a loopback address",
    on_demand=OnDemand(adhoc=True),
    describe=describe,
    summarize=lambda result: f"{result.beats} beats",
)
SPECS = (*BUILTIN_PROBES, HEARTBEAT)


def config() -> ExporterConfig:
    return parse_config(CONFIG, base_dir=Path.cwd())


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[str]:
    config_file = tmp_path / "config.yml"
    config_file.write_text(CONFIG)
    serving = Serving(ListenAddress("127.0.0.1", 0), "/metrics", None)
    running = Daemon(config(), config_file, serving, WebConfig(), SPECS)
    await running.start()
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        await running.stop()


async def _metrics_once_probed(session: aiohttp.ClientSession, base: str) -> str:
    wanted = 'cucm_probe_success{cluster="c",node="n1",probe="heartbeat"} 1.0'
    async with asyncio.timeout(20):
        while True:
            async with session.get(f"{base}/metrics") as response:
                text = await response.text()
            if wanted in text:
                return text
            await asyncio.sleep(0.2)


async def test_a_new_probe_is_scheduled_and_exposed(daemon: str) -> None:
    async with aiohttp.ClientSession() as session:
        text = await _metrics_once_probed(session, daemon)
        # It applies to n1 only, as its spec says; its skip counter starts at zero.
        assert 'node="n2",probe="heartbeat"' not in text
        assert 'cucm_exporter_probe_runs_skipped_total{probe="heartbeat"} 0.0' in text
        assert "refreshed by the scheduled probe" in text

        async with session.get(f"{daemon}/") as response:
            page = await response.text()
        assert "<td>heartbeat</td>" in page
        assert " beats</td>" in page  # the spec's one-line summary of its result

        params = {"target": "n1", "module": "heartbeat", "debug": "true"}
        async with session.get(f"{daemon}/probe", params=params) as response:
            assert response.status == 200
            debug = await response.text()
        assert "heartbeat 127.0.0.1: 1 beats" in debug  # its own runner: its first beat
        assert 'cucm_probe_success{cluster="c",node="n1",probe="heartbeat"} 1.0' in debug

        # An ad hoc host takes it (its spec says so); a node it does not apply to does not.
        params = {"target": "127.0.0.9", "module": "heartbeat"}
        async with session.get(f"{daemon}/probe", params=params) as response:
            assert response.status == 200
            assert 'node="127.0.0.9",probe="heartbeat"' in await response.text()
        async with session.get(
            f"{daemon}/probe", params={"target": "n2", "module": "heartbeat"}
        ) as response:
            assert response.status == 400
            assert "module heartbeat needs a loopback address" in await response.text()


async def test_a_new_probe_is_in_the_check_report() -> None:
    cfg = config()
    runs = await probe_everything(cfg, SPECS, show_progress=False)
    assert [(r.node, r.probe, r.success) for r in runs] == [("n1", "heartbeat", True)]
    report = build_report(cfg, runs, load_catalogue(()), None, SPECS)
    (node, other) = report.clusters[0].nodes
    assert [(p.probe, p.reason, p.lines) for p in node.probes] == [
        ("heartbeat", "ok", ("heartbeat 127.0.0.1: 1 beats",))
    ]
    assert other.probes == ()
    out = io.StringIO()
    render_text(report, Console(file=out, width=200))
    assert "heartbeat" in out.getvalue()


async def test_a_reload_tells_the_probe_which_nodes_remain() -> None:
    built: list[HeartbeatProbe] = []

    def build() -> HeartbeatProbe:
        built.append(HeartbeatProbe())
        return built[-1]

    runner = ProbeRunner([dataclasses.replace(HEARTBEAT, build=build)])
    (probe,) = built  # one probe per runner, built with it
    cfg = config()
    await runner.run(cfg, cfg.clusters[0], cfg.clusters[0].nodes[0], "heartbeat")
    one_node = parse_config(
        CONFIG.replace("      - {name: n1, host: 127.0.0.1}\n", ""), base_dir=Path.cwd()
    )
    runner.retain(one_node)
    runner.retain(cfg)
    assert probe.retained == [set(), {("c", "n1")}]
    assert probe.beats == {}  # n1's count went with the reload that removed it
