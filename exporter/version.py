"""What `--version` prints: a block in the shape of Prometheus' own binaries."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import ssl
import subprocess
from pathlib import Path

from exporter import __version__

__all__ = ["build_date", "revision", "version_block"]

DISTRIBUTION = "cucm-directory-exporter"


def revision() -> str:
    """The git commit of a checkout the package runs from; "unknown" for an installed copy
    (a wheel carries no revision, and guessing one would be worse than saying so)."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return "unknown"
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def build_date() -> str:
    """When this copy of the package was built into its environment (the wheel installed in
    the image, or the editable install of a checkout): its metadata file's time, UTC."""
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
    found = next((f for f in files if f.name in ("METADATA", "PKG-INFO")), None)
    path = Path(str(found.locate())) if found is not None else None
    if path is None or not path.exists():
        return "unknown"
    when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    return when.strftime("%Y%m%d-%H:%M:%S")


def version_block(program: str = "cucm-directory-exporter") -> str:
    return "\n".join(
        [
            f"{program}, version {__version__} (revision: {revision()})",
            f"  build date:       {build_date()}",
            f"  python version:   {platform.python_version()} ({platform.python_implementation()})",
            f"  openssl version:  {ssl.OPENSSL_VERSION}",
            f"  platform:         {platform.system().lower()}/{platform.machine()}",
        ]
    )
