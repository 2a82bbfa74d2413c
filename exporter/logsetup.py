"""Logging as Prometheus' own components log: logfmt or JSON lines on stderr."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "LogfmtFormatter", "fields", "setup_logging"]

_FIELDS = "structured_fields"  # the LogRecord attribute `fields()` fills


def fields(**values: object) -> dict[str, dict[str, str]]:
    """`log.info("probe outcome changed", extra=fields(node=..., outcome=...))`: key-value
    pairs that the formatters print as fields of their own (logfmt keys, JSON members), so
    that logfmt and Loki parsers can select on them. Values print as text; booleans as
    `true`/`false`, as Go's components spell them."""
    return {_FIELDS: {key: _text(value) for key, value in values.items()}}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _extra(record: logging.LogRecord) -> dict[str, str]:
    extra = getattr(record, _FIELDS, None)
    return dict(extra) if isinstance(extra, dict) else {}


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=info logger=... msg="..."`, as Prometheus' own components log."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra(record).items():
            fields.setdefault(key, value)
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": record.created,
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra(record).items():
            fields.setdefault(key, value)
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return json.dumps(fields)


def _level_name(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    return json.dumps(value)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING}.get(level, level.upper()))
    # These libraries log every job run and request at INFO; to us that is debug detail.
    for chatty in ("apscheduler", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    with contextlib.suppress(AttributeError):
        logging.captureWarnings(True)
