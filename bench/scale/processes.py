"""The processes the scale benchmark starts: the lab and the exporter daemon, each stopped on exit.

Both run apart from this process, so each figure read from /proc holds one of them alone, and
both get SIGTERM if this process dies, even by SIGKILL (which no `finally` survives).
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from bench.tls_vs_blackbox.blackbox import free_port, process_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DAEMON = Path(sys.executable).with_name("cucm-directory-exporter")
LAB_START_TIMEOUT = 120.0  # 1,000 nodes start in ~7 s; leave room for a busy machine
DAEMON_READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark goes away, however it goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def loadavg() -> str:
    """/proc/loadavg's first three fields: other sessions share this machine."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it will not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the lab -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabInfo:
    config: Path  # the exporter config the lab wrote: every node, all three probes
    control: str  # the control API's base URL
    nodes: int
    phones_per_node: int
    start_seconds: float
    max_rss_mb: float
    pid: int

    def base_config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.config.read_text())
        return loaded


class LabProcess:
    """`bench.scale.labserver` in its own process; closing its stdin stops it."""

    def __init__(self, clusters: int, nodes: int, phones: int, directory: Path) -> None:
        self._command = [
            sys.executable,
            "-m",
            "bench.scale.labserver",
            f"--clusters={clusters}",
            f"--nodes={nodes}",
            f"--phones={phones}",
            f"--config-out={directory / f'scale-lab-{phones}.yml'}",
        ]
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LabInfo:
        self._process = subprocess.Popen(
            self._command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            announced = json.loads(_first_line(self._process, LAB_START_TIMEOUT))
        except BaseException:
            self._stop()
            raise
        announced["config"] = Path(announced["config"])
        return LabInfo(**announced, pid=self._process.pid)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is None:
            return
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # the polite way: the lab stops its nodes
        try:
            self._process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop(self._process)


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"{process.args!r} said nothing in {timeout:g}s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args!r} exited early (status {process.wait()})")
    return line


# --- the daemon --------------------------------------------------------------------------------


class Daemon:
    """`cucm-directory-exporter --config.file ...` on a loopback port, logging to a file.

    `command` replaces the executable, e.g. with `python -m bench.scale.experiment ...` for a
    labelled experiment that patches the exporter before running it.
    """

    def __init__(self, config: Path, log: Path, command: list[str] | None = None) -> None:
        self.port = free_port()
        self.log = log
        self._command = [
            *(command or [str(DAEMON)]),
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the daemon is not running"
        return self._process.pid

    def __enter__(self) -> Self:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                self._command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            stop(self._process)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            stop(self._process)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + DAEMON_READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the daemon exited early; see {self.log}")
            with contextlib.suppress(OSError):
                status, _ = self.get("/-/ready")
                if status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the daemon was not ready after {DAEMON_READY_TIMEOUT:g}s")

    def get(self, path: str, accept: str | None = None) -> tuple[int, bytes]:
        """One GET on a fresh connection (as a Prometheus scrape after a restart would)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers={"Accept": accept} if accept else {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def log_count(self, needle: str) -> int:
        """How many log lines contain `needle` (e.g. APScheduler's skipped-run warning)."""
        return sum(needle in line for line in self.log.read_text(errors="replace").splitlines())

    def wait_idle(
        self, quiet_cpu: float = 0.02, window: float = 1.0, limit: float = 300.0
    ) -> float:
        """Block until the daemon used at most `quiet_cpu` CPU seconds in `window` seconds.

        Reading /proc costs the daemon nothing, unlike a scrape, so this is how a benchmark
        waits for a round of probes to end without disturbing its CPU figure. Returns the CPU
        reading at the end of the quiet window.
        """
        deadline = time.monotonic() + limit
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(window)
            now = self.cpu_seconds()
            if now - before <= quiet_cpu:
                return now
            before = now
        raise TimeoutError(f"the daemon was still busy after {limit:g}s")


def write_config(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
