"""Reading the config file: bounded, strict, every problem a `ConfigError` naming its field.

`load_config_async` runs the same load in a worker thread, so a reload of a large file (10,000
nodes take seconds to validate) never stalls the event loop that answers scrapes and health
checks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from exporter.config.base import ConfigError, load_yaml, read_config_text, validate
from exporter.config.model import ExporterConfig

__all__ = ["CONFIG_FILE_LIMIT", "load_config", "load_config_async", "parse_config"]

# About 400 times what 10,000 nodes need: a bigger file is a wrong path, not a config.
CONFIG_FILE_LIMIT = 64 * 1024 * 1024


def load_config(path: Path) -> ExporterConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    text = read_config_text(path, CONFIG_FILE_LIMIT, "the config file")
    return parse_config(text, base_dir=path.parent, source=str(path))


async def load_config_async(path: Path) -> ExporterConfig:
    """`load_config` off the event loop."""
    return await asyncio.to_thread(load_config, path)


def parse_config(text: str, *, base_dir: Path, source: str = "<config>") -> ExporterConfig:
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping with a clusters list"])
    return validate(ExporterConfig, data, context={"base_dir": base_dir})
