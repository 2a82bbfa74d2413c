"""Exporter configs for each part, derived from the one the lab wrote (every node, its ports)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TLS_PORTS = 2  # the lab's (and CUCM's) default: 8443 tomcat, 2445 tvs
TLS_VERSIONS = 4  # TLS 1.0-1.3 pinned, by default
# One pinned handshake per version: without a CA bundle (the default) the highest accepted one
# also answers for the certificate and cipher, so there is no fifth, verifying handshake.
HANDSHAKES_PER_PORT = TLS_VERSIONS


def _seconds(value: float) -> str:
    return f"{value:g}s"


def tls_only(base: dict[str, Any], concurrency: int, interval: float) -> dict[str, Any]:
    """Part 1: TLS probes alone, every node at the same instant (jitter 0), directory and SNMP
    off, so the daemon's CPU over a round is the TLS round's."""
    document = copy.deepcopy(base)
    probes = document["probes"]
    probes["tls"].update(interval=_seconds(interval), timeout="20s", jitter="0s")
    # As configured by default: no CA bundle, so four handshakes a port (a fifth, verifying
    # one only runs with `ca_file`), the round blackbox_round.py repeats.
    probes["tls"].pop("ca_file", None)
    probes["directory"] = {"enabled": False}
    probes["snmp"] = {"enabled": False}
    document["scheduler"] = {"max_concurrent_probes": concurrency}
    return document


def all_probes(
    base: dict[str, Any],
    concurrency: int,
    tls_interval: float,
    directory_interval: float,
    snmp_interval: float,
) -> dict[str, Any]:
    """Parts 2-4: all three probes, with the lab's short per-request timeouts."""
    document = copy.deepcopy(base)
    probes = document["probes"]
    probes["tls"].update(interval=_seconds(tls_interval), timeout="20s", jitter="0s")
    probes["directory"].update(interval=_seconds(directory_interval), timeout="20s", jitter="0s")
    # An SNMP poll of ~100 phones is ~25 GETBULKs; 2 s per request is the lab's setting.
    probes["snmp"].update(interval=_seconds(snmp_interval), timeout="120s", jitter="0s")
    document["scheduler"] = {"max_concurrent_probes": concurrency}
    return document


def node_count(document: dict[str, Any]) -> int:
    return sum(len(cluster["nodes"]) for cluster in document["clusters"])


def write_config(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
