"""The processes the benchmarks start, stop and read, shared by every package under bench/.

Each side of a benchmark runs in a process of its own, so every figure read from /proc holds one
of them alone: the bench servers and labs (`Announcing`), the exporter daemon (`Daemon`),
blackbox_exporter (a `Service` too), and the drivers that time their own CPU (`Clock`).

Nothing a benchmark starts may outlive it. Every child gets SIGTERM if the benchmark dies, even
by SIGKILL (which no `finally` survives), through PR_SET_PDEATHSIG; start children from the main
thread, since the signal follows the thread that started them. Servers that read their stdin
also stop when it closes, and everything is stopped (SIGTERM, then SIGKILL) at the end of its
`with` block, on errors too. Linux only, like /proc.
"""

from __future__ import annotations

import contextlib
import cProfile
import ctypes
import functools
import http.client
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Self

from bench.exporter_api import unused_port
from bench.exposition import labelled_values
from bench.report import ROOT

DAEMON = Path(sys.executable).with_name("cucm-directory-exporter")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STOP_TIMEOUT = 15.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark goes away, however it goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_child(soft_nofile: int | None) -> None:
    """In a service before exec: die with the benchmark, and with `soft_nofile` as its soft
    RLIMIT_NOFILE if given (1024 is what systemd and a login shell hand a service)."""
    die_with_parent()
    if soft_nofile is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_nofile, hard))


