"""Sampling the daemon with py-spy (from the venv) while it works, and summarising the stacks.

py-spy reads the daemon's memory from outside (`--nonblocking`: without pausing it), so the
daemon runs unmodified; the sampling still costs a little CPU, which is why a profiled run is
marked as such and its figures are not the benchmark's.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.processes import stop

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 50  # samples per second: enough over a minute, light on a 2-core machine


@dataclass(frozen=True)
class Frame:
    function: str
    inclusive_percent: float  # of all samples, with a stack that contains it
    self_percent: float  # of all samples, at the top of the stack


@contextlib.contextmanager
def sampling(pid: int, seconds: float, output: Path) -> Iterator[None]:
    """py-spy records `pid` for `seconds` into `output` (collapsed stacks) during the block."""
    process = subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            f"--pid={pid}",
            f"--duration={max(1, round(seconds))}",
            f"--rate={RATE}",
            "--nonblocking",
            "--format=raw",
            f"--output={output}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
        process.wait(timeout=seconds + 60)  # it stops itself after --duration
    finally:
        stop(process)


@dataclass(frozen=True)
class Profile:
    samples: int
    by_inclusive: list[Frame]  # the functions the time is spent under
    by_self: list[Frame]  # the functions the time is spent in


def summarise(collapsed: Path, top: int = 25) -> Profile:
    """The `top` functions by inclusive and by self share, from py-spy's raw output.

    Each line is `frame;frame;...;frame count`, outermost first; a frame reads
    `function (file:line)`. Frames are merged per function (name and file, not line), so a
    function counts once per stack however many of its lines the stack holds.
    """
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(frame) for frame in stack.split(";")]
        for function in set(frames):
            inclusive[function] += count
        own[frames[-1]] += count

    def frame(name: str) -> Frame:
        return Frame(name, 100 * inclusive[name] / total, 100 * own[name] / total)

    return Profile(
        samples=total,
        by_inclusive=[frame(name) for name, _ in inclusive.most_common(top)],
        by_self=[frame(name) for name, _ in own.most_common(top)],
    )


def _function(frame: str) -> str:
    """`collect (exporter/collector.py:123)` -> `collect (exporter/collector.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.split("/work/main/", 1)[-1]
    return f"{name} ({path})" if path else name
