"""What every benchmark's report shares: where it goes, the machine and code it ran on, the JSON.

Results go to `bench/results/` (gitignored), named after the benchmark and the UTC time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    """When and on what: the date, the CPU model and count, the kernel, Python. Each
    benchmark's `environment` starts with these and adds what it depends on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [
        line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
    ]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": models[0] if models else "unknown",
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git(*args: str) -> str:
    """`git ARGS` in the repository: its output as printed, or "" if git fails. The tree is
    shared (others commit while a run goes on), so a report says which code it measured."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def loadavg() -> str:
    """/proc/loadavg's first three fields: other sessions share this machine."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def code_state() -> dict[str, Any]:
    """Which exporter code was measured: the commit, and files under exporter/ changed since."""
    changed = git("status", "--porcelain", "--", "exporter").splitlines()  # "XY path"
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "uncommitted": [line[3:] for line in changed],
    }


def environment(**extra: Any) -> dict[str, Any]:
    """`machine()`, the code measured, the load average (others share the cores), and `extra`."""
    return {
        **machine(),
        "exporter_code": code_state(),
        "loadavg_at_start": loadavg(),
        **extra,
    }


def utc_stamp() -> str:
    """`20261128T004926Z`: the UTC time in a result file's name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """Write atomically: a reader (or a run killed mid-write) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)
    return path
