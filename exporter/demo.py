"""`demo`: the simulated CUCM lab and the exporter against it, with no config to write."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from exporter.config import load_config
from exporter.daemon import Daemon, Serving, run_daemon

__all__ = ["run_demo", "self_command"]


def self_command() -> list[str]:
    """How to run this same program again: the entry point as it was started, or the
    interpreter with `-m exporter` (so the printed `try:` line works where it was printed)."""
    started = Path(sys.argv[0])
    if started.name == "__main__.py":
        return [sys.executable, "-m", "exporter"]
    if started.is_file() and os.access(started, os.X_OK):
        return [str(started.resolve())]
    return [sys.executable, "-m", "exporter"]


async def run_demo(
    serving: Serving, control: str, interval: float, scheme: str, inventory: str = "snmp"
) -> int:
    # The lab is only loaded when asked for.
    import yaml

    from exporter.lab import Lab
    from exporter.lab.cli import start_control
    from exporter.lab.risport import risport_exporter_config

    host, _, port = control.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="cucm-demo-") as tmp, Lab() as lab:
        # Per-phone verdicts from the phones' own files, so the walk-through can cover them.
        data = lab.exporter_config(
            interval=interval, timeout=min(8.0, interval * 0.8), phoneconfig=True
        )
        if inventory != "snmp":
            data = risport_exporter_config(data, lab.ca_file, inventory, interval=interval)
        config_file = Path(tmp) / "demo.yml"
        config_file.write_text(yaml.safe_dump(data, sort_keys=False))
        config = load_config(config_file)
        try:
            control_runner = await start_control(lab, host, int(port))
        except OSError as error:
            print(f"error: the lab's control API cannot listen on {control}: {error.strerror}",
                  file=sys.stderr)  # fmt: skip
            return 1
        first = lab.nodes()[0].name
        steer = shlex.join([*self_command(), "lab", "set-tls", first, "1.2"])
        phones = shlex.join([*self_command(), "check", "--config.file", str(config_file)])
        phones += " --phones csv"
        # The operator's fix for the first node's broken phones: subscribe them to the HTTP
        # directory service (the list's column 3 is the device name, column 2 the node).
        subscribe = shlex.join([*self_command(), "lab", "phone-config", "--directory",
                                "http_service", "--control", f"http://{control}"])  # fmt: skip
        workaround = (
            f"{phones} 2>/dev/null | awk -F, 'NR > 1 && $2 == \"{first}\" {{print $3}}' "
            f"| xargs -r {subscribe}"
        )

        def banner(daemon: Daemon) -> None:
            shown = f"{serving.listen.host or '127.0.0.1'}:{daemon.port}"
            print(
                f"\nCUCM lab running: {', '.join(f'{n.cluster}/{n.name}' for n in lab.nodes())}\n"
                f"  landing page:  {scheme}://{shown}/\n"
                f"  metrics:       {scheme}://{shown}{serving.telemetry_path}\n"
                f"  try:           {steer} --control http://{control}\n"
                f"                 (then watch cucm_tls_min_version change; Ctrl-C stops)\n"
                f"  phones:        {phones}\n"
                "                 (the phones broken now, one row each: README, Walk-through)\n"
                f"  workaround:    {workaround}\n",
                flush=True,
            )

        try:
            return await run_daemon(config, config_file, serving, on_ready=banner)
        finally:
            await control_runner.cleanup()
