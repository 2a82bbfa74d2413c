"""Orchestrate the scale benchmark: a 1,000-node lab, the daemon against it, four questions.

Processes: the lab (`bench/labserver.py`, 100 clusters x 10 nodes, ~100 phones per node), the
exporter daemon (`cucm-directory-exporter`, a fresh one per measurement) and, in part 1,
prometheus-blackbox-exporter. This process only drives them and reads /proc; each is stopped
at the end, on errors too.

Parts (`--parts`, default all, in this order; `detect` changes lab nodes, so it comes last):

* `tls`: one TLS round over every node within a 60 s interval, per `max_concurrent_probes`
  in `--tls-sweep`, and blackbox_exporter's handshakes per CPU-second on the same lab;
* `render`: /metrics render time and size, and the daemon's memory, at ~100 and at ~10 phones
  per node (parts 2 and 3);
* `detect`: detection latency of a TLS policy change (part 4).
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from bench import blackbox
from bench.labserver import LabInfo, lab_process
from bench.options import Options, listed
from bench.options import parser as options_parser
from bench.processes import exit_on_signals
from bench.report import RESULTS, ROOT, environment, loadavg, utc_stamp, write_json
from bench.scale import blackbox_round, detect, render, tls_round

PARTS = ("tls", "render", "detect")
TLS_INTERVAL = 60.0
RENDER_GOAL_MS = 50.0
RSS_GOAL_MB = 150.0
PHONE_INDEPENDENCE = 0.15  # medians within 15% of each other count as "independent of phones"
IN_FLIGHT_PER_RUN = 4  # probes.tls.concurrency's default: handshakes in flight per node run


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = options_parser("bench.scale", __doc__)
    parser.add_argument("--parts", type=listed(str), default=PARTS, help="e.g. tls,render,detect")
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per cluster")
    parser.add_argument("--phones", type=int, default=100, help="phones per node (about)")
    parser.add_argument(
        "--small-phones", type=int, default=10, help="the render comparison's (0: skip that lab)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="scheduler.max_concurrent_probes for parts 2-4"
    )
    parser.add_argument(
        "--tls-sweep", type=listed(int), default=(4, 16), help="max_concurrent_probes, part 1"
    )
    parser.add_argument("--scrapes", type=int, default=100, help="text-format scrapes per lab")
    parser.add_argument(
        "--openmetrics-scrapes", type=int, default=20, help="scrapes with Prometheus' Accept"
    )
    parser.add_argument(
        "--rendered-scrapes",
        type=int,
        default=20,
        help="scrapes spaced so that each one renders (the goal's figure), in text and as "
        "Prometheus asks (OpenMetrics, gzip)",
    )
    parser.add_argument("--detect-nodes", type=int, default=5)
    parser.add_argument("--detect-spread", type=float, default=11.0, help="seconds between changes")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between /metrics polls")
    args = parser.parse_args(argv)
    args.parts = tuple(p for p in PARTS if p in args.parts)
    if not args.parts:
        parser.error(f"--parts: pick from {', '.join(PARTS)}")
    if "detect" in args.parts and not 0 < args.detect_nodes <= args.clusters * args.nodes:
        parser.error(f"--detect-nodes: 1 to {args.clusters * args.nodes} (the lab's nodes)")
    return args


# --- parts -------------------------------------------------------------------------------------


def part_tls(lab: LabInfo, options: Options) -> dict[str, Any]:
    ours, theirs = [], []
    for concurrency in options.tls_sweep:
        ours.append(tls_round.measure(lab, concurrency, TLS_INTERVAL, RESULTS))
        _say(f"tls P={concurrency}: {tls_round.as_row(ours[-1])}")
        theirs.append(blackbox_round.measure(lab, concurrency * IN_FLIGHT_PER_RUN, RESULTS))
        _say(f"blackbox x{concurrency * IN_FLIGHT_PER_RUN}: {asdict(theirs[-1])}")
    return {"ours": [asdict(r) for r in ours], "blackbox": [asdict(r) for r in theirs]}


def part_render(lab: LabInfo, options: Options) -> dict[str, Any]:
    scrapes = {
        ("text", 0.0): options.scrapes,
        ("openmetrics", 0.0): options.openmetrics_scrapes,
        ("text", render.RENDER_SPACING): options.rendered_scrapes,
        ("prometheus", render.RENDER_SPACING): options.rendered_scrapes,
    }
    result = render.measure(lab, options.concurrency, scrapes, RESULTS)
    _say(f"render {lab.phones_per_node} phones/node: {render.as_rows(result)}")
    return asdict(result)


def _rendered(scale: dict[str, Any]) -> dict[str, Any] | None:
    """The text-format scrapes of a render result that each rendered /metrics (spaced past
    the body cache); else, for results without them, the back-to-back ones."""
    text = [s for s in scale.get("scrapes", []) if s["format"] == "text"]
    return max(text, key=lambda s: s.get("spacing_seconds", 0.0), default=None)


def part_detect(lab: LabInfo, options: Options) -> dict[str, Any]:
    result = detect.measure(
        lab,
        options.concurrency,
        options.detect_nodes,
        options.detect_spread,
        options.poll,
        RESULTS,
    )
    _say(f"detect: {detect.as_rows(result)}")
    return asdict(result)


def run_parts(options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    config = RESULTS / f"scale-lab-{options.phones}.yml"
    with lab_process(options.clusters, options.nodes, config, phones=options.phones) as lab:
        results["lab"] = asdict(lab) | {"config": str(lab.config)}
        _say(
            f"lab up: {len(lab.nodes)} nodes, {lab.phones_per_node} phones/node, "
            f"{lab.start_seconds:g} s, load {loadavg()}"
        )
        if "tls" in options.parts:
            results["tls"] = timed(part_tls, lab, options)
        if "render" in options.parts:
            results["render"] = [timed(part_render, lab, options)]
        if "detect" in options.parts:
            results["detect"] = timed(part_detect, lab, options)
    if "render" in options.parts and options.small_phones:
        config = RESULTS / f"scale-lab-{options.small_phones}.yml"
        phones = options.small_phones
        with lab_process(options.clusters, options.nodes, config, phones=phones) as small:
            results["render"].append(timed(part_render, small, options))
    return results


def timed(part: Any, lab: LabInfo, options: Options) -> dict[str, Any]:
    """Run one part; a part that fails is recorded as such and the others still run."""
    started, load = time.perf_counter(), loadavg()
    try:
        result: dict[str, Any] = part(lab, options)
    except Exception as error:
        _say(f"{part.__name__} failed: {error!r}")
        result = {"error": repr(error)}
    result["part_seconds"] = round(time.perf_counter() - started, 1)
    result["part_loadavg_start"] = load
    return result


# --- report ------------------------------------------------------------------------------------


def verdicts(results: Mapping[str, Any], options: Options) -> list[str]:
    lines = [f"{name}: FAILED {part['error']}" for name, part in _parts(results) if "error" in part]
    for ours in results.get("tls", {}).get("ours", []):
        fits = not ours["overran"] and not ours["skipped_warnings"] and not ours["failed_runs"]
        lines.append(
            f"1. TLS round, max_concurrent_probes={ours['max_concurrent_probes']}: "
            f"{ours['wall_seconds']:.1f} s of a {ours['interval_seconds']:g} s interval, "
            f"{ours['handshakes_per_cpu_second']:.0f} handshakes/CPU-s "
            f"({'met' if fits else 'NOT met'})"
        )
    for bb in results.get("tls", {}).get("blackbox", []):
        lines.append(
            f"   blackbox_exporter at {bb['concurrency']} in flight: "
            f"{bb['handshakes_per_cpu_second']:.0f} handshakes/CPU-s"
        )
    renders = [r for r in results.get("render", []) if _rendered(r)]
    for scale in renders:
        text = _rendered(scale)
        assert text is not None
        lines.append(
            f"2. /metrics at {scale['phones_per_node']} phones/node, each scrape rendered: median "
            f"{text['median_ms']:.0f} ms, p99 {text['p99_ms']:.0f} ms, "
            f"{text['bytes'] / 1e6:.1f} MB (goal median < {RENDER_GOAL_MS:g} ms: "
            f"{'met' if text['median_ms'] < RENDER_GOAL_MS else 'NOT met'})"
        )
        lines.append(
            f"3. RSS at {scale['phones_per_node']} phones/node: {scale['rss_mb_after_scrapes']:.0f}"
            f" MB, peak {scale['peak_rss_mb']:.0f} MB (goal < {RSS_GOAL_MB:g} MB: "
            f"{'met' if scale['peak_rss_mb'] < RSS_GOAL_MB else 'NOT met'})"
        )
    if len(renders) == 2:
        medians = [stats["median_ms"] for r in renders if (stats := _rendered(r))]
        ratio = medians[0] / medians[1]
        independent = abs(ratio - 1) <= PHONE_INDEPENDENCE
        lines.append(
            f"2. render time big/small lab: {ratio:.2f}x "
            f"({'independent of phones' if independent else 'DEPENDS on phones'})"
        )
    if "detect" in results:
        for found in results["detect"].get("detections", []):
            lines.append(
                f"4. {found['cluster']}/{found['node']}: stored after {found['stored_seconds']:.1f}"
                f" s, seen after {found['seen_seconds']:.1f} s; goal <= "
                f"{found['goal_seconds']:.1f} s ({'met' if found['met'] else 'NOT met'})"
            )
    return lines


def _parts(results: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in PARTS:
        found = results.get(name)
        for part in found if isinstance(found, list) else [found] if found else []:
            yield name, part


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _noting_load() -> Iterator[dict[str, str]]:
    seen = {"loadavg_start": loadavg()}
    yield seen
    seen["loadavg_end"] = loadavg()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    exit_on_signals()  # a SIGTERM must still stop the lab, the daemon and blackbox
    started = time.perf_counter()
    with _noting_load() as load:
        results = run_parts(options)
    report: dict[str, Any] = {
        "environment": environment(
            openssl=ssl.OPENSSL_VERSION, blackbox_exporter=blackbox.version_string()
        ),
        "options": vars(options),
        "command": " ".join(["python -m bench.scale", *(argv or sys.argv[1:])]),
        "total_seconds": round(time.perf_counter() - started, 1),
        **load,
        "results": results,
        "verdicts": verdicts(results, options),
    }
    print("\n".join(report["verdicts"]))
    path = write_json(RESULTS / f"scale-{utc_stamp()}.json", report)
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0