def exit_on_signals() -> None:
    """Turn SIGTERM/SIGINT into SystemExit, so `with` blocks still stop what they started
    (a benchmark's children; a server's lab and its temporary files)."""

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, leave)


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it will not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- readings from /proc -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, dead ones included (proc(5) fields 14, 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def resident_bytes(pid: int) -> int:
    """Resident set size now, from /proc/<pid>/statm (what ProcessCollector reports too)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE


def status_kib(pid: int, *keys: str) -> dict[str, int]:
    """Fields of /proc/<pid>/status counted in kB (VmRSS, VmHWM, ...), in the file's order."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            fields[key] = int(value.split()[0])
    return fields


def peak_resident_bytes(pid: int) -> int:
    """VmHWM: the highest resident set size so far."""
    return status_kib(pid, "VmHWM").get("VmHWM", 0) * 1024


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of `pid`, in MiB."""
    return {key: kib / 1024 for key, kib in status_kib(pid, "VmRSS", "VmHWM").items()}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class StoppedOnExit:
    """`with` support for a child: the end of the block calls `stop()`, on errors too."""

    def stop(self) -> None:
        raise NotImplementedError

    def __exit__(self, *failure: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Endpoint:
    """Where a bench server listens, as it announced it."""

    address: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.address}:{self.port}"


# --- servers that announce themselves on stdout --------------------------------------------


class Announcing(StoppedOnExit):
    """A bench server or lab in its own process: it prints one JSON line once it is up (the
    announcement) and serves until its stdin closes; SIGTERM, then SIGKILL, if it lingers.

    `name` is what errors call it (default: its command); `linger` is how long it may take to
    stop by itself, `stop_timeout` how long to wait after SIGTERM.
    """

    def __init__(
        self,
        command: Sequence[str],
        start_timeout: float,
        *,
        name: str | None = None,
        linger: float = STOP_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self._command = list(command)
        self._start_timeout = start_timeout
        self._name = name or repr(self._command)
        self._linger = linger
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[str] | None = None
        self.announcement: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self._name} is not running"
        return self._process.pid

    def start(self) -> dict[str, Any]:
        """Start it and wait for its announcement; stopped again if that does not come."""
        self._process = subprocess.Popen(
            self._command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            self.announcement = json.loads(self.line(self._start_timeout))
        except BaseException:
            self.stop()
            raise
        return self.announcement

    def __enter__(self) -> Self:
        self.start()
        return self

    def send(self, line: str) -> None:
        """One line to its stdin (a server that takes commands there)."""
        assert self._process is not None, f"{self._name} is not running"
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def line(self, timeout: float) -> str:
        """Its next stdout line, waiting at most `timeout` seconds for it."""
        assert self._process is not None, f"{self._name} is not running"
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"{self._name} said nothing in {timeout:g}s")
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self._name} exited early (status {self._process.wait()})")
        return line

    def stop(self) -> None:
        """Close its stdin, the polite way (a lab stops its nodes); SIGTERM if it lingers."""
        if self._process is None:
            return
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=self._linger)
        except subprocess.TimeoutExpired:
            stop(self._process, self._stop_timeout)
        if self._process.stdout is not None:
            self._process.stdout.close()


# --- Prometheus-style servers: the daemon, blackbox_exporter --------------------------------


class Service(StoppedOnExit):
    """A program taking `--config.file` and `--web.listen-address`, on a loopback port the
    kernel hands out at start (not one taken since), its output in a log file.

    `with` starts it and waits until `ready_path` answers 200; the end of the block stops it.
    Subclasses name it and set the timings.
    """

    name = "the service"
    ready_path = "/-/ready"
    soft_nofile: int | None = None  # the soft RLIMIT_NOFILE it starts with (None: ours)
    ready_timeout = 60.0
    ready_pause = 0.1
    stop_timeout = STOP_TIMEOUT

    def __init__(
        self, executable: Sequence[str], config: Path, log: Path, options: Sequence[str] = ()
    ) -> None:
        self.config = config
        self.log = log
        self.port = 0  # picked at start
        self._executable = list(executable)
        self._options = list(options)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Self:
        self.port = unused_port()
        command = [
            *self._executable,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self._options,
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(start_child, self.soft_nofile),
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process, self.stop_timeout)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited early; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, behind a password (a web config's basic auth)
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(self.ready_pause)
        raise TimeoutError(
            f"{self.name} was not ready after {self.ready_timeout:g}s; see {self.log}"
        )

    def log_count(self, needle: str) -> int:
        """How many log lines contain `needle` (e.g. a probe that overran its deadline)."""
        if not self.log.exists():
            return 0
        return sum(needle in line for line in self.log.read_text(errors="replace").splitlines())


class Daemon(Service):
    """`cucm-directory-exporter --config.file ...` on a loopback port, logging to a file at
    `log_level`; with what the benchmarks read from it: scrapes, CPU, memory, idleness."""

    name = "the daemon"

    def __init__(
        self, config: Path, log: Path, log_level: str = "info", options: Sequence[str] = ()
    ) -> None:
        super().__init__([str(DAEMON)], config, log, [f"--log.level={log_level}", *options])

    def get(
        self, path: str, accept: str | None = None, accept_encoding: str | None = None
    ) -> tuple[int, bytes]:
        """One GET on a fresh connection (as a Prometheus scrape after a restart would); the
        body as it came over the wire (gzipped if `accept_encoding` asked for it)."""
        headers = {"Accept": accept or "", "Accept-Encoding": accept_encoding or ""}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("GET", path, headers={k: v for k, v in headers.items() if v})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def skipped_runs(self) -> int:
        """Probe runs the daemon has skipped since it started (a run came due while the
        previous one of its node still ran or waited for a slot): the sum of its
        cucm_exporter_probe_runs_skipped_total. One scrape: read it outside CPU windows."""
        _, body = self.get("/metrics")
        return round(sum(labelled_values(body, "cucm_exporter_probe_runs_skipped_total")))

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


# --- drivers: our side of a benchmark, timing itself ----------------------------------------


def run_driver(command: Sequence[str], timeout: float) -> str:
    """Run one of our drivers (a fresh process, so nothing of ours runs in the timed one but
    the code measured) to the end; its stdout."""
    # run() kills the driver if it overruns or if we are interrupted.
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"our driver failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Clock:
    """Wall and CPU readings of this process (every thread; asyncio may use a pool)."""

    wall: float
    user: float
    system: float

    @classmethod
    def now(cls) -> Clock:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(time.perf_counter(), usage.ru_utime, usage.ru_stime)

    def since(self, start: Clock) -> tuple[float, float, float]:
        """Wall, user and system seconds from `start` to this reading."""
        return self.wall - start.wall, self.user - start.user, self.system - start.system


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """cProfile the block into `path` (figures then include the profiler's own cost)."""
    if path is None:
        yield
        return
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waiting is free
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)
