"""The attack harness of bench/load_soak (issue 14) reads its victims right: what it counts as a
failed probe, a held or dropped idle connection, a goal missed."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path

from bench.load_soak.attacks import (
    SOFT_NOFILE,
    Figures,
    Victim,
    blackbox_failing,
    hold_idle,
    our_failing,
    soft_fd_limit,
)
from bench.processes import Service

EXPOSITION = b"""# HELP cucm_probe_success Whether the probe's measurement worked.
# TYPE cucm_probe_success gauge
cucm_probe_success{cluster="c000",node="c000-n00",probe="tls"} 1.0
cucm_probe_success{cluster="c000",node="c000-n01",probe="snmp"} 0.0
cucm_probe_success{cluster="c000",node="c000-n01",probe="tls"} 1.0
"""


def test_a_failing_probe_is_read_from_our_exposition() -> None:
    assert our_failing(EXPOSITION) == {"c000-n01/snmp"}
    assert our_failing(EXPOSITION.replace(b"} 0.0", b"} 1.0")) == set()


def test_a_failing_blackbox_probe_is_read_from_its_answer() -> None:
    assert blackbox_failing(b"probe_duration_seconds 0.01\nprobe_success 0\n") == {"probe_success"}
    assert blackbox_failing(b"probe_success 1\n") == set()


def test_every_goal_is_judged() -> None:
    clean = Figures("idle", "ours", legit_scrapes=20, rss_mib_before=80, rss_mib_peak=90)
    clean.fds_before, clean.fds_peak = 10, 40
    assert all(clean.goals().values())
    blinded = Figures("idle", "ours", legit_scrapes=20, failed_scrapes=3, fds_peak=1020)
    blinded.caused_failures = ["c000-n00/tls"]
    blinded.rss_mib_peak = 300
    assert not any(blinded.goals().values())
    raised = Figures("idle", "ours", fds_peak=1100, fd_limit=1_048_576)
    assert raised.goals()[f"fds under 90% of its fd limit ({1_048_576})"]
    assert SOFT_NOFILE == 1024


def test_the_fd_limit_is_read_from_proc() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = soft if soft != resource.RLIM_INFINITY else 2**31
    assert soft_fd_limit(os.getpid()) == expected


async def test_idle_connections_are_held_and_a_victim_that_drops_them_is_seen() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the attacker closes

    for handler, dropped in ((drop, 5), (hold, 0)):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        service = Service(["true"], Path("unused.yml"), Path("unused.log"))  # never started
        service.port = port
        victim = Victim("ours", service, "/metrics", (), our_failing, None)
        async with server:
            seen = await hold_idle(victim, 5, time.monotonic() + 1.0)
        assert seen["held"] == 5
        assert seen["closed_by_victim"] == dropped
