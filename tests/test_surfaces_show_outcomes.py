"""No surface says "ok" while a route is down: with one node at TLS 1.2 and the other's
directory answering HTTP 500, the probes still measure (cucm_probe_success 1), and the landing
page and the /probe debug summary name the classified outcomes. Against the lab, through the
daemon as it is wired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from exporter.daemon import Daemon, Serving
from exporter.lab import Lab
from exporter.lab.directory import DirectoryFault
from exporter.server import ListenAddress
from exporter.webconfig import WebConfig
from tests.conftest import config_for


@pytest.fixture
async def daemon(lab: Lab, tmp_path: Path) -> AsyncIterator[str]:
    lab.set_tls_policy("cucm-pub", "1.2")
    lab.set_directory_fault("cucm-sub1", DirectoryFault.HTTP_500)
    config_file = lab.write_exporter_config(tmp_path / "c.yml")
    running = Daemon(
        config_for(lab), config_file, Serving(ListenAddress("127.0.0.1", 0), "/metrics", None),
        WebConfig(),
    )  # fmt: skip
    await running.start()
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        await running.stop()
        lab.set_directory_fault("cucm-sub1", DirectoryFault.NONE)
        lab.set_tls_policy("cucm-pub", "1.0", "1.2")


async def wait_for(session: aiohttp.ClientSession, url: str, *needles: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        async with session.get(url) as response:
            text = await response.text()
        if all(needle in text for needle in needles) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


async def test_the_landing_page_and_debug_name_the_broken_route(daemon: str) -> None:
    async with aiohttp.ClientSession() as session:
        metrics = await wait_for(
            session,
            f"{daemon}/metrics",
            'cucm_directory_up{cluster="lab",node="cucm-sub1",route="http"} 0.0',
            'cucm_tls_min_version{cluster="lab",node="cucm-pub",port="2445",service="tvs"} 1.2',
        )
        # The measurement worked: the probes succeeded, the routes are down.
        assert 'cucm_probe_success{cluster="lab",node="cucm-sub1",probe="directory"} 1.0' in metrics
        assert 'cucm_directory_up{cluster="lab",node="cucm-sub1",route="http"} 0.0' in metrics

        async with session.get(f"{daemon}/") as response:
            page = await response.text()
        rows = [
            line for line in page.splitlines() if "<td>cucm-sub1</td><td>directory</td>" in line
        ]
        assert len(rows) == 1
        assert "http http_error, https http_error, https_legacy http_error" in rows[0]
        tls_rows = [line for line in page.splitlines() if "<td>cucm-pub</td><td>tls</td>" in line]
        assert "2445/tvs accepts 1.2" in tls_rows[0]

        params = {"target": "cucm-sub1", "module": "directory", "debug": "true"}
        async with session.get(f"{daemon}/probe", params=params) as response:
            debug = await response.text()
        summary = debug.split("\nResult summary:\n")[1].splitlines()[0]
        assert summary.startswith("directory: success, reason ok")
        assert summary.endswith("; http http_error, https http_error, https_legacy http_error")
