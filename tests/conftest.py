"""Shared fixtures: real lab nodes on loopback, configs pointing at them, promtool."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ExporterConfig, NodeConfig, parse_config
from exporter.lab import Lab
from exporter.lab.risport import LAB_RISPORT_PASSWORD, LAB_RISPORT_USER
from exporter.lab.tls import unused_port


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The default lab cluster (publisher + subscriber), restarting without downtime."""
    with Lab(restart_downtime=0.0) as running:
        yield running


def config_for(lab: Lab, **tls: Any) -> ExporterConfig:
    """The lab's own exporter config, with TLS probe settings overridden by `tls`."""
    data = lab.exporter_config(interval=10.0, timeout=8.0)
    data["probes"]["tls"].update(tls)
    return parse_config(yaml.safe_dump(data), base_dir=Path.cwd())


def node_config(config: ExporterConfig, name: str) -> NodeConfig:
    return next(n for c in config.clusters for n in c.nodes if n.name == name)


def exposed_metrics() -> frozenset[str]:
    """Every family the collector declares (it yields them all on every scrape, even empty),
    and the sample names of its counters."""
    from exporter.metrics.collector import CucmCollector
    from exporter.state import ExporterState
    from exporter.store import ResultStore

    config = parse_config("clusters: [{name: c, nodes: [{name: n, host: h}]}]", base_dir=Path.cwd())
    collector = CucmCollector(ResultStore(), ExporterState(config, 0.0))
    families = list(collector.collect())
    # A counter family is queried by its sample name, with _total.
    counters = {f"{family.name}_total" for family in families if family.type == "counter"}
    return frozenset({family.name for family in families} | counters)


def promtool_check_metrics(exposition: bytes) -> None:
    """Fail with promtool's own words unless the exposition passes `promtool check metrics`."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/system-deps (Debian package prometheus)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def start_daemon(
    config: Path, log_path: Path, *options: str
) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m exporter --config.file CONFIG [OPTIONS]` on a free loopback port: the process
    and the port. Its output goes to `log_path`, a file: a pipe nobody reads fills up and
    blocks the daemon's logging. Stop it with `stop_process`."""
    port = unused_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config),
             "--web.listen-address", f"127.0.0.1:{port}", *options],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, port


def run_exporter(
    *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m exporter ARGS` to its end, as people run it: exit status and text output."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def get_text(url: str, timeout: float = 5.0) -> str | None:
    """The body of GET `url`; None when there is no answer (refused, reset, timed out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body.decode()
    except OSError:
        return None


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> int:
    """SIGTERM, then SIGKILL if it will not go; its exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def openssl_serial(pem: bytes) -> str:
    """The serial as ``openssl x509 -serial`` prints it, an independent formatter of the bytes."""
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, check=True
    ).stdout.decode()
    return shown.strip().removeprefix("serial=").lower()


def risport_config_data(
    lab: Lab, inventory: str = "risport", password: str = LAB_RISPORT_PASSWORD, **settings: Any
) -> dict[str, Any]:
    """The lab's exporter config (as YAML data) with every cluster's inventory from the lab's
    RisPort70 (`inventory`: risport or both), slow intervals so that tests run probes by hand."""
    data = lab.exporter_config(interval=300.0, timeout=60.0)
    data["probes"]["risport"] = {
        "interval": "300s",
        "timeout": "60s",
        "jitter": "0s",
        "request_timeout": "3s",
        "ca_file": str(lab.ca_file),
        **settings,
    }
    for cluster in data["clusters"]:
        cluster["inventory"] = inventory
        cluster["risport"] = {"username": LAB_RISPORT_USER, "password": password}
    return data
