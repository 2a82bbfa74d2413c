"""Reading a few metric families out of a /metrics body of 100,000+ lines, cheaply.

Only the lines of the wanted families go through prometheus_client's parser (or none at all,
for plain values); parsing the whole body would cost this process seconds per scrape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples(body: bytes, names: Iterable[str]) -> list[Sample]:
    """Every sample of the families `names` (text format 0.0.4)."""
    prefixes = tuple(f"{name}{{" for name in names)
    wanted = [line for line in body.decode().splitlines() if line.startswith(prefixes)]
    found = []
    for family in text_string_to_metric_families("\n".join(wanted) + "\n"):
        found += [Sample(s.name, dict(s.labels), s.value) for s in family.samples]
    return found


@dataclass(frozen=True)
class ProbeRunInfo:
    """cucm_probe_* of one (cluster, node, probe): the last scheduled run."""

    cluster: str
    node: str
    probe: str
    started: float
    duration: float
    success: bool

    @property
    def ended(self) -> float:
        return self.started + self.duration


def probe_runs(body: bytes) -> dict[tuple[str, str, str], ProbeRunInfo]:
    """The bookkeeping of every scheduled run, by (cluster, node, probe)."""
    by_key: dict[tuple[str, str, str], dict[str, float]] = {}
    names = (
        "cucm_probe_last_run_timestamp_seconds",
        "cucm_probe_duration_seconds",
        "cucm_probe_success",
    )
    for sample in samples(body, names):
        key = (sample.labels["cluster"], sample.labels["node"], sample.labels["probe"])
        by_key.setdefault(key, {})[sample.name] = sample.value
    return {
        key: ProbeRunInfo(
            *key,
            started=values[names[0]],
            duration=values[names[1]],
            success=values[names[2]] == 1.0,
        )
        for key, values in by_key.items()
        if len(values) == len(names)
    }


def unlabelled(body: bytes, names: Iterable[str]) -> dict[str, float]:
    """The value of each unlabelled sample named in `names` (absent names are left out)."""
    wanted = {name.encode() for name in names}
    found: dict[str, float] = {}
    for line in body.splitlines():
        name, _, rest = line.partition(b" ")
        if name in wanted:
            found[name.decode()] = float(rest.split()[0])
    return found


def labelled_values(body: bytes, name: str) -> list[float]:
    """Every value of the metric `name`, whatever its labels."""
    prefix = name.encode() + b"{"
    return [
        float(line.rsplit(b"} ", 1)[1].split()[0])
        for line in body.splitlines()
        if line.startswith(prefix)
    ]
