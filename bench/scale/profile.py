"""Where a /metrics scrape at full scale spends its time: py-spy on the running daemon.

    .venv/bin/pip install py-spy   # not a project dependency
    .venv/bin/python -m bench.scale.profile --scrapes 15

Starts the lab and the daemon as part 2 does, waits for every node's results, then samples the
daemon with `py-spy record` (raw collapsed stacks, idle excluded, so samples are CPU) while it
serves `--scrapes` scrapes. Writes `bench/results/scale-profile-scrape.txt` and prints the
functions with the largest inclusive and self shares.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.processes import exit_on_signals
from bench.report import RESULTS
from bench.scale import configs, render
from bench.scale.processes import Daemon, lab_process, write_config

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 200  # samples per second


def top_functions(raw: Path, count: int) -> str:
    """Inclusive and self shares per function (file:line dropped) from py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += int(samples)
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            inclusive[frame] += int(samples)
    lines = [f"{total} samples", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in inclusive.most_common(count)]
    lines.append("self:")
    lines += [f"  {100 * n / total:5.1f}% {f}" for f, n in own.most_common(count)]
    return "\n".join(lines)


def profile_scrapes(daemon: Daemon, scrapes: int, out: Path) -> None:
    command = [str(PY_SPY), "record", "-p", str(daemon.pid), "-r", str(RATE)]
    command += ["-f", "raw", "-o", str(out), "--nonblocking"]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy attaches
        for _ in range(scrapes):
            daemon.get("/metrics")
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        recorder.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--scrapes", type=int, default=15)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    exit_on_signals()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scale-profile-scrape.txt"
    with lab_process(100, 10, args.phones, RESULTS) as lab:
        q = render.QUIET_INTERVAL
        document = configs.all_probes(lab.base_config(), args.concurrency, q, q, q)
        config = write_config(document, RESULTS / "scale-profile.yml")
        with Daemon(config, RESULTS / "scale-daemon-profile.log") as daemon:
            render.wait_for_all_results(daemon, lab.nodes, render.FIRST_ROUND_LIMIT)
            profile_scrapes(daemon, args.scrapes, out)
    print(top_functions(out, args.top))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
