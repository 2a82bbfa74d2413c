"""Logging as Prometheus' own components log: logfmt or JSON lines on stderr, with real fields.

structlog renders every record, the exporter's and the libraries' alike, through the standard
library's handlers: `ts` in RFC 3339 (UTC), `level` as Go's components spell it (`warn`),
`logger`, `msg`, then the record's own fields, so that logfmt and Loki parsers can select on
`node=` or `probe=`. The exporter's modules log through `get_logger` and pass fields as
keyword arguments; libraries' records (aiohttp, APScheduler, httpx) come through as plain
messages and stay at `warn` unless `--log.libraries` asks for them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["LIBRARIES", "formatter", "get_logger", "setup_logging"]

# Libraries that log every job run, request or time-zone lookup at info or debug.
LIBRARIES = ("apscheduler", "httpx", "httpcore", "tzlocal", "aiohttp", "pysnmp", "asyncio")

_LEVELS = {"warning": "warn", "critical": "error", "exception": "error"}


def get_logger(name: str) -> Any:
    """A logger whose keyword arguments become fields: `log.info("reloaded", nodes=12)`."""
    return structlog.stdlib.get_logger(name)


def _go_level(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["level"] = _LEVELS.get(event.get("level", ""), event.get("level", ""))
    return event


def _error_field(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if "exception" in event:
        event["err"] = event.pop("exception")
    return event


_TIMESTAMP = structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True, key="ts")


def formatter(fmt: str) -> logging.Formatter:
    """The handler's formatter for `--log.format` (`logfmt` or `json`)."""
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.processors.LogfmtRenderer(
            key_order=["ts", "level", "logger", "msg"], bool_as_flag=False
        )
    return structlog.stdlib.ProcessorFormatter(
        # Records from libraries (and from logging.getLogger) get the same fields first.
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _TIMESTAMP,
            _go_level,
            structlog.processors.format_exc_info,
            _error_field,
            structlog.processors.EventRenamer("msg"),
            renderer,
        ],
    )


def _configure_structlog() -> None:
    """Our loggers hand their event dicts to the standard library, which filters by level and
    lets `formatter` render them; tests see them as records (pytest's caplog)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


_configure_structlog()


def setup_logging(level: str, fmt: str, *, libraries: bool = False) -> None:
    """`level`: debug, info, warn, error. `libraries`: let third-party loggers log at `level`
    too; otherwise they say only warnings and errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = {"warn": logging.WARNING}.get(level, logging.getLevelName(level.upper()))
    root.setLevel(numeric)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(numeric if libraries else max(numeric, logging.WARNING))
    logging.captureWarnings(True)
