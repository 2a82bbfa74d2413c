"""The command line as a Prometheus user expects it: real subcommands in --help, help for every
flag, a version block, one-line errors with exit 2, a telemetry path that hides nothing, and a
demo on loopback that reports a taken port in one line. Run as a process, as people run it."""

from __future__ import annotations

import re
import shlex
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import exporter
from tests.conftest import run_exporter as run


def test_help_lists_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    for command in ("run", "check", "demo", "lab"):
        assert re.search(rf"^\s+{command}\s+\S", done.stdout, re.MULTILINE), command


@pytest.mark.parametrize("command", ["run", "check", "demo"])
def test_every_flag_has_help(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0
    options = done.stdout.split("options:", 1)[1]
    # Each flag line is followed by its help text on the same line or the next one.
    flags = re.findall(r"^  (-[-\w.]+(?:[ ,][^\n]*)?)\n?( {10,}\S.*)?", options, re.MULTILINE)
    assert flags
    for line, following in flags:
        described = len(line.split("  ")) > 1 and line.split("  ")[-1].strip()
        assert described or following, f"{command}: {line!r} has no help text"


def test_version_is_a_block() -> None:
    done = run("--version")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"cucm-directory-exporter, version {exporter.__version__} (revision:"
    )
    fields = {line.split(":", 1)[0].strip() for line in lines[1:]}
    assert {"build date", "python version", "openssl version", "platform"} <= fields
    assert ssl.OPENSSL_VERSION in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--web.telemetry-path", "/"], "would hide the exporter's own / page"),
        (["--web.telemetry-path", "/probe"], "would hide the exporter's own /probe page"),
        (["--web.telemetry-path", "/-/healthy"], "would hide"),
        (["--web.telemetry-path", "metrics"], "expected an absolute path"),
        (["--web.listen-address", "nowhere"], "expected [host]:port"),
        (["--log.level", "loud"], "invalid choice: 'loud'"),
        (["demo", "--probe.interval", "0"], "expected seconds, above 0"),
        (["check", "--assume-min-version", "cucm-pub=2.0"], "invalid choice: '2.0'"),
    ],
)
def test_bad_flag_values_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_demo_reports_a_taken_port_in_one_line_and_no_banner(taken_port: int) -> None:
    done = run("demo", "--web.listen-address", f"127.0.0.1:{taken_port}", "--log.format", "logfmt",
               "--lab.control-address", "127.0.0.1:0", timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert "CUCM lab running" not in done.stdout
    errors = [line for line in done.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1
    assert f"cannot listen on 127.0.0.1:{taken_port}" in errors[0]
    assert "Traceback" not in done.stderr


def test_demo_reports_a_taken_control_port_in_one_line(taken_port: int) -> None:
    done = run("demo", "--web.listen-address", "127.0.0.1:0",
               "--lab.control-address", f"127.0.0.1:{taken_port}", timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: the lab's control API cannot listen on 127.0.0.1:{taken_port}")
    )
    assert "Traceback" not in done.stderr


def test_the_try_line_runs_as_printed(tmp_path: Path) -> None:
    """Started by its entry point (as `make demo` does), the demo prints a `try:` command that
    works from any directory, without the venv on PATH."""
    entry_point = Path(sys.executable).parent / "cucm-directory-exporter"
    demo = subprocess.Popen(
        [str(entry_point), "demo", "--web.listen-address", "127.0.0.1:0",
         "--lab.control-address", f"127.0.0.1:{free_port()}", "--log.level", "warn"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        line = ""
        while "try:" not in line:
            line = demo.stdout.readline()
            assert line, "the demo ended before printing its banner"
        command = shlex.split(line.split("try:", 1)[1])
        assert Path(command[0]).is_absolute()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={"PATH": "/usr/bin:/bin"})  # fmt: skip
        assert done.returncode == 0, done.stderr
    finally:
        demo.terminate()
        demo.communicate(timeout=30)  # reads what is left and closes the pipe


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_demo_listens_on_loopback_by_default() -> None:
    done = run("demo", "--help")
    assert "(default 127.0.0.1:10027)" in " ".join(done.stdout.split())
