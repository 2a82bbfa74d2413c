"""HTTP details that the end-to-end test does not pin down."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics.exposition import RegistryBodies, accepts_gzip
from exporter.results import ProbeRun
from exporter.server import ExporterApp, ListenAddress
from exporter.store import ResultStore


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [(":10027", None, 10027), ("127.0.0.1:9", "127.0.0.1", 9), ("[::1]:10027", "::1", 10027)],
)
def test_listen_addresses(text: str, host: str | None, port: int) -> None:
    assert ListenAddress.parse(text) == ListenAddress(host, port)


@pytest.mark.parametrize("text", ["10027", "host:", "host:99999", "host:http"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="expected \\[host\\]:port"):
        ListenAddress.parse(text)


async def test_landing_page_escapes_what_it_shows() -> None:
    store = ResultStore()
    store.put(ProbeRun("<c>", "n&1", "tls", 100.0, 0.5, False, "timeout"))

    async def no_reload() -> str | None:
        return None

    app = ExporterApp(RegistryBodies(CollectorRegistry()), store, no_reload, now=lambda: 160.0)
    response = await app.landing(None)  # type: ignore[arg-type]
    page = response.text or ""
    assert "<td>&lt;c&gt;</td><td>n&amp;1</td>" in page
    assert '<span class="failed">timeout</span>' in page
    assert "<td>60s ago</td>" in page
    # The failure is listed again under "Recent failures", which keeps failures longer.
    assert page.count('<span class="failed">timeout</span>') == 2


def test_history_keeps_failures_longer_than_successes() -> None:
    store = ResultStore(history_limit=3)
    store.put(ProbeRun("c", "n", "tls", 1.0, 0.1, False, "timeout"))
    for second in range(2, 8):
        store.put(ProbeRun("c", "n", "tls", float(second), 0.1, True, "ok"))
    history = store.history()
    assert [r.started for r in history] == [7.0, 6.0, 5.0, 1.0]  # newest first, failure kept


@pytest.mark.parametrize(
    ("header", "taken"),
    [
        ("gzip", True),
        ("gzip, deflate", True),  # Prometheus, Python's and Go's clients
        ("deflate, GZIP;q=0.5", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, identity", False),
        ("identity", False),
        ("", False),
        ("br, deflate", False),
        ("gzip;q=oops", True),  # a malformed weight does not refuse the offer
    ],
)
def test_gzip_is_taken_when_offered(header: str, taken: bool) -> None:
    assert accepts_gzip(header) is taken
