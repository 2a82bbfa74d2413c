"""After a TLS change: lab -> exporter -> real Prometheus (bundled rules) -> real Alertmanager
(bundled routing) -> a webhook. The alert must arrive with the right cluster, node and count,
and resolve after the revert."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.lab import Lab
from tests.stack import Stack
from tests.test_grafana import DASHBOARD_FILES, expressions, load

ALERT = "CucmLegacyPhonesDirectoryAtRisk"


@pytest.fixture(scope="module")
def e2e_lab() -> Iterator[Lab]:
    with Lab(restart_downtime=0.2) as lab:
        yield lab


@pytest.fixture(scope="module")
def stack(e2e_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(e2e_lab, tmp_path_factory.mktemp("stack"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def own_lab_and_stack(tmp_path: Path) -> Iterator[tuple[Lab, Stack]]:
    """A lab and stack of the test's own: its raised node fires alerts after it ends (the rule's
    `for:`), which a shared stack would deliver in the middle of another test. Its inventory
    is both sources, so that the panels naming the source and their agreement have data."""
    with Lab(restart_downtime=0.2) as lab:
        running = Stack(lab, tmp_path, inventory="both")
        try:
            yield lab, running
        finally:
            running.close()


def test_phones_at_risk_alert_fires_and_resolves(stack: Stack, e2e_lab: Lab) -> None:
    # Healthy first: the exporter is scraped and nothing is at risk.
    # A test before this one (random order) may have raised and restored a node: wait until
    # Prometheus has scraped the restored, healthy state.
    at_risk = "sum(cucm_phones_directory_at_risk)"
    stack.wait_for(
        lambda: [r["value"][1] for r in stack.query(at_risk)] == ["0"], 60, "a healthy start"
    )
    assert stack.webhook.alerts(ALERT) == []

    e2e_lab.set_tls_policy("cucm-pub", "1.2")
    try:
        waited = stack.wait_for(
            lambda: any(a["status"] == "firing" for a in stack.webhook.alerts(ALERT)),
            60,
            f"{ALERT} to reach the webhook",
        )
        firing = next(a for a in stack.webhook.alerts(ALERT) if a["status"] == "firing")
        assert firing["labels"]["cluster"] == "lab"
        assert firing["labels"]["node"] == "cucm-pub"
        assert firing["labels"]["severity"] == "critical"
        assert firing["receiver"] == "default"  # the lab cluster never pages (bundled routing)
        # 23 legacy phones are registered to cucm-pub in the lab (see tests/test_collector.py).
        assert firing["annotations"]["summary"].startswith("23 registered phones on cucm-pub (lab)")
        assert "Cisco 7962 (8)" in firing["annotations"]["description"]
        assert "requires TLS 1.2" in firing["annotations"]["description"]
        assert not any(a["labels"]["node"] == "cucm-sub1" for a in stack.webhook.alerts(ALERT))
        print(f"alert received {waited:.1f}s after the policy change")
    finally:
        e2e_lab.set_tls_policy("cucm-pub", "1.0")
    stack.wait_for(
        lambda: any(a["status"] == "resolved" for a in stack.webhook.alerts(ALERT)),
        60,
        f"{ALERT} to resolve",
    )
    resolved = next(a for a in stack.webhook.alerts(ALERT) if a["status"] == "resolved")
    assert (resolved["labels"]["cluster"], resolved["labels"]["node"]) == ("lab", "cucm-pub")


def test_every_process_of_the_stack_is_alive(stack: Stack) -> None:
    assert all(p.poll() is None for p in stack.processes)
    # In random order this may be the stack's first test: wait for Prometheus' first scrape.
    up = 'up{job="cucm-directory-exporter"}'
    stack.wait_for(lambda: bool(stack.query(up)), 30, "the first scrape of the exporter")
    assert stack.query(up)[0]["value"][1] == "1"


def test_every_dashboard_query_returns_data(own_lab_and_stack: tuple[Lab, Stack]) -> None:
    """Each panel and variable query of both dashboards, as Grafana would send it, against the
    real Prometheus that scraped the exporter; with one node raised, so that the "something is
    wrong" panels have something to show too."""
    e2e_lab, stack = own_lab_and_stack
    # increase()/rate() panels need two samples in their window; in random order this may be
    # the stack's first test.
    stack.wait_for(
        lambda: bool(stack.query('count_over_time(up{job="cucm-directory-exporter"}[1m]) >= 2')),
        60,
        "two scrapes of the exporter",
    )
    stack.wait_for(  # RisPort70's first walk, compared with SNMP's table
        lambda: bool(stack.query('cucm_inventory_sources_agree{node="cucm-sub1"}')),
        60,
        "the two inventory sources compared",
    )
    e2e_lab.set_tls_policy("cucm-sub1", "1.2")
    try:
        stack.wait_for(
            lambda: bool(
                stack.query(
                    'cucm_directory_result{node="cucm-sub1",result="tls_version_rejected"} == 1'
                )
            ),
            30,
            "the raised node to show up",
        )
        stack.wait_for(
            lambda: bool(stack.query("sum(cucm_phones_directory_at_risk) > 0")),
            30,
            "phones at risk",
        )
        empty = []
        # One cluster, then "All" as Grafana sends it for a multi-value variable: a regex.
        for cluster in ("lab", "(lab|other)"):
            for uid in DASHBOARD_FILES:
                for where, expr in expressions(load(uid)):
                    if where.startswith("annotation"):
                        continue  # annotations mark events (restarts, changes) that may not happen
                    if not stack.query(grafana_substitute(expr, cluster)):
                        empty.append(f"{uid}: {where} (cluster {cluster}): {expr}")
        assert empty == []
    finally:
        e2e_lab.set_tls_policy("cucm-sub1", "1.0")


def grafana_substitute(expr: str, cluster: str = "lab") -> str:
    """What Grafana sends for the lab's cluster (or several) and its first node."""
    for variable, value in {
        "${datasource}": "prometheus", "$datasource": "prometheus", "$cluster": cluster,
        "${cluster}": cluster, "$node": "cucm-sub1", "${node}": "cucm-sub1",
        "$job": "cucm-directory-exporter",
        "$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m",
    }.items():  # fmt: skip
        expr = expr.replace(variable, value)
    assert "$" not in expr.replace("$1", ""), expr
    return expr


def fetch_or_none(url: str) -> str | None:
    """A plain GET; None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body.decode()
    except OSError:
        return None
