"""What the container image promises, checked without a container engine: the daemon runs on a
read-only root filesystem (a private mount namespace with / remounted read-only)."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from exporter.lab import Lab
from exporter.lab.tls import unused_port
from tests.test_daemon import wait_for
from tests.test_end_to_end import fetch_or_none


def test_the_daemon_runs_on_a_read_only_root(lab: Lab, tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is missing"
    config = lab.write_exporter_config(tmp_path / "exporter.yml", interval=2, timeout=1.5)
    port = unused_port()
    daemon = shlex.join(
        [sys.executable, "-m", "exporter", "--config.file", str(config),
         "--web.listen-address", f"127.0.0.1:{port}"]
    )  # fmt: skip
    # Everything read-only, as `docker run --read-only`: the probe that it really is comes first.
    script = (
        "mount -o remount,bind,ro / && ! touch /.write-test 2>/dev/null && "
        f"! touch {shlex.quote(str(tmp_path))}/.write-test 2>/dev/null && exec {daemon}"
    )
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        )
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(
            lambda: (
                (process.poll() is None and "cucm_probe_success{" in (fetch_or_none(metrics) or ""))
                or process.poll() is not None
            ),
            20,
            "the daemon on a read-only root",
        )
        assert process.poll() is None, log_path.read_text()
        text = fetch_or_none(metrics) or ""
        for probe in ("tls", "directory", "snmp"):
            assert f'cucm_probe_success{{cluster="lab",node="cucm-pub",probe="{probe}"}}' in text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert "Read-only file system" not in log_path.read_text()
