"""The exporter's front door against clients without credentials (issue 14, findings 1 and 8):
idle connections, clients that never read, malformed requests, made-up Accept headers and
security headers on every answer. Real aiohttp servers on loopback, each attack bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import parse_config
from exporter.frontdoor import (
    AcceptErrorLimiter,
    FrontDoor,
    FrontDoorLimits,
    MalformedRequestFilter,
)
from exporter.lab import Lab
from exporter.lab.tls import unused_port
from exporter.metrics.collector import CucmCollector
from exporter.metrics.exposition import Body, CachedExposition, MetricsBodies, negotiated_format
from exporter.server import ExporterApp, ListenAddress, serve
from exporter.state import ExporterState
from exporter.store import ResultStore
from exporter.webconfig import WebConfig
from tests.conftest import get_text, stop_process
from tests.test_daemon import wait_for

IDLE_CONNECTIONS = 1100  # what blinded the exporter at the usual soft limit of 1024


@contextmanager
def open_files_at_least(count: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _limit_open_files() -> None:  # in the daemon's child process, before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _samples(text: str, name: str) -> dict[str, float]:
    """probe label -> value of `name` for the one node."""
    return {
        sample.labels["probe"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_idle_connections_at_the_soft_limit_leave_scrapes_and_probes_working(
    tmp_path: Path,
) -> None:
    """1,100 connections that never send a request, against a daemon whose open-file limit
    is 1024 (soft and hard, so it cannot raise it): scrapes are answered, probes still run
    and succeed, and the log holds no traceback per accept."""
    with Lab({"fd": ("node",)}, restart_downtime=0.0) as lab:
        config = lab.write_exporter_config(tmp_path / "fd.yml", interval=3.0, timeout=2.0)
        port = unused_port()
        log_file = tmp_path / "daemon.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "exporter", "--config.file", str(config),
                 "--web.listen-address", f"127.0.0.1:{port}",
                 # Long enough that the attack lasts the whole test.
                 "--web.read-header-timeout", "120"],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_limit_open_files,
            )  # fmt: skip
        metrics = f"http://127.0.0.1:{port}/metrics"
        idle: list[socket.socket] = []
        try:
            wait_for(lambda: get_text(metrics) is not None, 20, "the daemon")
            with open_files_at_least(IDLE_CONNECTIONS + 256):
                for _ in range(IDLE_CONNECTIONS):
                    # When the backlog is full the attack holds what it got.
                    with contextlib.suppress(OSError):
                        idle.append(socket.create_connection(("127.0.0.1", port), timeout=1.0))
                attack_started = time.time()
                for _ in range(10):
                    assert get_text(metrics, timeout=5.0) is not None, "a scrape failed"
                text = ""

                def probed_since_attack() -> bool:
                    nonlocal text
                    text = get_text(metrics, timeout=5.0) or ""
                    last = _samples(text, "cucm_probe_last_run_timestamp_seconds")
                    return bool(last) and min(last.values()) > attack_started

                wait_for(probed_since_attack, 30, "probe runs during the attack")
                success = _samples(text, "cucm_probe_success")
                assert success == {"tls": 1.0, "directory": 1.0, "snmp": 1.0}, success
                assert _samples_of(text, "cucm_exporter_http_connections_open") <= 768
        finally:
            for sock in idle:
                sock.close()
            stop_process(process)
    logged = log_file.read_text()
    assert "Traceback" not in logged
    assert len(logged.splitlines()) < 100


def _read(request: urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
        return body


def _samples_of(text: str, name: str) -> float:
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


class _BigBody:
    """A MetricsSource with one large body (what /metrics is at a thousand nodes)."""

    def __init__(self, size: int) -> None:
        self.content = os.urandom(size)
        self.served = 0

    async def settle(self) -> None:
        return None

    def body(self, accept: str, accept_encoding: str) -> Body:
        self.served += 1
        return Body(self.content, "text/plain; version=0.0.4; charset=utf-8", gzipped=False)


async def _start(app: ExporterApp, door: FrontDoor) -> tuple[web.AppRunner, int]:
    runner = await serve(app.build(), ListenAddress("127.0.0.1", 0), door=door)
    return runner, int(runner.addresses[0][1])


def _app(metrics: object) -> ExporterApp:
    async def reload() -> str | None:
        return None

    return ExporterApp(metrics, ResultStore(), reload)  # type: ignore[arg-type]


async def test_clients_that_never_read_hold_a_slice_each_until_the_write_timeout() -> None:
    clients, size = 10, 16 * 1024 * 1024
    source = _BigBody(size)
    door = FrontDoor(FrontDoorLimits(write_timeout=1.0))
    runner, port = await _start(_app(source), door)
    streams: list[asyncio.StreamWriter] = []
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            _, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(writer)
        for _ in range(200):
            if source.served == clients:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let every writer fill what it can
        held = tracemalloc.get_traced_memory()[0] - baseline
        # One write of the whole body would keep most of the 16 MiB per client.
        assert source.served == clients
        assert held < 16 * 1024 * 1024, f"{held / 2**20:.1f} MiB held for {clients} clients"
        for _ in range(100):
            if door.counts().write_timeouts == clients:
                break
            await asyncio.sleep(0.1)
        assert door.counts().write_timeouts == clients
        assert door.counts().open_connections == 0
    finally:
        tracemalloc.stop()
        for writer in streams:
            writer.close()
        await runner.cleanup()


async def test_a_full_door_evicts_idle_connections_for_a_scraper() -> None:
    source = _BigBody(1024)
    door = FrontDoor(FrontDoorLimits(max_connections=16, fd_reserve=0), fd_limit=10_000)
    runner, port = await _start(_app(source), door)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        writer.close()
        counts = door.counts()
        assert counts.open_connections <= 16
        assert counts.evicted >= 40 - 16
    finally:
        for _, idle_writer in idle:
            idle_writer.close()
        await runner.cleanup()


async def test_a_connection_without_a_request_is_closed_after_the_head_timeout() -> None:
    door = FrontDoor(FrontDoorLimits(head_timeout=0.5))
    runner, port = await _start(_app(_BigBody(10)), door)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # and the rest never comes
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()
        assert door.counts().head_timeouts == 1
    finally:
        await runner.cleanup()


async def test_a_malformed_request_is_counted_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    door = FrontDoor()
    log_filter = MalformedRequestFilter(door)
    log_filter.install()
    runner, port = await _start(_app(_BigBody(10)), door)
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            for garbage in (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(garbage)
                assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.0 400")
                writer.close()
            await asyncio.sleep(0.1)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert door.counts().malformed_requests == 2
    finally:
        logging.getLogger("aiohttp.server").removeFilter(log_filter)
        await runner.cleanup()


def test_made_up_accept_versions_share_one_format() -> None:
    formats = {
        negotiated_format(f"application/openmetrics-text; version=1.0.{i}") for i in range(50)
    }
    assert formats == {"application/openmetrics-text; version=1.0.0; escaping=underscores"}
    texts = {negotiated_format(a) for a in ("", "*/*", "text/plain", "x/y; version=abc")}
    assert texts == {""}
    # prometheus_client itself raises on these; a client must not get a 500 for them.
    assert negotiated_format("application/openmetrics-text; version=abc") == ""
    assert negotiated_format("text/plain; version=x") == ""


async def test_made_up_accept_headers_do_not_render_per_request(tmp_path: Path) -> None:
    """Through the real exposition cache: 50 scrapes with 50 made-up versions, one rendering."""
    config = parse_config(
        yaml.safe_dump({"clusters": [{"name": "c", "nodes": [{"name": "n", "host": "h"}]}]}),
        base_dir=tmp_path,
    )
    state = ExporterState(config, 0.0)
    renders = 0

    class Counting(CachedExposition):
        def render(self, accept: str, config_token: object) -> tuple[bytes, str]:
            nonlocal renders
            renders += 1
            return super().render(accept, config_token)

    bodies = MetricsBodies(
        Counting(CucmCollector(ResultStore(), state)), state, clock=lambda: 100.0
    )
    runner, port = await _start(_app(bodies), FrontDoor())
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for i in range(50):
            accept = f"application/openmetrics-text; version=1.{i}.0"
            request = urllib.request.Request(url, headers={"Accept": accept})
            answer = await asyncio.to_thread(_read, request)
            assert answer.endswith(b"# EOF\n")
        assert renders == 1
    finally:
        await runner.cleanup()


async def test_security_headers_are_on_401_and_404_too() -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    web_config = WebConfig.model_validate(
        {
            "basic_auth_users": {"prometheus": hashed},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        }
    )
    app = _app(_BigBody(10))
    app.use_web_config(web_config)
    runner, port = await _start(app, FrontDoor())
    try:
        for path, auth, status in (
            ("/metrics", None, 401),
            ("/nowhere", "prometheus:secret", 404),
            ("/-/healthy", None, 200),
        ):
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if auth:
                import base64

                request.add_header(
                    "Authorization", "Basic " + base64.b64encode(auth.encode()).decode()
                )

            def fetch(r: urllib.request.Request = request) -> tuple[int, str | None]:
                try:
                    with urllib.request.urlopen(r, timeout=5) as response:
                        return response.status, response.headers.get("X-Frame-Options")
                except urllib.error.HTTPError as error:
                    return error.code, error.headers.get("X-Frame-Options")

            assert await asyncio.to_thread(fetch) == (status, "deny"), path
    finally:
        await runner.cleanup()


def test_accept_errors_are_logged_once_per_interval() -> None:
    now = 0.0
    limiter = AcceptErrorLimiter(interval=10.0, clock=lambda: now)
    logged: list[dict[str, object]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.default_exception_handler = logged.append  # type: ignore[method-assign,assignment]
        error = OSError(24, "Too many open files")
        for step in range(100):
            now = step * 0.5  # 50 s of accept failures, two a second
            limiter(loop, {"message": "socket.accept() out of system resource", "exception": error})
        assert limiter.reported == 5  # at 0, 10, 20, 30 and 40 s, not 100 times
        limiter(loop, {"message": "something else"})
        assert logged == [{"message": "something else"}]  # passed on, untouched
    finally:
        loop.close()
