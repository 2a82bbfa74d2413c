"""The processes a run starts (the lab and the exporter daemon), each stopped on exit.

Both run apart from the benchmark, so every figure read from /proc holds one of them alone.
Both get SIGTERM if the benchmark dies, even by SIGKILL (which no `finally` survives), through
PR_SET_PDEATHSIG; start them from the main thread, since the signal follows the thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from exporter.lab.tls import unused_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DAEMON = Path(sys.executable).with_name("cucm-directory-exporter")
# What runs as the daemon: the shipped entry point, or an experiment that patches it first.
VARIANTS = {
    "shipped": [str(DAEMON)],
    "cached": [sys.executable, "-m", "bench.load_soak.cached_daemon"],
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
LAB_START_TIMEOUT = 180.0  # 100 nodes start in a few seconds; leave room for a busy machine
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


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, dead ones included (proc(5) fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def resident_bytes(pid: int) -> int:
    """Resident set size now, from /proc/<pid>/statm (what ProcessCollector reports too)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


def peak_resident_bytes(pid: int) -> int:
    """VmHWM: the highest resident set size so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


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


# --- the lab -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabInfo:
    pid: int
    config: Path  # the exporter config the lab wrote: every node, all three probes
    control: str  # the control API's base URL
    topology: dict[str, list[str]]  # cluster -> node names (unique across the lab)
    phones: dict[str, list[str]]  # node -> the device names it started with
    start_seconds: float

    @property
    def nodes(self) -> list[tuple[str, str]]:
        """(cluster, node) in a fixed order: cluster by cluster."""
        return [(cluster, node) for cluster, names in self.topology.items() for node in names]


class LabProcess:
    """`bench.load_soak.labserver` in its own process; closing its stdin stops it."""

    def __init__(
        self, clusters: int, nodes: int, interval: float, timeout: float, config_out: Path
    ) -> None:
        self._command = [
            sys.executable,
            "-m",
            "bench.load_soak.labserver",
            f"--clusters={clusters}",
            f"--nodes={nodes}",
            f"--interval={interval:g}",
            f"--timeout={timeout:g}",
            f"--config-out={config_out}",
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
        return LabInfo(pid=self._process.pid, **announced)

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


# --- the daemon ----------------------------------------------------------------------------


class Daemon:
    """`cucm-directory-exporter --config.file ...` on a loopback port, logging to a file."""

    def __init__(
        self, config: Path, log: Path, log_level: str = "info", variant: str = "shipped"
    ) -> None:
        self.log = log
        self.log_level = log_level
        self.variant = variant
        self.port = 0  # picked at start: a port the kernel hands out now, not one taken since
        self._config = config
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the daemon is not running"
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        self.port = unused_port()
        command = [
            *VARIANTS[self.variant],
            f"--config.file={self._config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--log.level={self.log_level}",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command,
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
            if not self.running():
                raise RuntimeError(f"the daemon exited early; see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the daemon was not ready after {DAEMON_READY_TIMEOUT:g}s")

    def log_count(self, needle: str) -> int:
        """How many log lines contain `needle` (e.g. APScheduler's skipped-run warning)."""
        if not self.log.exists():
            return 0
        return sum(needle in line for line in self.log.read_text(errors="replace").splitlines())


def git_state() -> dict[str, str]:
    """The commit the daemon runs from, and whether exporter/ differs from it (the tree is
    shared: others commit while a run goes on)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        )
        return done.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "exporter_changes": git("status", "--short", "--", "exporter") or "none",
    }


def utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader (or a run killed mid-write) never sees half a file."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)


def tune_config(config: Path, max_concurrent_probes: int | None, jitter: float) -> None:
    """Adjust the exporter config the lab wrote: the probes' jitter (the lab writes 0 s, which
    runs every job of a probe type at the same instant), and `scheduler.max_concurrent_probes`
    (None: the exporter's default)."""
    document = yaml.safe_load(config.read_text())
    for probe in document["probes"].values():
        probe["jitter"] = f"{jitter:g}s"
    if max_concurrent_probes is not None:
        document["scheduler"] = {"max_concurrent_probes": max_concurrent_probes}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
