"""`check`: one round of every probe on every node, read as a change-window report."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Iterable

from exporter.catalogue import load_catalogue
from exporter.config import ExporterConfig
from exporter.probes import BUILTIN_PROBES, Key, ProbeJob, ProbeRunner, ProbeSpec, targets
from exporter.report.model import WhatIf
from exporter.results import ProbeRun

__all__ = ["probe_everything", "run_check"]


def run_check(
    config: ExporterConfig,
    *,
    output_format: str,
    what_if: WhatIf | None = None,
    specs: Iterable[ProbeSpec] = BUILTIN_PROBES,
    phones_format: str | None = None,
) -> int:
    """Probe, print the report on stdout, and return its exit code. With `phones_format`
    (csv, json), stdout gets the phones to act on instead (exporter/report/phones.py); the
    exit code is the report's all the same."""
    # Only `check` draws on a terminal: the daemon need not carry rich in memory.
    from rich.console import Console

    from exporter.report import as_json, build_report, render_phones, render_text
    from exporter.report.phones import PhoneLine

    specs = tuple(specs)
    console = Console(stderr=True)
    runs = asyncio.run(probe_everything(config, specs, show_progress=console.is_terminal))
    phones: list[PhoneLine] | None = [] if phones_format else None
    catalogue = load_catalogue(config.catalogue)
    report = build_report(config, runs, catalogue, what_if, specs, phones=phones)
    if phones is not None and phones_format:
        sys.stdout.write(render_phones(phones, phones_format))
    elif output_format == "json":
        print(json.dumps(as_json(report), indent=2))
    else:
        # Piped into a file or a pager, rich would wrap at 80 columns: give it room instead.
        render_text(report, Console() if sys.stdout.isatty() else Console(width=240))
    return report.exit_code


async def probe_everything(
    config: ExporterConfig, specs: Iterable[ProbeSpec], *, show_progress: bool
) -> list[ProbeRun]:
    """One run of every applicable probe on every node, bounded like the scheduler's runs."""
    from rich.console import Console
    from rich.progress import Progress

    specs = tuple(specs)
    done: dict[Key, ProbeRun] = {}
    runner = ProbeRunner(specs, latest=lambda: done)
    limit = asyncio.Semaphore(config.scheduler.max_concurrent_probes)
    jobs = targets(config, specs)
    totals = Counter((job.key[0], job.key[1]) for job in jobs)
    remaining = totals.copy()
    failed: Counter[tuple[str, str]] = Counter()
    stderr = Console(stderr=True)
    with Progress(transient=True, disable=not show_progress, console=stderr) as bar:
        task = bar.add_task("probing", total=len(jobs))

        async def one(job: ProbeJob) -> ProbeRun:
            async with limit:
                run = await runner.run_job(config, job)
            bar.update(task, advance=1, description="/".join(job.key))
            node = (job.key[0], job.key[1])
            remaining[node] -= 1
            failed[node] += not run.success
            if not show_progress and remaining[node] == 0:
                # Not a terminal (CI, a pipe): a line per finished node instead of a bar.
                print(
                    f"probed {node[0]}/{node[1]}: {failed[node]} of {totals[node]} probes failed",
                    file=sys.stderr,
                    flush=True,
                )
            return run

        # Probes that read the inventory (phoneconfig) run once the others have finished.
        first = [job for job in jobs if not job.spec.reads_inventory]
        then = [job for job in jobs if job.spec.reads_inventory]
        try:
            runs = list(await asyncio.gather(*(one(job) for job in first)))
            done.update({(r.cluster, r.node, r.probe): r for r in runs})
            return runs + list(await asyncio.gather(*(one(job) for job in then)))
        finally:
            await runner.aclose()
