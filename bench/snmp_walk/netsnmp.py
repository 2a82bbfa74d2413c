"""The net-snmp side: one `snmpbulkwalk` process per column, timed with `os.wait4`.

`snmpbulkwalk` walks one subtree per run (net-snmp 5.9 takes `AGENT [OID]`; further OIDs are
ignored without a word, which `one_root_only` shows), so an operator fetching the inventory
runs it once per column, one after the other. Each child's CPU comes from the rusage
`wait4` returns for it, so nothing of this Python process is counted. Its output goes to a
file, which is what an operator would do with 20,000 lines, and is counted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BINARY = "snmpbulkwalk"


@dataclass(frozen=True)
class Walk:
    """One `snmpbulkwalk` process."""

    column: str
    wall_seconds: float  # fork to reaped, so process start and exit are in
    user_seconds: float
    system_seconds: float
    rows: int  # lines printed under the column's OID

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


class WalkFailed(RuntimeError):
    """snmpbulkwalk exited with an error, or printed what the benchmark did not expect."""


def binary() -> str:
    found = shutil.which(BINARY)
    if found is None:
        raise FileNotFoundError(f"{BINARY} is not installed (Debian: snmp)")
    return found


def version_string() -> str:
    """`NET-SNMP version: 5.9.3`."""
    shown = subprocess.run(
        [binary(), "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    return (shown.stdout + shown.stderr).strip()


def dotted(oid: Sequence[int]) -> str:
    return "." + ".".join(str(part) for part in oid)


def command(
    target: str, community: str, max_repetitions: int, oids: Sequence[Sequence[int]]
) -> list[str]:
    """`snmpbulkwalk -v2c -c COMMUNITY -CrR -On -Oq TARGET OID...` (numeric OIDs, bare values).

    The default retry/timeout (5 retries, 1 s) are left alone: on loopback none fires.
    """
    return [
        binary(),
        "-v2c",
        "-c",
        community,
        f"-Cr{max_repetitions}",
        "-On",
        "-Oq",
        target,
        *(dotted(oid) for oid in oids),
    ]


def run_walk(
    target: str,
    community: str,
    max_repetitions: int,
    column: str,
    oids: Sequence[Sequence[int]],
    directory: Path,
) -> tuple[Walk, dict[str, int]]:
    """Run one snmpbulkwalk on `oids` and time it; also the rows it printed under each OID."""
    argv = command(target, community, max_repetitions, oids)
    output, errors = directory / f"{column}.out", directory / f"{column}.err"
    with output.open("wb") as stdout, errors.open("wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        try:
            # wait4 hands back this child's own rusage and no other's. No timeout needed:
            # snmpbulkwalk gives up by itself (5 retries of 1 s) if the agent stops answering.
            _, wait_status, usage = os.wait4(process.pid, 0)
            process.returncode = status = os.waitstatus_to_exitcode(wait_status)
        finally:
            if process.returncode is None:  # interrupted (SIGTERM, ^C): never leave it behind
                process.kill()
                process.wait()
        wall = time.perf_counter() - start
    if status != 0:
        raise WalkFailed(f"{' '.join(argv)} exited {status}: {errors.read_text()[:500]}")
    counts = count_rows(output, {dotted(oid): dotted(oid) for oid in oids})
    walk = Walk(column, wall, usage.ru_utime, usage.ru_stime, counts[dotted(oids[0])])
    return walk, counts


def count_rows(output: Path, prefixes: Mapping[str, str]) -> dict[str, int]:
    """Lines of `-On -Oq` output (`.1.3.6...7.42 2`) under each prefix."""
    counts = dict.fromkeys(prefixes, 0)
    with output.open("rb") as lines:
        for line in lines:
            oid = line.split(b" ", 1)[0].decode()
            for name, prefix in prefixes.items():
                if oid.startswith(prefix + "."):
                    counts[name] += 1
    return counts


def walk_columns(
    target: str,
    community: str,
    max_repetitions: int,
    columns: Mapping[str, Sequence[int]],
) -> list[Walk]:
    """One snmpbulkwalk per column, sequentially, as an operator would fetch them."""
    with tempfile.TemporaryDirectory(prefix="bench-snmpbulkwalk-") as directory:
        return [
            run_walk(target, community, max_repetitions, name, [oid], Path(directory))[0]
            for name, oid in columns.items()
        ]


def one_root_only(
    target: str, community: str, max_repetitions: int, columns: Mapping[str, Sequence[int]]
) -> dict[str, int]:
    """Give one snmpbulkwalk every column at once: rows printed under each (only the first
    comes back with net-snmp 5.9, which walks a single root)."""
    with tempfile.TemporaryDirectory(prefix="bench-snmpbulkwalk-") as directory:
        _, counts = run_walk(
            target, community, max_repetitions, "all", list(columns.values()), Path(directory)
        )
    return {name: counts[dotted(oid)] for name, oid in columns.items()}
