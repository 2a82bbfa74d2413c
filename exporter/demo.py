"""`demo`: the simulated CUCM lab and the exporter against it, with no config to write."""

from __future__ import annotations

import tempfile
from pathlib import Path

from exporter.config import load_config
from exporter.daemon import Serving, run_daemon

__all__ = ["run_demo"]


async def run_demo(serving: Serving, control: str, interval: float, scheme: str) -> int:
    # The lab is only loaded when asked for.
    from exporter.lab import Lab
    from exporter.lab.cli import start_control

    host, _, port = control.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="cucm-demo-") as tmp, Lab() as lab:
        config_file = lab.write_exporter_config(
            Path(tmp) / "demo.yml", interval=interval, timeout=min(8.0, interval * 0.8)
        )
        config = load_config(config_file)
        control_runner = await start_control(lab, host, int(port))
        shown = f"{serving.listen.host or '127.0.0.1'}:{serving.listen.port}"
        first = lab.nodes()[0].name
        print(
            f"\nCUCM lab running: {', '.join(f'{n.cluster}/{n.name}' for n in lab.nodes())}\n"
            f"  landing page:  {scheme}://{shown}/\n"
            f"  metrics:       {scheme}://{shown}{serving.telemetry_path}\n"
            f"  try:           cucm-directory-exporter lab set-tls {first} 1.2 "
            f"--control http://{control}\n"
            f"                 (then watch cucm_tls_min_version change; Ctrl-C stops)\n",
            flush=True,
        )
        try:
            return await run_daemon(config, config_file, serving)
        finally:
            await control_runner.cleanup()
