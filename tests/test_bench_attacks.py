"""The attack harness of bench/load_soak (issue 14) reads its victims right: what it counts as a
failed probe, a held or dropped idle connection, a goal missed."""

from __future__ import annotations

import os
import resource

from bench.load_soak.attacks import (
    SOFT_NOFILE,
    Figures,
    blackbox_failing,
    our_failing,
    soft_fd_limit,
)

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
