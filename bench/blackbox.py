"""The blackbox_exporter side: one tcp+TLS module per pinned version, CPU read from /proc.

blackbox_exporter does a handshake only when asked over HTTP (`/probe?module=...`), so its
figure unavoidably includes serving that request: routing, a fresh metrics registry per probe,
the per-probe log buffer it keeps for `/`, and writing the exposition. `tcp_connect` (no TLS)
measures that floor so the report can show how much of the figure is the handshake itself.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import yaml

from bench.processes import Service, cpu_seconds

BINARY = "prometheus-blackbox-exporter"
TCP_CONNECT = "tcp_connect"  # the module that does no TLS: the HTTP + prober floor
# blackbox's tls_config names for our version values.
GO_VERSIONS = {"1.0": "TLS10", "1.1": "TLS11", "1.2": "TLS12", "1.3": "TLS13"}
READY_TIMEOUT = 10.0


def module_name(version: str) -> str:
    """`tls10` for "1.0": the module that pins `version`."""
    return "tls" + version.replace(".", "")


def modules_config(
    versions: Sequence[str], extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """tcp_connect, one module per pinned version, then `extra` (more modules by name)."""
    modules: dict[str, object] = {
        TCP_CONNECT: {"prober": "tcp", "timeout": "5s", "tcp": {"preferred_ip_protocol": "ip4"}}
    }
    for version in versions:
        pinned = GO_VERSIONS[version]
        modules[module_name(version)] = {
            "prober": "tcp",
            "timeout": "5s",
            "tcp": {
                # ip4 first: the target is 127.0.0.1 anyway, this only skips an ip6 attempt.
                "preferred_ip_protocol": "ip4",
                "tls": True,
                "tls_config": {
                    "min_version": pinned,
                    "max_version": pinned,
                    "insecure_skip_verify": True,  # like our pinned probe: no verification
                },
            },
        }
    modules.update(extra or {})
    return {"modules": modules}


def version_string() -> str:
    """`blackbox_exporter, version 0.23.0 (...)` and the Go it was built with."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise FileNotFoundError(f"{BINARY} is not installed (Debian: prometheus-blackbox-exporter)")
    shown = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    lines = (shown.stdout + shown.stderr).splitlines()
    wanted = [" ".join(line.split()) for line in lines if "version" in line]
    return "; ".join(wanted)


@dataclass(frozen=True)
class ProbeBatch:
    module: str
    concurrency: int
    probes: int
    wall_seconds: float
    cpu_seconds: float


class ProbeFailed(RuntimeError):
    """blackbox answered, but not with the success the batch expects."""


class Blackbox(Service):
    """A blackbox_exporter process on a loopback port, stopped on exit whatever happens."""

    name = "blackbox"
    ready_path = "/-/healthy"
    ready_timeout = READY_TIMEOUT
    ready_pause = 0.05
    stop_timeout = 5.0

    def __init__(
        self,
        versions: Sequence[str],
        directory: Path,
        stem: str = "blackbox",
        extra_modules: Mapping[str, object] | None = None,
        options: Sequence[str] = (),
    ) -> None:
        """Config and log go to `directory` (bench/results/) as `<stem>.yml` and `<stem>.log`:
        kept for a look afterwards. The modules: `modules_config(versions, extra_modules)`."""
        super().__init__([BINARY], directory / f"{stem}.yml", directory / f"{stem}.log", options)
        self._modules = modules_config(versions, extra_modules)

    def __enter__(self) -> Self:
        self.config.write_text(yaml.safe_dump(self._modules, sort_keys=False))
        return super().__enter__()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[http.client.HTTPConnection]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            yield connection
        finally:
            connection.close()

    # --- probing -------------------------------------------------------------------------

    def probe(self, connection: http.client.HTTPConnection, target: str, module: str) -> str:
        connection.request("GET", f"/probe?target={target}&module={module}")
        response = connection.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise ProbeFailed(f"{module}: HTTP {response.status}: {body[:200]}")
        return body

    def accepts(self, target: str, version: str) -> bool:
        """Does blackbox's Go TLS client complete a handshake pinned to `version`?"""
        with self._connection() as connection:
            body = self.probe(connection, target, module_name(version))
        return _succeeded(body, version)

    def run(
        self, target: str, module: str, count: int, concurrency: int, warmup: int
    ) -> ProbeBatch:
        """`count` probes, `concurrency` at a time over kept-alive connections (as Prometheus
        scrapes), timing blackbox's CPU across the loop alone."""
        version = _module_version(module)
        self._probe_many(target, module, warmup, concurrency, version)
        cpu_before, wall_before = cpu_seconds(self.pid), time.perf_counter()
        self._probe_many(target, module, count, concurrency, version)
        wall = time.perf_counter() - wall_before
        cpu = cpu_seconds(self.pid) - cpu_before
        return ProbeBatch(module, concurrency, count, wall, cpu)

    def _probe_many(
        self, target: str, module: str, count: int, concurrency: int, version: str | None
    ) -> None:
        remaining = count
        lock = threading.Lock()
        failures: list[BaseException] = []

        def take() -> bool:
            nonlocal remaining
            with lock:
                if remaining <= 0 or failures:
                    return False
                remaining -= 1
                return True

        def worker() -> None:
            try:
                with self._connection() as connection:
                    while take():
                        body = self.probe(connection, target, module)
                        if not _succeeded(body, version):
                            raise ProbeFailed(f"{module}: probe_success is not 1:\n{body}")
            except BaseException as error:
                with lock:
                    failures.append(error)

        threads = [threading.Thread(target=worker) for _ in range(min(concurrency, count))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]


def _module_version(module: str) -> str | None:
    return next((v for v in GO_VERSIONS if module_name(v) == module), None)


def _succeeded(body: str, version: str | None) -> bool:
    """probe_success 1 and, for a pinned module, the version it was pinned to."""
    if "\nprobe_success 1\n" not in body:
        return False
    return version is None or f'probe_tls_version_info{{version="TLS {version}"}} 1' in body
