"""The lab from the command line, and the demo a new user runs first."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config import load_config
from exporter.lab.snmp import generate_phones
from exporter.lab.tls import unused_port
from tests.test_daemon import wait_for


def run_lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter.lab", *args], capture_output=True, text=True, timeout=60
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def reachable(url: str) -> bool:
    try:
        fetch(url)
    except OSError:
        return False
    return True


@pytest.fixture
def lab_process(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    control = f"127.0.0.1:{unused_port()}"
    config_file = tmp_path / "lab.yml"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.lab",
            "serve",
            "--control-address",
            control,
            "--config-out",
            str(config_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: reachable(f"http://{control}/nodes"), 15, "the lab control API")
        yield f"http://{control}", config_file
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_lab_cli_changes_policy_of_a_running_lab(lab_process: tuple[str, Path]) -> None:
    control, config_file = lab_process
    config = load_config(config_file)  # what it wrote is a valid exporter config
    assert [n.name for n in config.clusters[0].nodes] == ["cucm-pub", "cucm-sub1"]

    changed = run_lab_command("set-tls", "cucm-sub1", "1.2", "--control", control)
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["min_version"] == "1.2"
    status = json.loads(run_lab_command("status", "--control", control).stdout)
    assert {n["name"]: n["min_version"] for n in status} == {"cucm-pub": "1.0", "cucm-sub1": "1.2"}
    assert {n["name"]: n["restarts"] for n in status} == {"cucm-pub": 0, "cucm-sub1": 1}

    broken = run_lab_command("directory-fault", "cucm-pub", "http_500", "--control", control)
    assert broken.returncode == 0, broken.stderr
    cucm_pub = next(n for n in config.clusters[0].nodes if n.name == "cucm-pub")
    page = f"http://127.0.0.1:{cucm_pub.connect_port(8080)}/ccmcip/xmldirectory.jsp"
    with pytest.raises(urllib.error.HTTPError, match="500"):
        fetch(page)
    run_lab_command("directory-fault", "cucm-pub", "none", "--control", control)
    assert "CiscoIPPhoneMenu" in fetch(page)

    silenced = run_lab_command("snmp-fault", "cucm-sub1", "silent", "--control", control)
    assert silenced.returncode == 0, silenced.stderr
    assert json.loads(silenced.stdout) == {"snmp_fault": "silent"}
    assert run_lab_command("snmp-fault", "cucm-sub1", "none", "--control", control).returncode == 0

    limited = run_lab_command("risport-fault", "cucm-sub1", "rate_limited", "--control", control)
    assert limited.returncode == 0, limited.stderr
    assert json.loads(limited.stdout) == {"risport_fault": "rate_limited"}
    healed = run_lab_command("risport-fault", "cucm-pub", "none", "--control", control)
    assert json.loads(healed.stdout) == {"risport_fault": "none"}
    unknown = run_lab_command("risport-fault", "cucm-pub", "melt", "--control", control)
    assert unknown.returncode == 2
    assert "invalid choice: 'melt'" in unknown.stderr

    phone = generate_phones(1)[0].name  # the publisher's first phone
    moved = run_lab_command("phone", phone, "--move-to", "cucm-sub1", "--control", control)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) == {"phone": phone, "move_to": "cucm-sub1"}
    ghost = run_lab_command(
        "phone", "SEP000000000000", "--status", "rejected", "--control", control
    )
    assert ghost.returncode == 0  # a status change for an unknown phone changes nothing
    unknown_move = run_lab_command(
        "phone", "SEP000000000000", "--move-to", "cucm-pub", "--control", control
    )
    assert unknown_move.returncode == 1
    assert "no lab phone named" in unknown_move.stderr

    refused = run_lab_command("set-tls", "no-such-node", "1.2", "--control", control)
    assert refused.returncode == 1
    assert "no single lab node named 'no-such-node'" in refused.stderr


def test_lab_cli_without_a_lab_says_so() -> None:
    result = run_lab_command("status", "--control", f"http://127.0.0.1:{unused_port()}")
    assert result.returncode == 1
    assert "cannot reach the lab control API" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_demo_serves_real_tls_metrics_for_every_lab_node() -> None:
    port, control = unused_port(), unused_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--lab.control-address",
            f"127.0.0.1:{control}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(
            lambda: reachable(metrics) and fetch(metrics).count("cucm_tls_min_version{") == 4,
            20,
            "the demo's first probe round",
        )
        wait_for(
            lambda: fetch(metrics).count("cucm_directory_up{") == 6, 20, "the directory probes"
        )
        text = fetch(metrics)
        wait_for(lambda: "cucm_phones_directory_at_risk{" in fetch(metrics), 20, "the SNMP poll")
        text = fetch(metrics)
        assert (
            'cucm_phones_directory_at_risk{cluster="lab",model="Cisco 7962",node="cucm-pub"} 0.0'
            in text
        )
        for node in ("cucm-pub", "cucm-sub1"):
            assert f'cucm_probe_success{{cluster="lab",node="{node}",probe="tls"}} 1.0' in text
            for route in ("http", "https", "https_legacy"):
                up = f'cucm_directory_up{{cluster="lab",node="{node}",route="{route}"}} 1.0'
                assert up in text
        # The demo's own hint works: the lab it started takes orders.
        changed = run_lab_command(
            "set-tls", "cucm-pub", "1.2", "--control", f"http://127.0.0.1:{control}"
        )
        assert changed.returncode == 0, changed.stderr
        started = time.monotonic()
        wait_for(
            lambda: (
                'cucm_tls_min_version{cluster="lab",node="cucm-pub",port="2445",service="tvs"} 1.2'
                in fetch(metrics)
            ),
            15,
            "the demo to show the raised minimum",
        )
        print(f"demo showed the change after {time.monotonic() - started:.1f}s")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        output = process.stdout.read().decode()
        process.stdout.close()
    assert f"metrics:       http://127.0.0.1:{port}/metrics" in output
    assert "Traceback" not in output
