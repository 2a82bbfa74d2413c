"""The daemon end to end: a real process probing the lab, scraped over HTTP."""

from __future__ import annotations

import gzip
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.lab import Lab
from tests.conftest import promtool_check_metrics, run_exporter, start_daemon, stop_process

INTERVAL = 2.0


class Daemon:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, config_file: Path, log_file: Path
    ) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"
        self.config_file = config_file
        self.log_file = log_file

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, path: str) -> tuple[int, bytes]:
        # No body: a form body (urllib's default for data=b"") is refused as cross-site.
        request = urllib.request.Request(self.base + path, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def sample(self, name: str, **labels: str) -> float | None:
        _, body = self.get("/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
        return None


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll until `condition` holds; return how long it took, fail after `seconds`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"gave up after {seconds:g}s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[Daemon]:
    config_file = lab.write_exporter_config(
        tmp_path / "exporter.yml", interval=INTERVAL, timeout=1.5
    )
    log_file = tmp_path / "daemon.log"
    process, port = start_daemon(
        config_file, log_file, "--log.level", "debug", "--web.enable-lifecycle"
    )
    running = Daemon(process, port, config_file, log_file)
    try:
        wait_for(lambda: _ready(running), 15, "the daemon to become ready")
        yield running
    finally:
        stop_process(process, timeout=10)


def _ready(daemon: Daemon) -> bool:
    if daemon.process.poll() is not None:
        pytest.fail(f"the daemon exited with {daemon.process.returncode}")
    try:
        return daemon.get("/-/ready")[0] == 200
    except OSError:
        return False


def test_metrics_pass_promtool_and_follow_a_policy_change(daemon: Daemon, lab: Lab) -> None:
    tvs = {"cluster": "lab", "node": "cucm-pub", "port": "2445", "service": "tvs"}
    wait_for(lambda: daemon.sample("cucm_tls_min_version", **tvs) == 1.0, 10, "a first probe run")
    status, body = daemon.get("/metrics")
    assert status == 200
    promtool_check_metrics(body)
    assert b'cucm_exporter_build_info{python_version="' in body

    lab.set_tls_policy("cucm-pub", "1.2")
    try:
        # One interval, plus the probe's own time and the lab node's restart.
        waited = wait_for(
            lambda: daemon.sample("cucm_tls_min_version", **tvs) == 1.2,
            INTERVAL + 1.5 + 1.0,
            "cucm_tls_min_version to follow the lab",
        )
        assert daemon.sample("cucm_tls_version_accepted", version="TLS 1.0", **tvs) == 0.0
    finally:
        lab.set_tls_policy("cucm-pub", "1.0")
    print(f"policy change visible on /metrics after {waited:.2f}s")


def test_metrics_are_gzipped_for_clients_that_ask(daemon: Daemon) -> None:
    """Prometheus sends Accept-Encoding: gzip; at a thousand nodes that is 9.6 MB vs 0.6 MB."""

    def scrape(accept_encoding: str) -> tuple[dict[str, str], bytes]:
        request = urllib.request.Request(
            daemon.base + "/metrics", headers={"Accept-Encoding": accept_encoding}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(response.headers), response.read()

    wait_for(lambda: daemon.sample("cucm_probe_success") is not None, 10, "a first probe run")
    headers, body = scrape("gzip, deflate")
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    text = gzip.decompress(body)
    promtool_check_metrics(text)
    plain_headers, plain = scrape("identity")
    assert "Content-Encoding" not in plain_headers
    assert plain_headers["Vary"] == "Accept-Encoding"
    assert families(text) == families(plain)
    assert b"cucm_tls_min_version{" in text
    refused_headers, _ = scrape("gzip;q=0, identity")
    assert "Content-Encoding" not in refused_headers


def families(exposition: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(exposition.decode())}


def test_broken_reload_keeps_serving_the_running_config(daemon: Daemon) -> None:
    good = daemon.config_file.read_text()
    wait_for(lambda: daemon.sample("cucm_probe_success", node="cucm-pub") == 1.0, 10, "a probe run")

    daemon.config_file.write_text(good + "\nbogus_key: true\n")
    status, body = daemon.post("/-/reload")
    assert status == 500
    assert b"bogus_key: unknown field" in body
    assert daemon.sample("cucm_exporter_config_last_reload_successful") == 0.0
    # Still probing with the old config: fresh runs keep arriving.
    before = daemon.sample("cucm_probe_last_run_timestamp_seconds", node="cucm-pub") or 0.0
    wait_for(
        lambda: (
            (daemon.sample("cucm_probe_last_run_timestamp_seconds", node="cucm-pub") or 0.0)
            > before
        ),
        INTERVAL * 3,
        "a probe run after the failed reload",
    )

    # SIGHUP with a good config again restores the flag.
    daemon.config_file.write_text(good)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: daemon.sample("cucm_exporter_config_last_reload_successful") == 1.0,
        5,
        "the SIGHUP reload",
    )


def test_reload_applies_a_new_config(daemon: Daemon) -> None:
    wait_for(lambda: daemon.sample("cucm_probe_success", node="cucm-sub1") is not None, 10, "runs")
    text = daemon.config_file.read_text()
    # Drop the subscriber: its series must go with it.
    head, _, _ = text.partition("  - name: cucm-sub1")
    daemon.config_file.write_text(head)
    status, _ = daemon.post("/-/reload")
    assert status == 200
    assert daemon.sample("cucm_probe_success", node="cucm-sub1") is None
    assert daemon.sample("cucm_tls_min_version", node="cucm-sub1") is None


def test_endpoints(daemon: Daemon) -> None:
    assert daemon.get("/-/healthy")[0] == 200
    assert daemon.get("/-/reload")[0] == 405  # reload is POST only, like Prometheus
    # Wait for the row the page is checked for: under load another probe may finish first.
    wait_for(
        lambda: daemon.sample("cucm_probe_success", node="cucm-pub", probe="tls") is not None,
        30,
        "the tls run",
    )
    status, page = daemon.get("/")
    assert status == 200
    assert b'<a href="/metrics">' in page
    assert b"<td>cucm-pub</td><td>tls</td>" in page


def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=10) == 0
    log = daemon.log_file.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert 'msg="shutting down"' in log


def test_the_healthcheck_reads_the_daemons_flags(daemon: Daemon) -> None:
    """Plain HTTP on a port other than 10027: found from /proc/PID/cmdline alone."""
    from tests.test_deploy import healthcheck_command

    # The Dockerfile's HEALTHCHECK, told the daemon's PID instead of the container's PID 1.
    result = run_exporter(*healthcheck_command()[1:], "--pid", str(daemon.process.pid), timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    daemon.process.send_signal(signal.SIGSTOP)  # alive but not answering: unhealthy
    try:
        stopped = run_exporter(
            "healthcheck", "--pid", str(daemon.process.pid), "--timeout", "1", timeout=30
        )
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    assert stopped.returncode == 1
    assert "timed out" in stopped.stderr


def test_the_runbook_page_is_served(daemon: Daemon) -> None:
    """Where the alerts link when cucm_runbook_base_url is not set: http://<instance>/runbook."""
    status, body = daemon.get("/runbook")
    assert status == 200
    page = body.decode()
    assert page.startswith("<!DOCTYPE html>")
    assert '<h2 id="cucmprobestale">CucmProbeStale</h2>' in page
    _, landing = daemon.get("/")
    assert b'<a href="runbook">Runbook</a>' in landing
