"""EXPERIMENT, not the exporter as shipped: the daemon with a recommended change patched in.

    python -m bench.scale.experiment render-cache -- --config.file X --web.listen-address Y

Patches the imported exporter modules in this process only (nothing under exporter/ changes),
then runs `exporter.cli.main` with the arguments after `--`. `python -m bench.scale --parts
render --experiment render-cache` measures it exactly as it measures the real daemon.

render-cache (since shipped as exporter/exposition.py): /metrics renders each probe run's
sample lines once, when the run is first scraped, and keeps them (as text) until the run is
replaced in the store; the SNMP/phone
families are kept per cluster, keyed like `CucmCollector._phone_summary`. A scrape then only
joins cached strings family by family. Profiles of the real daemon (bench/README.md) show that
building GaugeMetricFamily samples and formatting them (prometheus_client) is ~98% of a scrape,
repeated for every unchanged result. The first scrape also compares its output with the
original collector's and logs whether the cucm_ lines are identical.

memory-top: tracemalloc from the start (one frame), and the largest live allocation sites in
the daemon's log on scrapes (at most every 30 s). Slows the daemon; for finding, not measuring.

census: once, on the first scrape after every node has all three results, the bytes reachable
from each part of the daemon (config, stored results, exposition cache, cached body, the SNMP
probe with its engines...; each object counted for the first part that reaches it), the most
numerous object types and pymalloc's statistics, in the daemon's log. Costs a second or two,
once: the figures that follow it are the daemon's own.
"""

from __future__ import annotations

import logging
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector

import exporter.cli
from exporter.collector import CucmCollector
from exporter.results import ProbeRun
from exporter.server import ExporterApp
from exporter.store import Key

log = logging.getLogger("bench.scale.experiment")
Fragments = dict[str, str]  # family name -> its sample lines, rendered
SNMP_FAMILY_PREFIXES = ("cucm_phones", "cucm_node_", "cucm_snmp_")


class _Fixed(Collector):
    """A registry's worth of ready-made families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _encode(families: Iterable[Metric], encoder: Callable[[Any], bytes]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return encoder(registry).decode()


def split_families(text: str) -> tuple[list[str], dict[str, str], Fragments]:
    """Exposition text -> (family order, header lines per family, sample lines per family)."""
    order: list[str] = []
    headers: dict[str, str] = {}
    samples: Fragments = {}
    current = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("# EOF"):
            continue
        if line.startswith("# "):
            name = line.split(" ", 3)[2]
            if name != current:
                current = name
                order.append(name)
            headers[name] = headers.get(name, "") + line
        else:
            samples[current] = samples.get(current, "") + line
    return order, headers, samples


def _format_name(encoder: Callable[[Any], bytes]) -> str:
    """choose_encoder hands out partials of the two generate_latest: tell them apart."""
    function = getattr(encoder, "func", encoder)
    return f"{function.__module__} {getattr(encoder, 'keywords', '')}"


class FragmentCollector(CucmCollector):
    """CucmCollector whose /metrics output is assembled from per-run rendered text."""

    instance: FragmentCollector | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runs: dict[Key, tuple[ProbeRun, Fragments]] = {}
        self._clusters: dict[str, tuple[tuple[int, ...], Fragments]] = {}
        self._headers: dict[tuple[int, str], tuple[list[str], dict[str, str]]] = {}
        FragmentCollector.instance = self
        self.fast = True

    def collect(self) -> Iterator[Metric]:
        if not self.fast:
            yield from super().collect()
            return
        yield from self.self_families()  # the rest comes pre-rendered from render()

    def render(self, encoder: Callable[[Any], bytes]) -> str:
        snapshot = self._store.snapshot()
        order, headers = self._family_headers(encoder)
        runs = [self._run_fragments(key, run) for key, run in sorted(snapshot.items())]
        clusters = [
            self._cluster_fragments(cluster, snapshot)
            for cluster in sorted({key[0] for key in snapshot})
        ]
        for key in set(self._runs) - set(snapshot):
            del self._runs[key]
        parts = []
        for name in order:
            parts.append(headers[name])
            sources = clusters if name.startswith(SNMP_FAMILY_PREFIXES) else runs
            parts.extend(fragments.get(name, "") for fragments in sources)
        return "".join(parts)

    def _family_headers(self, encoder: Callable[[Any], bytes]) -> tuple[list[str], dict[str, str]]:
        """HELP/TYPE of every cucm_ family (they name the interval: per config and format)."""
        key = (id(self._state.config), _format_name(encoder))
        if key not in self._headers:
            empty = self._families({})
            order, headers, _ = split_families(_encode(empty, encoder))
            self._headers[key] = (order, headers)
        return self._headers[key]

    def _families(self, snapshot: Mapping[Key, ProbeRun]) -> list[Metric]:
        return [
            *self._probe_families(snapshot),
            *self._tls_families(snapshot),
            *self._directory_families(snapshot),
            *self._snmp_families(snapshot),
        ]

    def _run_fragments(self, key: Key, run: ProbeRun) -> Fragments:
        cached = self._runs.get(key)
        if cached is not None and cached[0] is run:
            return cached[1]
        one = {key: run}
        families = [
            *self._probe_families(one),
            *self._tls_families(one),
            *self._directory_families(one),
        ]
        _, _, fragments = split_families(_encode(families, generate_latest))
        self._runs[key] = (run, fragments)
        return fragments

    def _cluster_fragments(self, cluster: str, snapshot: Mapping[Key, ProbeRun]) -> Fragments:
        mine = {key: run for key, run in snapshot.items() if key[0] == cluster}
        identity = (
            id(self._state.config),
            *(id(run) for _, run in sorted(mine.items()) if run.probe in ("snmp", "tls")),
        )
        cached = self._clusters.get(cluster)
        if cached is not None and cached[0] == identity:
            return cached[1]
        _, _, fragments = split_families(_encode(self._snmp_families(mine), generate_latest))
        self._clusters[cluster] = (identity, fragments)
        return fragments


_checked: set[str] = set()  # the formats whose first scrape was compared


async def fast_metrics(self: ExporterApp, request: web.Request) -> web.Response:
    """ExporterApp.metrics with the cached cucm_ part followed by the rest (self, process)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    collector = FragmentCollector.instance
    assert collector is not None
    body = collector.render(encoder).encode() + encoder(self._registry)
    _compare_once(collector, body, encoder)
    return web.Response(body=body, headers={"Content-Type": content_type})


