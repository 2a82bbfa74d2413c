"""What one exposition costs to encode, per format: the part of a scrape the profile points at.

Reads an exposition a load run saved (`bench/results/load-*-metrics.txt`, OpenMetrics), turns it
back into metric families, and times prometheus_client's encoders on them in this process (the
median of `--repeat` encodings, CPU time). The daemon's own collection (CucmCollector building
the families) is not in these figures; the load run's profile has it.

    python -m bench.load_soak.encode bench/results/load-...-run1-metrics.txt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bench.processes import loadavg


class Frozen(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def encoders() -> dict[str, Callable[[CollectorRegistry], bytes]]:
    """What choose_encoder() hands /metrics for each Accept header (prometheus_client 0.26)."""
    return {
        "openmetrics 1.0.0, escaping=underscores (Prometheus 2.x's Accept)": partial(
            openmetrics.generate_latest, escaping=openmetrics.UNDERSCORES, version="1.0.0"
        ),
        "openmetrics 1.0.0, escaping=allow-utf-8": partial(
            openmetrics.generate_latest, escaping=openmetrics.ALLOWUTF8, version="1.0.0"
        ),
        "text 0.0.4": text_latest,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("exposition", type=Path)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    text = args.exposition.read_text()
    families = list(text_string_to_metric_families(text))  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(Frozen(families))
    samples = sum(len(f.samples) for f in families)
    print(f"{args.exposition}: {len(families)} families, {samples} samples; loadavg {loadavg()}")
    for name, encode in encoders().items():
        encode(registry)  # warm
        times = []
        for _ in range(args.repeat):
            start = time.process_time()
            body = encode(registry)
            times.append(time.process_time() - start)
        median = statistics.median(times)
        print(
            f"  {name:<66} {1000 * median:7.1f} ms  {1e6 * median / samples:5.1f} us/sample  "
            f"{len(body) / 1024:5.0f} KiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
