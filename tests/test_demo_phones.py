"""The demo's walk-through of per-phone truth (README, "Walk-through"): its `try:`, `phones:` and
`workaround:` lines run as printed, from another directory, without the venv on PATH."""

from __future__ import annotations

import csv
import io
import shlex
import subprocess
import sys
from pathlib import Path

from tests.test_cli import free_port

ENV = {"PATH": "/usr/bin:/bin"}


def shell(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", line], capture_output=True, text=True, timeout=120, cwd=cwd, env=ENV
    )


def rows(line: str, cwd: Path) -> list[dict[str, str]]:
    done = shell(line, cwd)
    assert done.returncode in (0, 1, 3), done.stderr  # the report's exit codes
    return list(csv.DictReader(io.StringIO(done.stdout)))


def test_the_walk_through_lines_run_as_printed(tmp_path: Path) -> None:
    entry_point = Path(sys.executable).parent / "cucm-directory-exporter"
    demo = subprocess.Popen(
        [str(entry_point), "demo", "--web.listen-address", "127.0.0.1:0",
         "--lab.control-address", f"127.0.0.1:{free_port()}", "--log.level", "warn"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path, env=ENV,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        printed: dict[str, str] = {}
        while "workaround" not in printed:
            line = demo.stdout.readline()
            assert line, "the demo ended before printing its banner"
            label, _, rest = line.strip().partition(":")
            if label in ("try", "phones", "workaround"):
                printed[label] = rest.strip()

        assert rows(printed["phones"], tmp_path) == []  # nothing broken before the change
        steer = subprocess.run(shlex.split(printed["try"]), capture_output=True, text=True,
                               timeout=60, cwd=tmp_path, env=ENV)  # fmt: skip
        assert steer.returncode == 0, steer.stderr

        broken = rows(printed["phones"], tmp_path)
        nodes = {row["node"] for row in broken}
        assert nodes == {"cucm-pub", "cucm-sub1"}  # sub1's phones list cucm-pub as a TVS
        assert {row["when"] for row in broken} == {"now"}

        done = shell(printed["workaround"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count('"directory": "http_service"') == sum(
            1 for row in broken if row["node"] == "cucm-pub"
        )
        still = rows(printed["phones"], tmp_path)
        assert still == [row for row in broken if row["node"] == "cucm-sub1"]
    finally:
        demo.terminate()
        demo.communicate(timeout=30)