def _compare_once(
    collector: FragmentCollector, body: bytes, encoder: Callable[[Any], bytes]
) -> None:
    """The first scrape per format with results: are the cucm_ lines the original's?"""
    if _format_name(encoder) in _checked or not collector._store.snapshot():
        return
    _checked.add(_format_name(encoder))
    collector.fast = False
    try:
        original = _encode(collector.collect(), encoder)
    finally:
        collector.fast = True
    ours, theirs = _cucm_lines(body.decode()), _cucm_lines(original)
    log.warning(
        "render-cache: %s: cucm_ lines identical to the original collector's: %s (%d lines)",
        _format_name(encoder),
        ours == theirs,
        len(theirs),
    )


def _cucm_lines(text: str) -> list[str]:
    """Lines of cucm_ families: samples, and their HELP/TYPE/UNIT comments."""
    kept = []
    for line in text.splitlines():
        words = line.split(" ", 3)
        name = words[2] if line.startswith("# ") and len(words) > 2 else line
        if name.startswith("cucm_"):
            kept.append(line)
    return kept


def patch_render_cache() -> None:
    # run_daemon looks the name up in its module when it builds the registry.
    vars(exporter.cli)["CucmCollector"] = FragmentCollector
    ExporterApp.metrics = fast_metrics  # type: ignore[method-assign]


_original_metrics = ExporterApp.metrics
_last_dump = [0.0]


async def metrics_with_allocations(self: ExporterApp, request: web.Request) -> web.Response:
    """ExporterApp.metrics, plus tracemalloc's largest live allocation sites in the log
    (at most every 30 s; the first scrape after a full round shows what the results hold)."""
    response = await _original_metrics(self, request)
    if time.monotonic() - _last_dump[0] > 30:
        _last_dump[0] = time.monotonic()
        snapshot = tracemalloc.take_snapshot()
        total = sum(stat.size for stat in snapshot.statistics("filename"))
        log.warning("memory-top: %.1f MiB traced", total / 2**20)
        for stat in snapshot.statistics("lineno")[:25]:
            log.warning(
                "memory-top: %8.1f MiB %8d blocks  %s",
                stat.size / 2**20,
                stat.count,
                stat.traceback[0],
            )
    return response


def patch_memory_top() -> None:
    # One frame per allocation: enough to name the line, and the cheapest tracemalloc gets.
    tracemalloc.start(1)
    ExporterApp.metrics = metrics_with_allocations  # type: ignore[method-assign]


_census_done = [False]


def _deep_size(root: object, seen: set[int]) -> tuple[int, int]:
    """Bytes and objects reachable from `root` not already in `seen` (modules and types
    excluded: they are the imports)."""
    import gc
    import types

    total = count = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, types.FunctionType)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        count += 1
        stack.extend(gc.get_referents(obj))
    return total, count


async def metrics_with_census(self: ExporterApp, request: web.Request) -> web.Response:
    """ExporterApp.metrics, plus (once, on the first scrape with every result) the bytes
    reachable from each part of the daemon, in the log."""
    import collections
    import gc

    response = await _original_metrics(self, request)
    snapshot = self._store.snapshot()
    if _census_done[0] or len(snapshot) < 3000:
        return response
    _census_done[0] = True
    gc.collect()
    seen: set[int] = set()
    by_type: collections.Counter[str] = collections.Counter()
    objects = gc.get_objects()
    for obj in objects:
        by_type[type(obj).__qualname__] += 1
    roots: dict[str, object] = {
        "config": self._state.config if self._state else None,
        "store latest": dict(snapshot),
        "store history": self._store.history(),
        "exposition cache": self._exposition,
        "body cache": self._bodies,
    }
    for obj in objects:
        name = type(obj).__qualname__
        if name in (
            "SnmpProbe",
            "AsyncIOScheduler",
            "SnmpEngine",
            "ProbeRunner",
            "DirectoryProbe",
            "TlsProbe",
            "CucmCollector",
            "ProbeScheduler",
        ):
            roots.setdefault(f"{name} #{id(obj)}", obj)
    for name, root in roots.items():
        size, count = _deep_size(root, seen)
        log.warning("census: %-40s %8.1f MiB %9d objects", name, size / 2**20, count)
    for name, count in by_type.most_common(25):
        log.warning("census: type %-30s %9d", name, count)
    sys._debugmallocstats()
    return response


def patch_census() -> None:
    ExporterApp.metrics = metrics_with_census  # type: ignore[method-assign]


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "census": patch_census,
    "render-cache": patch_render_cache,
    "memory-top": patch_memory_top,
}


def main(argv: Sequence[str]) -> int:
    name, separator, *rest = argv
    if name not in EXPERIMENTS or separator != "--":
        print(f"usage: experiment {{{','.join(EXPERIMENTS)}}} -- DAEMON-ARGS", file=sys.stderr)
        return 2
    EXPERIMENTS[name]()
    log.warning("EXPERIMENT %s: the exporter runs patched", name)
    return exporter.cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
