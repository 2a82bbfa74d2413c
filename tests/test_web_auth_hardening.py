"""The web config against clients without credentials (issue 14, items 2, 4, 7 and 8): a
wrong-password storm, over-long passwords, malformed Authorization headers, headers on error
answers, and client-CA rotation, each against the real daemon's HTTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
import threading
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import httpx
import pytest

from exporter.config import parse_config
from exporter.config.base import ConfigError
from exporter.daemon import Daemon, Serving
from exporter.lab.certs import Issued, LabCA
from exporter.server import ListenAddress
from exporter.webconfig import load_web_config
from tests.test_reload_hardening import config_text

PASSWORD = "scrape-secret-5e8f"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
HEADERS = "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
USERS = f"basic_auth_users:\n  prometheus: {HASH}\n"


def basic(user: str, password: str | bytes) -> str:
    secret = password if isinstance(password, bytes) else password.encode()
    return "Basic " + b64encode(user.encode() + b":" + secret).decode()


GOOD = {"Authorization": basic("prometheus", PASSWORD)}


@dataclass
class Served:
    base: str
    daemon: Daemon
    web: Path


async def serve_daemon(tmp_path: Path, web_text: str, scheme: str = "http") -> Served:
    config = tmp_path / "exporter.yml"
    config.write_text(config_text())
    web = tmp_path / "web.yml"
    web.write_text(web_text)
    serving = Serving(ListenAddress("127.0.0.1", 0), "/metrics", web, lifecycle=True)
    daemon = Daemon(
        parse_config(config.read_text(), base_dir=tmp_path), config, serving, load_web_config(web)
    )
    await daemon.start()
    return Served(f"{scheme}://127.0.0.1:{daemon.port}", daemon, web)


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[Served]:
    served = await serve_daemon(tmp_path, HEADERS + USERS)
    try:
        yield served
    finally:
        await served.daemon.stop()


async def status_of(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def test_a_wrong_password_storm_does_not_starve_the_right_scraper(plain: Served) -> None:
    """50 clients without the password hammer /metrics (at most 2,000 requests) while
    Prometheus scrapes 10 times: every scrape answers 200; the storm gets 401 or, once four
    checks wait, 429 at once; one thread does all the bcrypt work."""
    url = f"{plain.base}/metrics"
    scrapes: list[int] = []
    storm: list[int] = []
    async with (
        aiohttp.ClientSession() as prometheus,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as attacker,
    ):
        assert await status_of(prometheus, url, GOOD) == 200  # pays bcrypt once
        scraped = asyncio.Event()

        async def attack(worker: int) -> None:
            sent = 0
            while not scraped.is_set() and len(storm) < 2000:
                wrong = {"Authorization": basic("prometheus", f"guess-{worker}-{sent}")}
                storm.append(await status_of(attacker, url, wrong))
                sent += 1

        attackers = [asyncio.create_task(attack(worker)) for worker in range(50)]
        try:
            await asyncio.sleep(0.2)  # let the storm fill the queue
            for _ in range(10):
                scrapes.append(await status_of(prometheus, url, GOOD))
        finally:
            scraped.set()
            await asyncio.gather(*attackers)
    assert scrapes == [200] * 10
    assert set(storm) <= {401, 429}
    assert 429 in storm  # the queue was full: the cap answered instead of queueing
    assert 401 in storm  # and the wrong passwords that were checked were refused
    bcrypt_threads = [t for t in threading.enumerate() if t.name.startswith("bcrypt")]
    assert len(bcrypt_threads) == 1


async def test_a_password_longer_than_bcrypt_takes_is_401_quietly(
    plain: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as session:
        for password in ("x" * 73, "é" * 40, "y" * 4000):
            long = {"Authorization": basic("prometheus", password)}
            assert await status_of(session, f"{plain.base}/metrics", long) == 401
        # The right password still works, from a fresh cache entry or bcrypt.
        assert await status_of(session, f"{plain.base}/metrics", GOOD) == 200
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    "authorization",
    [
        b"Basic \xff\xfe",  # not ASCII: base64 refuses it with ValueError
        b"Basic !!!!",
        b"Basic",
        b"Basic " + b64encode(b"no-colon"),
        b"Basic " + b64encode(b"\xff:\xfe"),  # not UTF-8
        b"Bearer abc",
    ],
)
async def test_a_malformed_authorization_is_401_quietly(
    plain: Served, authorization: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port = int(plain.base.rpartition(":")[2])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: " + authorization + b"\r\n\r\n"
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"X-Content-Type-Options: nosniff" in answer
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_the_configured_headers_are_on_every_answer(plain: Served) -> None:
    async with aiohttp.ClientSession() as session:
        for path, headers, status in (
            ("/metrics", GOOD, 200),
            ("/-/healthy", {}, 200),
            ("/metrics", {}, 401),
            ("/no-such-page", GOOD, 404),
            ("/-/reload", GOOD, 405),
        ):
            async with session.get(plain.base + path, headers=headers) as response:
                assert response.status == status, path
                assert response.headers.get("X-Content-Type-Options") == "nosniff", path


@pytest.mark.parametrize(
    "header",
    [
        "X-Content-Type-Options: nosniff",
        "X-Frame-Options: deny",
        "X-Frame-Options: sameorigin",
        "X-Frame-Options: DENY",
        "x-frame-options: deny",
        "Strict-Transport-Security: max-age=31536000",
        "Content-Security-Policy: default-src 'none'",
        "X-XSS-Protection: '0'",
        "X-Content-Type-Options: sniff",
        "Set-Cookie: a=b",
        "Access-Control-Allow-Origin: '*'",
        "Server: x",
    ],
)
def test_headers_are_refused_exactly_where_promtool_refuses_them(
    tmp_path: Path, header: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  headers:\n    {header}\n")
    promtool = shutil.which("promtool")
    assert promtool
    theirs = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, timeout=30
    )
    try:
        load_web_config(path)
        ours = True
    except ConfigError:
        ours = False
    assert ours == (theirs.returncode == 0), theirs.stdout + theirs.stderr


def test_a_header_value_cannot_carry_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        'http_server_config:\n  headers:\n    X-XSS-Protection: "0\\r\\nSet-Cookie: a"\n'
    )
    with pytest.raises(ConfigError, match=r"http_server_config\.headers: X-XSS-Protection"):
        load_web_config(path)


# --- client-CA rotation ------------------------------------------------------------------


def tls_web_config(server: Path, key: Path, client_ca: Path) -> str:
    return (
        "tls_server_config:\n"
        f"  cert_file: {server}\n"
        f"  key_file: {key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {client_ca}\n" + USERS
    )


async def fetch_metrics(base: str, server_ca: Path, cert: Path, key: Path) -> int | str:
    """A new connection with this client certificate: the status, or the TLS failure."""
    context = ssl.create_default_context(cafile=str(server_ca))
    context.check_hostname = False  # the certificate names exporter.test; we dial 127.0.0.1
    context.load_cert_chain(cert, key)
    try:
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            response = await client.get(f"{base}/metrics", headers=GOOD)
            return response.status_code
    except httpx.TransportError as error:
        return type(error).__name__


async def test_a_client_ca_removed_by_a_reload_no_longer_verifies(tmp_path: Path) -> None:
    (tmp_path / "ca1").mkdir()
    (tmp_path / "ca2").mkdir()
    ca1, ca2 = LabCA(tmp_path / "ca1", name="Client CA 1"), LabCA(tmp_path / "ca2", name="CA 2")
    server = ca1.issue("exporter", ["exporter.test"])
    old = _files(ca1.issue("prometheus-old", ["old.test"], client=True))
    new = _files(ca2.issue("prometheus-new", ["new.test"], client=True))
    served = await serve_daemon(
        tmp_path, tls_web_config(server.cert_file, server.key_file, ca1.bundle_file), "https"
    )
    try:
        assert await fetch_metrics(served.base, ca1.bundle_file, *old) == 200
        assert await fetch_metrics(served.base, ca1.bundle_file, *new) != 200

        # Rotate: only CA 2 may sign clients now.
        served.web.write_text(tls_web_config(server.cert_file, server.key_file, ca2.bundle_file))
        assert await served.daemon.reload() is None
        assert await fetch_metrics(served.base, ca1.bundle_file, *old) != 200
        assert await fetch_metrics(served.base, ca1.bundle_file, *new) == 200
    finally:
        await served.daemon.stop()


def _files(issued: Issued) -> tuple[Path, Path]:
    return issued.cert_file, issued.key_file
