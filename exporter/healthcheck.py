"""`cucm-directory-exporter healthcheck`: GET /-/healthy from the running exporter, the way the
container's HEALTHCHECK needs it (the image has no curl).

Where to ask follows the exporter's own flags: unless given on the command line, the listen
address and web config are read from the command line of the exporter process (PID 1 in a
container, /proc/1/cmdline), so a HEALTHCHECK keeps working when `--web.listen-address` or
`--web.config.file` (TLS) change. /-/healthy needs no basic auth. With TLS the exporter's
certificate is not verified: this asks whether our own process answers, not who it is, and the
certificate's name rarely covers the loopback address. A web config that requires client
certificates cannot be passed this way; point a probe with a client certificate at it instead.
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from exporter.config import ConfigError
from exporter.server import ListenAddress
from exporter.webconfig import load_web_config

__all__ = ["HealthTarget", "check_health", "run_healthcheck", "target_of_process"]

DEFAULT_LISTEN = ":10027"


@dataclass(frozen=True)
class HealthTarget:
    """Where the exporter listens and the web config file it serves with (None: plain HTTP)."""

    listen: ListenAddress
    web_config_file: Path | None


def run_healthcheck(
    pid: int, listen: ListenAddress | None, web_config_file: Path | None, timeout: float
) -> int:
    """The command: 0 when the exporter answers, else 1 and one line on stderr. `listen` and
    `web_config_file` given on the command line win over those of process `pid`."""
    if listen is not None:
        target = HealthTarget(listen, web_config_file)
    else:
        try:
            target = target_of_process(pid)
        except (OSError, ValueError) as error:
            print(f"healthcheck: cannot read the flags of process {pid}: {error}", file=sys.stderr)
            return 1
        if web_config_file is not None:
            target = HealthTarget(target.listen, web_config_file)
    problem = check_health(target, timeout)
    if problem is not None:
        print(f"healthcheck: {problem}", file=sys.stderr)
        return 1
    return 0


def target_of_process(pid: int, proc: Path = Path("/proc")) -> HealthTarget:
    """The listen address and web config of process `pid`, read from its command line; a
    relative --web.config.file is resolved against that process's working directory."""
    raw = (proc / str(pid) / "cmdline").read_bytes()
    argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    flags = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    flags.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN)
    flags.add_argument("--web.config.file", dest="web_config_file", type=Path)
    known, _ = flags.parse_known_args(argv[1:])
    web_config_file: Path | None = known.web_config_file
    if web_config_file is not None and not web_config_file.is_absolute():
        web_config_file = Path(os.readlink(proc / str(pid) / "cwd")) / web_config_file
    return HealthTarget(ListenAddress.parse(known.listen), web_config_file)


def check_health(target: HealthTarget, timeout: float) -> str | None:
    """None when GET /-/healthy answers 200; otherwise one line saying what went wrong."""
    host = target.listen.host
    if host in (None, "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        tls = (
            load_web_config(target.web_config_file).tls_server_config
            if target.web_config_file is not None
            else None
        )
    except ConfigError as error:
        return f"{target.web_config_file}: {'; '.join(error.problems)}"
    connection: http.client.HTTPConnection
    if tls is None:
        connection = http.client.HTTPConnection(host, target.listen.port, timeout=timeout)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            host, target.listen.port, timeout=timeout, context=context
        )
    scheme = "http" if tls is None else "https"
    where = f"{scheme}://{_authority(host, target.listen.port)}/-/healthy"
    try:
        connection.request("GET", "/-/healthy")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"{where}: {error or type(error).__name__}"
    finally:
        connection.close()
    return None if status == 200 else f"{where}: HTTP {status}"


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
