"""Flag values: the text of one command-line value -> its typed value, or an argparse error.

Each function is an argparse `type=`: a bad value ends in one line naming what was expected
(exit 2, as Go's kingpin), never a traceback.
"""

from __future__ import annotations

import argparse

from exporter.results import TlsVersion
from exporter.server import ListenAddress

__all__ = [
    "RESERVED_PATHS",
    "assumed_minimum",
    "connection_count",
    "listen_address",
    "positive_seconds",
    "telemetry_path",
]

# Paths the HTTP app serves besides the metrics: the telemetry path must not hide one.
RESERVED_PATHS = ("/", "/probe", "/runbook", "/-/healthy", "/-/ready", "/-/reload")


def listen_address(text: str) -> ListenAddress:
    try:
        return ListenAddress.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected [host]:port") from None


def telemetry_path(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() or c in "?#" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an absolute path such as /metrics")
    if text.rstrip("/") in (p.rstrip("/") for p in RESERVED_PATHS):
        raise argparse.ArgumentTypeError(
            f"{text!r} would hide the exporter's own {text.rstrip('/') or '/'} page"
        )
    return text


def connection_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of connections, 1 or more")
    return int(text)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, above 0")
    return value


def assumed_minimum(text: str) -> tuple[str | None, TlsVersion]:
    """'1.2' -> (None, 1.2): every node; 'cucm-pub=1.2' -> ('cucm-pub', 1.2)."""
    node, _, version = text.rpartition("=")
    try:
        return (node or None), TlsVersion(version)
    except ValueError:
        choices = ", ".join(repr(v.value) for v in TlsVersion)
        raise argparse.ArgumentTypeError(
            f"invalid choice: {version!r} (choose from {choices}, as VERSION or NODE=VERSION)"
        ) from None
