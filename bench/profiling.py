"""Sampling a running process with py-spy, and summarising the stacks by function.

py-spy reads the daemon's memory from outside (`--nonblocking`: without pausing it), so the
daemon runs unmodified; the sampling still costs a little CPU, which is why a profiled run is
marked as such and its figures are not the benchmark's. py-spy is not a project dependency:
`.venv/bin/pip install py-spy`.

    python -m bench.profiling --pid PID --seconds 30   # any running daemon, e.g. at scale
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.processes import stop
from bench.report import RESULTS, ROOT, utc_stamp

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 50  # samples per second: enough over a minute, light on a 2-core machine
# The event loop, the entry point and aiohttp's plumbing hold every sample: not worth a line.
PLUMBING = ("(asyncio/", "(aiohttp/", "(cucm-directory-exporter)", "(exporter/cli.py)")


@dataclass(frozen=True)
class Frame:
    function: str
    inclusive_percent: float  # of all samples, with a stack that contains it
    self_percent: float  # of all samples, at the top of the stack


@dataclass(frozen=True)
class Profile:
    samples: int
    by_inclusive: list[Frame]  # the functions the time is spent under
    by_self: list[Frame]  # the functions the time is spent in


@contextlib.contextmanager
def sampling(pid: int, seconds: float, output: Path) -> Iterator[None]:
    """py-spy records `pid` for `seconds` into `output` (collapsed stacks) during the block."""
    process = subprocess.Popen(
        [
            *(str(PY_SPY), "record", f"--pid={pid}", f"--duration={max(1, round(seconds))}"),
            *(f"--rate={RATE}", "--nonblocking", "--format=raw", f"--output={output}"),
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
        return Frame(name, 100 * inclusive[name] / max(1, total), 100 * own[name] / max(1, total))

    return Profile(
        samples=total,
        by_inclusive=[frame(name) for name, _ in inclusive.most_common(top)],
        by_self=[frame(name) for name, _ in own.most_common(top)],
    )


def lines(profile: Profile, inclusive: int = 12, own: int = 8) -> list[str]:
    """The largest functions below the plumbing, by inclusive share, then by self share."""
    below = [f for f in profile.by_inclusive if not any(m in f.function for m in PLUMBING)]
    out = [f"{profile.samples} samples"]
    for title, frames in (("inclusive", below[:inclusive]), ("self", profile.by_self[:own])):
        out.append(f"by {title}:")
        out += [
            f"  {f.inclusive_percent:5.1f}% incl {f.self_percent:5.1f}% self  {f.function}"
            for f in frames
        ]
    return out


def _function(frame: str) -> str:
    """`f (/…/exporter/metrics/collector.py:123)` -> `f (exporter/metrics/collector.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"profile-{args.pid}-{utc_stamp()}.pyspy.txt"
    with sampling(args.pid, args.seconds, output):
        pass
    print("\n".join(lines(summarise(output), inclusive=30, own=30)))
    print(f"raw stacks: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
